"""LoRA adapters as routable models, end to end: simulated vLLM replicas with adapter slots,
the gateway on real sockets, the official OpenAI SDK as the client. An adapter model goes
to its base model's replicas under its adapter name, each adapter sticks to a replica, and
with on-demand loading an adapter no replica holds is loaded once however many requests
ask for it at the same time; a failed load is a 502 in OpenAI's shape, and counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.support.gateways import Gateway, Simulator, model_entry, scraped, wait_for

ADAPTERS = [f"ad{i}" for i in range(6)]
MODULES = {name: f"/adapters/{name}" for name in ADAPTERS}


def adapter_entry(name: str, base: str = "base", source: str | None = None) -> dict[str, Any]:
    adapter = {"base": base, "name": f"{name}-lora", "source": source or f"/adapters/{name}"}
    return {"name": name, "price_input_per_mtok": 2.0, "price_output_per_mtok": 4.0,
            "adapter": adapter}  # fmt: skip


def ask(client: OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    return reply.model


def test_an_adapter_model_is_served_by_its_base_models_replicas_under_its_adapter_name(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("base", max_loras=2, lora_modules={"sql-lora": "/adapters/sql"})
    gw = gateway([model_entry("base", sim.base_url), adapter_entry("sql")])
    client = OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    ask(client, "sql")
    ask(client, "base")
    assert sim.metric("vllm:request_success_total") == 2
    listed = {m.id for m in client.models.list()}
    assert {"base", "sql"} <= listed


def test_each_adapter_sticks_to_one_replica(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    modules = {f"{n}-lora": path for n, path in MODULES.items()}
    sims = [simulator("base", "fast", max_loras=8, lora_modules=modules, lora_load_s=0.001)
            for _ in range(3)]  # fmt: skip
    models = [model_entry("base", *(s.base_url for s in sims))]
    gw = gateway(models + [adapter_entry(n) for n in ADAPTERS],
                 upstream={"scrape_interval_s": 0.1, "seed": 3})  # fmt: skip
    client = OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    for _ in range(4):
        for name in ADAPTERS:
            ask(client, name)
    homes = [s.app.adapters.resident for s in sims]
    # Every adapter was swapped in on exactly one replica, and stayed there.
    assert sorted(a for home in homes for a in home) == sorted(modules)
    assert sum(s.app.adapters.swaps for s in sims) == len(ADAPTERS)


def on_demand_fleet(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    replicas: int,
    source: str | None = None,
    **adapters: Any,
) -> tuple[list[Simulator], Gateway]:
    sims = [simulator("base", preset="fast", max_loras=2, runtime_lora_updating=True,
                      lora_load_s=0.2) for _ in range(replicas)]  # fmt: skip
    models = [model_entry("base", *(s.base_url for s in sims)), adapter_entry("sql", source=source),
              adapter_entry("chat")]  # fmt: skip
    gw = gateway(models, adapters={"on_demand_loading": True, **adapters},
                 upstream={"scrape_interval_s": 0.1})  # fmt: skip
    return sims, gw


def idle(gw: Gateway, sim: Simulator) -> Callable[[], bool]:
    def no_adapter_active() -> bool:
        snap = scraped(gw, sim.base_url)
        return snap is not None and snap.lora is not None and not snap.lora.active

    return no_adapter_active


def settle(gw: Gateway, sim: Simulator) -> None:
    """Wait until no adapter is active there, nor was sent a request within the loader's
    protection (an adapter in use is never unloaded)."""
    wait_for(idle(gw, sim))
    time.sleep(gw.server.app.state.upstreams.adapter_loader.protect_s)


def loads(sims: list[Simulator]) -> int:
    return sum(s.app.lora_routes.loads for s in sims)


def test_concurrent_first_requests_for_an_unloaded_adapter_load_it_exactly_once(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sims, gw = on_demand_fleet(simulator, gateway, replicas=3)

    async def burst() -> list[str]:
        async with AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as client:
            replies = await asyncio.gather(*(
                client.chat.completions.create(
                    model="sql", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=2
                )
                for i in range(20)
            ))  # fmt: skip
        return [r.model for r in replies]

    assert asyncio.run(burst()) == ["sql-lora"] * 20
    assert loads(sims) == 1
    assert gw.metric("switchyard_adapter_loads_total", model="sql", outcome="loaded") == 1


def test_the_least_recently_used_adapter_is_unloaded_when_the_replica_is_full(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sims, gw = on_demand_fleet(simulator, gateway, replicas=1, max_loaded_per_replica=1)
    client = OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    ask(client, "sql")
    settle(gw, sims[0])
    ask(client, "chat")
    assert list(sims[0].app.adapters.registered) == ["chat-lora"]
    assert gw.metric("switchyard_adapter_loads_total", model="chat", outcome="unloaded") == 1
    settle(gw, sims[0])
    assert ask(client, "sql") == "sql-lora"  # loaded again, chat unloaded in turn
    assert loads(sims) == 3


def test_an_adapter_that_fails_to_load_is_a_502_in_openais_shape_and_counted(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    _, gw = on_demand_fleet(simulator, gateway, replicas=1, source="/adapters/missing-sql")
    client = OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        ask(client, "sql")
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "adapter_load_failed"
    assert gw.metric("switchyard_adapter_loads_total", model="sql", outcome="failed") == 1


def test_an_adapter_of_an_unknown_base_with_endpoints_or_without_a_source_is_refused(
    gateway: Callable[..., Gateway],
) -> None:
    base = model_entry("base", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=r"adapter\.base"):
        gateway([base, adapter_entry("sql", "nope")])
    with pytest.raises(ValueError, match="give no endpoints"):
        gateway([base, {**adapter_entry("sql"), "endpoints": base["endpoints"]}])
    sourceless = {**adapter_entry("sql"), "adapter": {"base": "base", "name": "sql-lora"}}
    with pytest.raises(ValueError, match="needed for on-demand loading"):
        gateway([base, sourceless], adapters={"on_demand_loading": True})


def test_adapter_loads_carry_the_replicas_api_key(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A replica started with vLLM's --api-key refuses an unauthenticated load with 401: the
    gateway's load call sends the endpoint's key, as its requests do."""
    monkeypatch.setenv("SIM_KEY", "sim-secret")
    sim = simulator("base", preset="fast", max_loras=2, runtime_lora_updating=True,
                    api_key="sim-secret")  # fmt: skip
    base = model_entry("base", sim.base_url)
    base["endpoints"][0]["api_key_env"] = "SIM_KEY"
    gw = gateway([base, adapter_entry("sql")], adapters={"on_demand_loading": True})
    client = OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    assert ask(client, "sql") == "sql-lora"  # the replica answers under the adapter's name
    assert loads([sim]) == 1
    assert gw.metric("switchyard_adapter_loads_total", model="sql", outcome="loaded") == 1
