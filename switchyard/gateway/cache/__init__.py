"""The response cache (``hook``: opt-in, keys, replay; ``store``: in-process or Redis;
``semantic``: similar prompts per scope and model; ``config``: the ``cache:`` settings).
Nothing is imported here, so the settings can load ``config`` alone."""
