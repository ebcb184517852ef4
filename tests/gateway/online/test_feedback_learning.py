"""Feedback moves the bandit of the router that made the decision (in process, no Redis)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, feedback, route, routed_settings
from tests.support.servers import free_port


def test_bad_scores_move_traffic_away_from_the_chosen_model(
    routed: Callable[..., Gateway],
) -> None:
    # Greedy (no exploration noise) and a weak prior, so that each score counts.
    gw = routed(bandit={"noise": 0.0, "prior_strength": 1.0})
    first, decision = route(gw.url)
    given = 0
    model = first
    while model == first and given < 5:
        assert feedback(gw.url, decision, 0.0).status_code == 200
        given += 1
        model, decision = route(gw.url)
    assert model != first, f"still {first} after {given} scores of 0"
    assert gw.metric("switchyard_bandit_observations", router="smart") == given
    assert gw.metric("switchyard_feedback_score_count", router="smart", model=first) == given


def test_repeated_feedback_is_learned_once(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    _, decision = route(gw.url)
    answers = [feedback(gw.url, decision, s).json() for s in (1.0, 0.0, 1.0)]
    assert answers[0] == answers[1] == answers[2]
    assert gw.metric("switchyard_bandit_observations", router="smart") == 1


def test_a_router_without_a_bandit_takes_feedback_but_does_not_learn(
    routed: Callable[..., Gateway],
) -> None:
    gw = routed(bandit={"enabled": False})
    model, decision = route(gw.url)
    assert feedback(gw.url, decision, 0.0).status_code == 200
    assert gw.metric("switchyard_feedback_score_count", router="smart", model=model) == 1
    assert gw.server.app.state.routing.learner is None


def test_a_fallback_answer_is_recorded_and_scored_as_the_fallback_model(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
) -> None:
    cheap, backup = CANDIDATES[0][0], CANDIDATES[1][0]
    urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
    urls[cheap] = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = routed_settings(urls, embedder_cache)
    for entry in config["models"]:
        if entry["name"] == cheap:
            entry["fallbacks"] = [backup]
    gw = gateway(**config, upstream={"max_attempts": 1})
    model, decision = route(gw.url, models=[cheap])
    assert model == cheap  # the router's choice (x-switchyard-model; the body says backup) ...
    record = gw.server.app.state.routing.outcomes.record(decision)
    assert record is not None and record.model == backup  # ... but the backup answered
    assert feedback(gw.url, decision, 0.0).status_code == 200
    assert gw.metric("switchyard_feedback_score_count", router="smart", model=backup) == 1
    assert gw.metric("switchyard_bandit_observations", router="smart") == 1
