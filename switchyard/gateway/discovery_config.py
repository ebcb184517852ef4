"""A model's endpoint discovery in the settings: where its pods are found (``discovery:``
of an endpoint); every address found is an endpoint of its own."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class DiscoveryKind(StrEnum):
    dns = "dns"  # the A/AAAA records of a name (a headless Service), re-resolved
    kubernetes = "kubernetes"  # a Service's EndpointSlices, watched (the "kubernetes" extra)


class DiscoveryConfig(BaseModel):
    """Where a model's pods are found; every address found is an endpoint of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DiscoveryKind = DiscoveryKind.dns
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="DNS name (dns: e.g. the headless Service's FQDN) or the Service name "
        "(kubernetes).",
    )
    port: int = Field(ge=1, le=65535, description="The pods' OpenAI API port.")
    scheme: str = Field(default="http", pattern=r"^https?$")
    path: str = Field(default="/v1", pattern=r"^(/[^/\s]*)*$", description="OpenAI API root.")
    namespace: str | None = Field(
        default=None, description="kubernetes: the Service's namespace (default: the gateway's)."
    )
    interval_s: float = Field(
        default=5.0,
        gt=0,
        description="dns: how often the name is resolved again; kubernetes: "
        "wait before a broken watch is opened again.",
    )
    timeout_s: float = Field(default=2.0, gt=0, description="One lookup's time limit.")
    nameserver: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Fa-f.:\[\]]+$",
        description="dns: ask this server (IP or [IP]:port) instead of the system resolver.",
    )
