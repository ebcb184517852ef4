"""Deploy: GPU and model catalogs, the placement planner, Helm values, dashboards and rules."""
