"""The ``discover:`` form of an endpoint in the config: exactly one of url or discover, and
what a discovery source may name."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.gateway.discovery_config import DiscoveryKind
from switchyard.gateway.settings import SettingsError, build_settings


def settings_with(endpoint: dict[str, Any]) -> Any:
    model = {"name": "m", "price_input_per_mtok": 1, "price_output_per_mtok": 2}
    return build_settings({"models": [model | {"endpoints": [endpoint]}]})


def test_an_endpoint_may_discover_its_pods_with_per_pod_weight_and_batch() -> None:
    endpoint = settings_with(
        {"discover": {"name": "pool-a-pods.llm.svc.cluster.local.", "port": 8000},
         "weight": 0.5, "max_num_seqs": 64}
    ).models[0].endpoints[0]  # fmt: skip
    assert endpoint.url is None
    assert endpoint.discover.kind is DiscoveryKind.dns
    assert (endpoint.discover.interval_s, endpoint.discover.path) == (5.0, "/v1")
    assert (endpoint.weight, endpoint.max_num_seqs) == (0.5, 64)


@pytest.mark.parametrize(
    "endpoint",
    [
        {},
        {"url": "http://a:8000/v1", "discover": {"name": "a", "port": 8000}},
    ],
)
def test_an_endpoint_needs_exactly_one_of_url_or_discover(endpoint: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match=r"exactly one of url .* or discover"):
        settings_with(endpoint)


@pytest.mark.parametrize(
    ("discover", "field"),
    [
        ({"name": "a b", "port": 8000}, "discover.name"),
        ({"name": "a", "port": 0}, "discover.port"),
        ({"name": "a", "port": 8000, "interval_s": 0}, "discover.interval_s"),
        ({"name": "a", "port": 8000, "kind": "consul"}, "discover.kind"),
        ({"name": "a", "port": 8000, "nameserver": "dns.example"}, "discover.nameserver"),
    ],
)
def test_a_bad_discovery_source_is_refused_naming_the_field(
    discover: dict[str, Any], field: str
) -> None:
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        settings_with({"discover": discover})
