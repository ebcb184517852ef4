"""The Switchyard gateway: the ASGI app, settings, HTTP API, error model and metrics."""
