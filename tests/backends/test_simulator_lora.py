"""LoRA adapters on the simulator, over real sockets: vLLM's runtime load/unload routes and
their answers, adapters named as the model, /v1/models with ``parent``, the per-batch
adapter limit, swaps into LRU slots, and ``vllm:lora_requests_info`` as vLLM exports it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from switchyard.backends.simulator import build_config
from tests.support.gateways import Simulator, wait_for
from tests.support.hold import held_streams

RUNTIME = {"max_loras": 2, "runtime_lora_updating": True}


def load(sim: Simulator, name: str, path: str = "/adapters/x") -> httpx.Response:
    body = {"lora_name": name, "lora_path": path}
    return httpx.post(f"{sim.base_url}/load_lora_adapter", json=body)


def lora_info(sim: Simulator) -> dict[str, str]:
    text = httpx.get(f"{sim.server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "vllm:lora_requests_info":
            return dict(family.samples[0].labels)
    raise AssertionError("no vllm:lora_requests_info on the page")


def test_runtime_loading_answers_as_vllm_does(simulator: Callable[..., Simulator]) -> None:
    sim = simulator("base", **RUNTIME)
    ok = load(sim, "sql")
    assert (ok.status_code, ok.text) == (200, "Success: LoRA adapter 'sql' added successfully.")
    again = load(sim, "sql")
    assert again.status_code == 400
    assert "has already been loaded" in again.json()["error"]["message"]
    missing_field = httpx.post(f"{sim.base_url}/load_lora_adapter", json={"lora_name": "a"})
    assert missing_field.status_code == 400
    not_there = load(sim, "gone", "/adapters/missing-gone")
    assert not_there.status_code == 404
    assert not_there.json()["error"]["type"] == "NotFoundError"
    unload = httpx.post(f"{sim.base_url}/unload_lora_adapter", json={"lora_name": "sql"})
    assert (unload.status_code, unload.text) == (
        200,
        "Success: LoRA adapter 'sql' removed successfully.",
    )
    unknown = httpx.post(f"{sim.base_url}/unload_lora_adapter", json={"lora_name": "sql"})
    assert unknown.status_code == 404


def test_the_runtime_routes_do_not_exist_without_the_runtime_flag(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("base", max_loras=2)
    assert load(sim, "sql").status_code == 404


def test_a_registered_adapter_is_listed_with_its_parent_and_answers_as_the_model(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("base", max_loras=2, lora_modules={"sql": "/adapters/sql"})
    cards = {c["id"]: c for c in httpx.get(f"{sim.base_url}/models").json()["data"]}
    assert cards["sql"]["parent"] == "base" and cards["sql"]["root"] == "/adapters/sql"
    assert cards["base"]["parent"] is None
    client = OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="sql", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert reply.model == "sql"
    with pytest.raises(Exception, match="does not exist"):
        client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )


def test_a_batch_holds_at_most_max_loras_adapters_and_the_gauge_says_which(
    simulator: Callable[..., Simulator],
) -> None:
    modules = {"a": "/adapters/a", "b": "/adapters/b"}
    sim = simulator("base", preset="fast", max_loras=1, lora_modules=modules)
    engine = sim.app.engine
    with held_streams(sim.base_url, "a", 2):
        wait_for(lambda: engine.num_running == 2)
        with held_streams(sim.base_url, "b", 1):
            wait_for(lambda: engine.num_waiting == 1)
            info = lora_info(sim)
    assert info == {"max_lora": "1", "running_lora_adapters": "a", "waiting_lora_adapters": "b"}


def test_adapters_beyond_the_slots_are_swapped_in_and_the_lru_one_evicted(
    simulator: Callable[..., Simulator],
) -> None:
    modules = {n: f"/adapters/{n}" for n in "abc"}
    sim = simulator("base", preset="fast", max_loras=2, lora_modules=modules, lora_load_s=0.01)
    client = OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
    for name in "aba" + "c" + "a":  # c evicts b (the LRU), a stays resident
        client.completions.create(model=name, prompt="hi", max_tokens=2)
    slots = sim.app.adapters
    assert slots.swaps == 3
    assert slots.resident == ["c", "a"]


def test_lora_settings_without_max_loras_are_refused() -> None:
    with pytest.raises(ValueError, match="max_loras"):
        build_config("base", lora_load_s=1.0)
