"""A bounded schemathesis run against the gateway's live ``/openapi.json``: no 5xx, ever.

The gateway runs on a real socket in front of two zero-latency simulators (one also serving
embeddings), so generated requests that name a configured model travel all the way to a
backend and back. Every operation gets valid (positive) and invalid (negative) inputs; the
only check is ``not_a_server_error``. Derandomized, so a failure reproduces on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from backends.simulator import build_config, create_simulator_app
from gateway.app import create_app
from gateway.settings import build_settings
from tests.conftest import model_entry
from tests.support.servers import ServerThread

MAX_EXAMPLES = 25  # per operation, valid and invalid inputs together
# "m" serves chat and completions; "e" also embeddings. None keeps the generated name.
MODELS = (None, "m", "e")


def _operations() -> list[str]:
    """Every operation of the gateway's OpenAPI document, as "METHOD /path" labels."""
    app = create_app(build_settings({"models": [model_entry("m", "http://127.0.0.1:9/v1")]}))
    return [
        f"{method.upper()} {path}"
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    ]


OPERATIONS = _operations()


@dataclass
class Stack:
    gateway: ServerThread
    registry: CollectorRegistry
    schema: OpenApiSchema
    session: requests.Session
    endpoints: dict[str, str]  # model -> its backend's base URL


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    chat_sim = ServerThread(create_simulator_app(build_config("m", "zero")), lifespan="off")
    embed_sim = ServerThread(
        create_simulator_app(build_config("e", "zero", serves_embeddings=True)), lifespan="off"
    )
    servers = [chat_sim.start(), embed_sim.start()]
    endpoints = {"m": f"{chat_sim.url}/v1", "e": f"{embed_sim.url}/v1"}
    settings = build_settings(
        {
            "models": [
                model_entry("m", endpoints["m"]),
                model_entry(
                    "e", endpoints["e"], capabilities=["chat", "completions", "embeddings"]
                ),
            ],
            "upstream": {"first_byte_timeout_s": 5, "read_timeout_s": 5},
        }
    )
    registry = CollectorRegistry()
    gateway = ServerThread(create_app(settings, registry)).start()
    servers.append(gateway)
    session = requests.Session()
    try:
        schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
        yield Stack(gateway, registry, schema, session, endpoints)
    finally:
        session.close()
        for server in reversed(servers):
            server.stop()


def test_the_live_schema_has_exactly_the_operations_under_test(stack: Stack) -> None:
    results = list(stack.schema.get_all_operations())
    invalid = [r.err() for r in results if isinstance(r, Err)]
    assert not invalid
    assert sorted(r.ok().label for r in results if isinstance(r, Ok)) == sorted(OPERATIONS)


def _aim_at_configured_models(case: Case[Any], model: str | None) -> None:
    """Point part of the cases at real models, so they reach a backend."""
    if model is None:
        return
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model
    if case.path_parameters and "model" in case.path_parameters:
        case.path_parameters["model"] = model


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_gets_a_server_error(stack: Stack, label: str) -> None:
    operation = stack.schema.find_operation_by_label(label)
    assert operation is not None, label
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(case=cases, model=st.sampled_from(MODELS))
    def check(case: Case[Any], model: str | None) -> None:
        _aim_at_configured_models(case, model)
        case.call_and_validate(
            base_url=stack.gateway.url,
            session=stack.session,
            checks=[not_a_server_error],
            timeout=10,
        )

    check()


def test_the_fuzzed_gateway_is_still_ready(stack: Stack) -> None:
    """Runs last in this module: nothing above tripped a breaker or leaked a request."""
    response = stack.session.get(f"{stack.gateway.url}/readyz", timeout=5)
    assert response.status_code == 200, response.text
    for model in ("m", "e"):
        gauge = stack.registry.get_sample_value("switchyard_in_flight_requests", {"model": model})
        assert not gauge
        # Not vacuous: some generated requests went all the way to a backend and back.
        answered = stack.registry.get_sample_value(
            "switchyard_requests_total",
            {"model": model, "endpoint": stack.endpoints[model], "status": "200"},
        )
        assert answered, f"no fuzzed request for {model!r} reached its backend"
