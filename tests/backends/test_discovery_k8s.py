"""EndpointSlices as the API serves them (discovery.k8s.io/v1, JSON form) turned into
targets: ready pods only (an absent condition means ready), zones kept, FQDN slices and
terminating pods left out. Not run against a live API server (none can run here)."""

from __future__ import annotations

from typing import Any

from switchyard.backends.discovery import Target
from switchyard.backends.discovery_k8s import slice_targets


def endpoint(ip: str, zone: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions, "zone": zone}


def test_only_ready_pods_of_a_slice_are_targets_with_their_zone() -> None:
    endpoint_slice = {
        "addressType": "IPv4",
        "metadata": {"name": "pool-a-x7k2p"},
        "endpoints": [
            endpoint("10.0.0.5", "eu-1a", ready=True, serving=True),
            endpoint("10.0.0.6", "eu-1b", ready=False, serving=True, terminating=True),
            endpoint("10.0.0.7", "eu-1b"),  # no condition reported: ready, per the API
        ],
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }
    assert slice_targets(endpoint_slice, 8000) == {
        Target("http://10.0.0.5:8000/v1", "eu-1a"),
        Target("http://10.0.0.7:8000/v1", "eu-1b"),
    }


def test_ipv6_slices_are_bracketed_and_fqdn_slices_name_no_pod() -> None:
    v6 = {"addressType": "IPv6", "endpoints": [endpoint("fd00::7", "z", ready=True)]}
    fqdn = {"addressType": "FQDN", "endpoints": [endpoint("vllm.example", "z", ready=True)]}
    assert slice_targets(v6, 8000) == {Target("http://[fd00::7]:8000/v1", "z")}
    assert slice_targets(fqdn, 8000) == frozenset()
    assert slice_targets({"addressType": "IPv4", "endpoints": None}, 8000) == frozenset()
