"""Routers in the settings: a bad candidate, artifact or default fails at start, naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchyard.gateway.settings import SettingsError, build_settings
from switchyard.resources import default_router
from tests.support.gateways import model_entry

URL = "http://127.0.0.1:9/v1"


def settings(routers: list[dict[str, Any]], *names: str) -> Any:
    models = [model_entry(n, URL) for n in names or ("gpt-4-1106-preview", "claude-v2")]
    return build_settings({"models": models, "routers": routers})


def router(**extra: Any) -> dict[str, Any]:
    return {"name": "smart", "artifact": str(default_router()), **extra}


def test_candidates_default_to_the_configured_models_the_artifact_knows() -> None:
    s = settings([router()], "gpt-4-1106-preview", "not-in-routerbench", "claude-v2")
    assert s.candidates(s.routers[0]) == ("gpt-4-1106-preview", "claude-v2")
    assert s.router("auto") is s.router("smart") is s.routers[0]
    assert s.router("gpt-4-1106-preview") is None


@pytest.mark.parametrize(
    ("routers", "names", "message"),
    [
        ([router(candidates=["gpt-5"])], (), "routers.0: candidates: unknown model(s) gpt-5"),
        ([router(candidates=["x"])], ("x",), "the artifact does not know x"),
        ([router(artifact="/nonexistent/router")], (), "is not a saved router directory"),
        ([router()], ("x", "y"), "knows none of the configured models"),
        ([router(cost_weight=-1)], (), "routers.0.cost_weight"),
        ([router(default=True), router(name="b", default=True)], (), "at most one router"),
        ([router(), router()], (), "names must be unique"),
        ([router(name="claude-v2")], (), "not model names"),
        ([router()], ("auto", "claude-v2"), "a model named 'auto'"),
    ],
)
def test_bad_routers_fail_naming_the_field(
    routers: list[dict[str, Any]], names: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(routers, *names)
    assert message in str(caught.value)


def test_auto_needs_a_default_when_there_are_several(tmp_path: Path) -> None:
    two = settings([router(), router(name="other")])
    assert two.router("auto") is None and two.router("other") is not None
    picked = settings([router(), router(name="other", default=True)])
    assert picked.router("auto") is picked.router("other")
