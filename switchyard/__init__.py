"""Switchyard: an OpenAI-compatible LLM gateway that routes each request to the model giving
the best quality per dollar, on the replica that will answer it soonest.

The packages: ``gateway`` (the HTTP service), ``routers`` (prompt embedding, routers,
evaluation, online learning), ``backends`` (the upstream client, endpoint pools, replica
choice, the vLLM-compatible simulator), ``deploy`` (the placement planner, the performance
model, dashboards and alerts) and ``cli`` (the ``switchyard`` command). ``data/`` is package
data: the default router, the GPU and model catalogs, example workloads and prices.
"""
