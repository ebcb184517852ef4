"""The ``tracing:`` section of the settings (no OpenTelemetry import here)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OtlpProtocol(StrEnum):
    http = "http/protobuf"
    grpc = "grpc"


class TracingConfig(BaseModel):
    """OpenTelemetry traces exported over OTLP (needs the ``otel`` extra when enabled)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Trace proxied requests.")
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        min_length=1,
        description="The OTLP receiver: the full traces URL for http/protobuf "
        "(…:4318/v1/traces), host:port or URL for grpc (…:4317).",
    )
    protocol: OtlpProtocol = Field(
        default=OtlpProtocol.http, description="http/protobuf, or grpc (the otel-grpc extra)."
    )
    service_name: str = Field(default="switchyard", min_length=1)
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a client's sampled flag is followed.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with every export (e.g. an API key)."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="One export's time limit.")
    max_queue: int = Field(
        default=8192, ge=1, description="Spans waiting for export; beyond it new ones drop."
    )
