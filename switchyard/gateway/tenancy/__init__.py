"""Tenants: virtual API keys, rate limits, spend budgets, and their admin routes (keys, spend).

``Guard`` is the entry point on the request path: it authenticates the caller, checks the
model allow-list and admits the request against every rate limit and budget in one atomic
step of the ``TenancyStore`` (in-process, or Redis shared by all replicas). After the
response, it settles the real token usage and spend off the hot path.
"""
