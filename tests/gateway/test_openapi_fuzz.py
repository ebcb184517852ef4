"""A bounded schemathesis run against the gateway's live ``/openapi.json``: no 5xx, ever.

The gateway runs on a real socket with auth on, the admin API, a router (so feedback and the
routing admin routes are live) and a config file (so reload works), in front of three
zero-latency simulators (one also serving embeddings, one the router's candidate), so
generated requests that name a configured model, the router, a real decision or a real key
travel all the way. Admin operations are sent with the admin key, the others with a user
key. Every operation gets valid (positive) and invalid (negative) inputs; the only check is
``not_a_server_error``. Derandomized, so a failure reproduces on every run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from switchyard.backends.simulator import build_config, create_simulator_app
from switchyard.gateway.app import create_app
from switchyard.gateway.settings import build_settings, load_settings
from switchyard.gateway.tenancy.keys import new_key
from switchyard.resources import default_router
from tests.support.gateways import model_entry
from tests.support.servers import ServerThread

MAX_EXAMPLES = 25  # per operation, valid and invalid inputs together
ROUTED = "gpt-3.5-turbo-1106"  # the router's one candidate (a model the artifact knows)
# "m" serves chat and completions; "e" also embeddings and the pass-through routes; "auto"
# is the router. None keeps the generated name.
MODELS = (None, "m", "e", "auto")
PASSED = ["rerank", "score", "transcriptions"]
USER_KEY, ADMIN_KEY = new_key(), "admin-" + "f" * 24
ENV = {"SWITCHYARD_KEY_SECRET": "fuzz-secret", "SWITCHYARD_ADMIN_KEY": ADMIN_KEY,
       "FUZZ_USER_KEY": USER_KEY}  # fmt: skip


def _config(endpoints: dict[str, str], cache: Path | None, auth: bool) -> dict[str, Any]:
    chat = ["chat", "completions"]
    return {
        "models": [
            model_entry("m", endpoints["m"]),
            model_entry("e", endpoints["e"], capabilities=[*chat, "embeddings", *PASSED]),
            model_entry(ROUTED, endpoints[ROUTED]),
        ],
        "routers": [
            {
                "name": "smart",
                "artifact": str(default_router()),
                "default": True,
                "candidates": [ROUTED],
            }
        ],
        "routing": {"embedder_cache": str(cache) if cache else None},
        "upstream": {"first_byte_timeout_s": 5, "read_timeout_s": 5},
        "auth": {"enabled": True, "keys": [{"name": "fuzz", "key_env": "FUZZ_USER_KEY"}]}
        if auth
        else {},
    }


def _operations() -> list[str]:
    """Every operation of the gateway's OpenAPI document, as "METHOD /path" labels."""
    nowhere = dict.fromkeys(("m", "e", ROUTED), "http://127.0.0.1:9/v1")
    path = Path(__file__).with_name("_fuzz_operations.yaml")  # never written: a name only
    app = create_app(build_settings(_config(nowhere, None, auth=False)), config_path=path)
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
    decision: str  # a routed request's decision id (made with the user key)
    key_id: str  # a dynamic key made through the admin API
    answered: dict[str, set[int]] = field(default_factory=dict)  # operation -> statuses


def _simulators() -> tuple[list[ServerThread], dict[str, str]]:
    configs = {"m": build_config("m", "zero"), ROUTED: build_config(ROUTED, "zero"),
               "e": build_config("e", "zero", serves_embeddings=True)}  # fmt: skip
    servers = {m: ServerThread(create_simulator_app(c), lifespan="off").start()
               for m, c in configs.items()}  # fmt: skip
    return list(servers.values()), {m: f"{s.url}/v1" for m, s in servers.items()}


def _seed(url: str, session: requests.Session) -> tuple[str, str]:
    """A routed decision made with the user key, and a dynamic key's id."""
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
    }
    routed = session.post(f"{url}/v1/chat/completions", json=body, headers=_auth("/v1"))
    assert routed.status_code == 200, routed.text
    made = session.post(f"{url}/admin/keys", json={"name": "fuzzed"}, headers=_auth("/admin"))
    assert made.status_code in (200, 201), made.text
    return routed.headers["x-switchyard-decision-id"], made.json()["id"]


@pytest.fixture(scope="module")
def stack(embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    servers, endpoints = _simulators()
    config = tmp_path_factory.mktemp("fuzz") / "gateway.yaml"
    config.write_text(yaml.safe_dump(_config(endpoints, embedder_cache, auth=True)))
    session = requests.Session()
    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        try:
            registry = CollectorRegistry()
            app = create_app(load_settings(config), registry, config_path=config)
            gateway = ServerThread(app).start()
            servers.append(gateway)
            decision, key_id = _seed(gateway.url, session)
            schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
            yield Stack(gateway, registry, schema, session, endpoints, decision, key_id)
        finally:
            session.close()
            for server in reversed(servers):
                server.stop()


def _auth(path: str) -> dict[str, str]:
    """The admin key for the admin API, the user key for everything else."""
    return {"authorization": f"Bearer {ADMIN_KEY if path.startswith('/admin') else USER_KEY}"}


def test_the_live_schema_has_exactly_the_operations_under_test(stack: Stack) -> None:
    results = list(stack.schema.get_all_operations())
    invalid = [r.err() for r in results if isinstance(r, Err)]
    assert not invalid
    assert sorted(r.ok().label for r in results if isinstance(r, Ok)) == sorted(OPERATIONS)


def _aim_at_configured_models(case: Case[Any], model: str | None, stack: Stack) -> None:
    """Point part of the cases at real models, the real decision and the real key, so
    they reach a backend, the feedback path and the admin API's key operations."""
    if model is None:
        return
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model
    if isinstance(case.body, dict) and "decision_id" in case.body:
        case.body["decision_id"] = stack.decision
    if case.path_parameters and "model" in case.path_parameters:
        case.path_parameters["model"] = model
    if case.path_parameters and "key_id" in case.path_parameters:
        case.path_parameters["key_id"] = stack.key_id


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
        _aim_at_configured_models(case, model, stack)
        response = case.call_and_validate(
            base_url=stack.gateway.url,
            session=stack.session,
            headers=_auth(operation.path),
            checks=[not_a_server_error],
            timeout=10,
        )
        stack.answered.setdefault(label, set()).add(response.status_code)

    check()


def test_every_operation_was_reached_past_authentication(stack: Stack) -> None:
    """Not vacuous: with auth on, each operation answered something other than 401/403
    (the keys were accepted) at least once, most of them a 2xx."""
    assert set(stack.answered) == set(OPERATIONS)
    for label, statuses in stack.answered.items():
        assert statuses - {401, 403}, f"{label} only answered {statuses}"
    succeeded = [label for label, statuses in stack.answered.items() if min(statuses) < 300]
    assert len(succeeded) >= len(OPERATIONS) // 2, stack.answered


def test_the_fuzzed_gateway_is_still_ready(stack: Stack) -> None:
    """Runs last in this module: nothing above tripped a breaker for good or leaked a
    request (on a loaded machine, a request the client gave up on may take a moment to end,
    and a breaker its cooldown)."""

    def drained() -> bool:
        ready = stack.session.get(f"{stack.gateway.url}/readyz", timeout=5).status_code == 200
        gauges = [
            stack.registry.get_sample_value("switchyard_in_flight_requests", {"model": model})
            for model in ("m", "e", ROUTED)
        ]
        return ready and not any(gauges)

    deadline = time.monotonic() + 15
    while not drained():
        assert time.monotonic() < deadline, "not ready, or requests still in flight"
        time.sleep(0.2)
    for model in ("m", "e", ROUTED):
        # Not vacuous: some generated requests went all the way to a backend and back.
        answered = stack.registry.get_sample_value(
            "switchyard_requests_total",
            {"model": model, "endpoint": stack.endpoints[model], "status": "200"},
        )
        assert answered, f"no fuzzed request for {model!r} reached its backend"
