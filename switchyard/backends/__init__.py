"""Backends: the OpenAI-compatible client on the hot path, endpoint pools with circuit
breakers and retries, and a vLLM-compatible simulator. Knows nothing about routers."""
