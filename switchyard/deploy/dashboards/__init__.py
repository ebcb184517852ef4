"""Grafana dashboards for Switchyard, as code: one module per board (overview, routing,
backends, state), one function per panel, all drawn with the shared style of ``style``.

``python -m switchyard.deploy.dashboards`` writes each board's JSON into the chart
(``helm/switchyard/dashboards/``), where the Grafana sidecar's ConfigMaps read it; a test
regenerates the files and compares, and an end-to-end test runs every panel query against a
real Prometheus scraping a gateway and simulated vLLM engines.
"""
