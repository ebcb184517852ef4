"""Routers: embedders, learned routers, the cost-aware policy and online bandits.

No HTTP and no settings here (see ARCHITECTURE.md); filled in by the learned-router work."""
