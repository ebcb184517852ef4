from switchyard.deploy.dashboards.build import main

if __name__ == "__main__":
    main()
