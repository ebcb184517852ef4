"""The EndpointSlice source through the official client (kubernetes_asyncio) against a
stand-in for the API server's list and watch (tests/support/kube_api.py; no API server can
run here): the listed pods first, then every watched change, not-ready pods left out, and a
refused request (RBAC) reported as a failed lookup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from switchyard.backends.discovery import Discovery, DiscoveryError, Target
from switchyard.backends.discovery_k8s import EndpointSliceSource
from tests.support.kube_api import KubeApi, endpoint_slice

SERVICE = "vllm-llama-pods"


@pytest.fixture
def kube_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeApi]:
    api = KubeApi().start()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig", "llm")))
    yield api
    api.stop()


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.01)


def urls(found: frozenset[Target]) -> list[str]:
    return sorted(t.url for t in found)


def test_listed_pods_come_first_then_every_watched_change(kube_api: KubeApi) -> None:
    kube_api.put(endpoint_slice("s1", SERVICE, {"10.0.0.5": True, "10.0.0.6": False}))
    changes: list[list[str]] = []

    async def scenario() -> None:
        source = EndpointSliceSource(SERVICE, 8000, namespace="llm")
        discovery = Discovery(
            source, lambda found: changes.append(urls(found)), interval_s=0.1, model="m"
        )
        discovery.start()
        await until(lambda: len(changes) == 1)
        kube_api.put(endpoint_slice("s1", SERVICE, {"10.0.0.5": True, "10.0.0.6": True}))
        await until(lambda: len(changes) == 2)
        kube_api.put(endpoint_slice("s2", SERVICE, {"10.0.0.7": True}, zone="z2"))
        await until(lambda: len(changes) == 3)
        kube_api.delete("s1")
        await until(lambda: len(changes) == 4)
        assert {t.zone for t in discovery.targets} == {"z2"}
        await discovery.aclose()

    asyncio.run(scenario())
    pod = "http://10.0.0.{}:8000/v1".format
    assert changes == [[pod(5)], [pod(5), pod(6)], [pod(5), pod(6), pod(7)], [pod(7)]]
    assert set(kube_api.selectors) == {f"kubernetes.io/service-name={SERVICE}"}


def test_a_refused_list_is_a_failed_lookup_naming_the_status(kube_api: KubeApi) -> None:
    kube_api.fail_with = 403

    async def first() -> None:
        async for _ in EndpointSliceSource(SERVICE, 8000, namespace="llm").updates():
            pass

    with pytest.raises(DiscoveryError, match="403"):
        asyncio.run(first())
