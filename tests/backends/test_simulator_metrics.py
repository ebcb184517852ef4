"""``/metrics`` carries vLLM's metric names with a ``model_name`` label, and they move."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from switchyard.backends.simulator import PerfModel, SimulatorConfig, create_simulator_app
from tests.support.servers import ServerThread

MODEL = "sim-metrics"
FAMILIES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"{url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return samples[(name, tuple(sorted({"model_name": MODEL, **labels}.items())))]


@pytest.fixture(scope="module", params=["zero", "engine"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    perf = PerfModel.zero() if request.param == "zero" else PerfModel(decode_base_s=0.001)
    app = create_simulator_app(SimulatorConfig(model=MODEL, perf=perf))
    with ServerThread(app) as running:
        yield running


def test_metrics_expose_every_vllm_family_with_model_name(server: ServerThread) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert families[name].type == kind, name
        assert families[name].samples, name
        assert all(s.labels["model_name"] == MODEL for s in families[name].samples)
    reasons = {s.labels["finished_reason"] for s in families["vllm:request_success"].samples}
    assert reasons == {"stop", "length"}


def test_counters_and_histograms_move_after_requests(server: ServerThread) -> None:
    before = scrape(server.url)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
        natural = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "count me"}]
        )
        capped = client.completions.create(model=MODEL, prompt="and me", max_tokens=3)
    after = scrape(server.url)
    assert natural.usage is not None and capped.usage is not None

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("vllm:prompt_tokens_total") == (
        natural.usage.prompt_tokens + capped.usage.prompt_tokens
    )
    assert moved("vllm:generation_tokens_total") == (
        natural.usage.completion_tokens + capped.usage.completion_tokens
    )
    assert moved("vllm:request_success_total", finished_reason="stop") == 1
    assert moved("vllm:request_success_total", finished_reason="length") == 1
    assert moved("vllm:time_to_first_token_seconds_count") == 2
    assert moved("vllm:e2e_request_latency_seconds_count") == 2
    tokens = natural.usage.completion_tokens + capped.usage.completion_tokens
    assert moved("vllm:inter_token_latency_seconds_count") == tokens - 2
    assert value(after, "vllm:num_requests_running") == 0


def test_metrics_go_to_the_injected_registry() -> None:
    registry = CollectorRegistry()
    create_simulator_app(SimulatorConfig(model=MODEL), registry)
    assert registry.get_sample_value("vllm:num_requests_waiting", {"model_name": MODEL}) == 0
    assert (
        registry.get_sample_value(
            "vllm:request_success_total", {"model_name": MODEL, "finished_reason": "stop"}
        )
        == 0
    )
