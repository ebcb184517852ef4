"""Discovery from Kubernetes EndpointSlices (the optional ``kubernetes`` extra:
``kubernetes_asyncio``): the pods behind a Service, watched rather than polled.

The source lists the Service's slices (label ``kubernetes.io/service-name``), then watches
them from that list's resource version and yields the complete set of ready pods after
every event. A pod counts while its slice says ``ready`` (an absent condition means ready,
as the API documents); a terminating pod turns not ready and drains. Each pod's zone is
kept on its ``Target``. A broken watch raises ``DiscoveryError``; ``Discovery`` keeps the
last known set and opens the source again after its interval. The gateway's service account
needs ``list`` and ``watch`` on ``endpointslices.discovery.k8s.io`` (the chart's Role).

Not tested against a live API server (none runs from a package here): the tests run the
official client against a stand-in serving the API's list and watch protocol
(tests/support/kube_api.py), and the parsing of slices on the API's documented shape.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from switchyard.backends.discovery import DiscoveryError, Target, pod_url

__all__ = ["EndpointSliceSource", "slice_targets"]

SERVICE_LABEL = "kubernetes.io/service-name"
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def slice_targets(
    endpoint_slice: Mapping[str, Any], port: int, scheme: str = "http", path: str = "/v1"
) -> frozenset[Target]:
    """The ready pods of one EndpointSlice (its JSON form) as targets on ``port``."""
    if endpoint_slice.get("addressType") not in ("IPv4", "IPv6"):
        return frozenset()  # FQDN slices name no pod
    found = set()
    for endpoint in endpoint_slice.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready") is False:
            continue
        for address in endpoint.get("addresses") or ():
            found.add(Target(pod_url(address, port, scheme, path), endpoint.get("zone")))
    return frozenset(found)


class EndpointSliceSource:
    """The ready pods of Service ``service`` in ``namespace`` (default: the gateway's)."""

    def __init__(
        self,
        service: str,
        port: int,
        *,
        namespace: str | None = None,
        scheme: str = "http",
        path: str = "/v1",
    ) -> None:
        self.service, self.port, self.scheme, self.path = service, port, scheme, path
        self.namespace = namespace or _own_namespace()
        self.description = f"kubernetes endpointslices of {self.namespace}/{service}:{port}"

    async def updates(self) -> AsyncIterator[frozenset[Target]]:
        try:
            from kubernetes_asyncio import client, config, watch
            from kubernetes_asyncio.client.exceptions import ApiException
        except ImportError:
            raise DiscoveryError(
                "kubernetes discovery needs the kubernetes extra: "
                "pip install 'switchyard[kubernetes]'"
            ) from None
        try:
            configuration = await _load_config(client, config)
            async with client.ApiClient(configuration) as api_client:
                api = client.DiscoveryV1Api(api_client)
                selector = f"{SERVICE_LABEL}={self.service}"
                listed = await api.list_namespaced_endpoint_slice(
                    self.namespace, label_selector=selector
                )
                body = api_client.sanitize_for_serialization(listed)  # the JSON form
                slices = {s["metadata"]["name"]: self._targets(s) for s in body.get("items", [])}
                yield _union(slices)
                version = body.get("metadata", {}).get("resourceVersion")
                async with watch.Watch().stream(
                    api.list_namespaced_endpoint_slice,
                    self.namespace,
                    label_selector=selector,
                    resource_version=version,
                ) as events:
                    async for event in events:
                        self._apply(slices, event)
                        yield _union(slices)
        except ApiException as err:
            raise DiscoveryError(f"API server answered {err.status}: {err.reason}") from None
        except (OSError, TimeoutError, KeyError, ValueError) as err:
            raise DiscoveryError(f"{type(err).__name__}: {err}") from None
        raise DiscoveryError("the watch ended")

    async def aclose(self) -> None:
        """Nothing to release: the API client closes with the cancelled watch."""

    def _targets(self, endpoint_slice: Mapping[str, Any]) -> frozenset[Target]:
        return slice_targets(endpoint_slice, self.port, self.scheme, self.path)

    def _apply(self, slices: dict[str, frozenset[Target]], event: Mapping[str, Any]) -> None:
        raw = event.get("raw_object") or {}
        if event.get("type") == "BOOKMARK":
            return  # only a resource version, no slice
        if event.get("type") == "ERROR":
            raise DiscoveryError(f"watch error: {raw.get('message', raw)}")
        name = raw["metadata"]["name"]
        if event.get("type") == "DELETED":
            slices.pop(name, None)
        else:
            slices[name] = self._targets(raw)


def _union(slices: Mapping[str, frozenset[Target]]) -> frozenset[Target]:
    return frozenset().union(*slices.values())


async def _load_config(client: Any, config: Any) -> Any:
    """The pod's service account in a cluster, else the kubeconfig (``$KUBECONFIG`` read now,
    not when the library was imported); a configuration of its own, not the global one."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        await config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return configuration


def _own_namespace() -> str:
    try:
        return _NAMESPACE_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        return "default"
