"""The response cache (``hook``: opt-in, keys, replay; ``store``: in-process or Redis;
``config``: the ``cache:`` settings). Nothing is imported here, so the settings can load
``config`` alone."""
