"""The one ``Settings`` object: a YAML file, overridden by ``SWITCHYARD_*`` environment variables.

Built once by the CLI (or a test) and passed to ``create_app``; nothing else reads the
environment. Nested fields are overridden with ``__``, e.g. ``SWITCHYARD_SERVER__PORT=9000``.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from switchyard.gateway.adapter_config import (
    AdapterConfig,
    AdaptersConfig,
    check_adapters,
    fill_adapter_defaults,
)
from switchyard.gateway.cache.config import CacheConfig
from switchyard.gateway.cascade_config import CascadeConfig, RouterKind, check_cascade
from switchyard.gateway.discovery_config import DiscoveryConfig
from switchyard.gateway.second_opinion_config import SecondOpinionConfig, check_second_opinion
from switchyard.gateway.shadow_config import ShadowConfig
from switchyard.gateway.slo_config import SloConfig
from switchyard.gateway.state import StateConfig
from switchyard.gateway.tenancy.config import AuthConfig
from switchyard.gateway.tracing.config import TracingConfig


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capability(StrEnum):
    chat = "chat"
    completions = "completions"
    embeddings = "embeddings"
    responses = "responses"  # serves POST /v1/responses itself (else translated to chat)
    rerank = "rerank"  # POST /v1/rerank, passed through (switchyard.gateway.passthrough)
    score = "score"  # POST /v1/score, passed through
    transcriptions = "transcriptions"  # POST /v1/audio/transcriptions, passed through


class Feature(StrEnum):
    """What a request may use beyond plain generation; listed in a model's ``capabilities``
    and constrained on by ``switchyard.require`` (see ``switchyard.gateway.constraints``)."""

    tools = "tools"
    json_mode = "json_mode"  # response_format {"type": "json_object"}
    json_schema = "json_schema"  # response_format {"type": "json_schema"}
    vision = "vision"  # image parts in messages


class EndpointConfig(_Strict):
    """One replica serving a model: an OpenAI-compatible base URL (ending in ``/v1``), or a
    discovery source whose every pod is a replica (weight and max_num_seqs then per pod)."""

    url: HttpUrl | None = None
    discover: DiscoveryConfig | None = None
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the bearer token."
    )
    weight: float = Field(
        default=1.0, ge=0, description="Share of traffic relative to the others (0 drains it)."
    )
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Its vLLM --max-num-seqs, when /metrics does not say."
    )
    prefill_s_per_token: float | None = Field(
        default=None,
        gt=0,
        description="Seconds of prefill per prompt token there (the planner's performance "
        "model), for prefix scoring; default upstream-wide 0.0001.",
    )

    @model_validator(mode="after")
    def _url_or_discover(self) -> EndpointConfig:
        if (self.url is None) == (self.discover is None):
            raise ValueError("give exactly one of url (one replica) or discover (its pods)")
        return self

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise ValueError("a discovered endpoint has no single URL")
        return str(self.url).rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")
    price_input_per_mtok: float = Field(ge=0, description="USD per 1M prompt tokens.")
    price_output_per_mtok: float = Field(ge=0, description="USD per 1M completion tokens.")
    max_context: int = Field(default=8192, gt=0)
    upstream_model: str | None = Field(
        default=None, description="Model name the endpoints serve, if not the gateway's name."
    )
    capabilities: tuple[Capability | Feature, ...] = Field(
        default=(Capability.chat, Capability.completions),
        description="Endpoints served (chat, completions, embeddings, responses, rerank, score, "
        "transcriptions) and features supported "
        "(tools, json_mode, json_schema, vision). A list naming no feature leaves them "
        "undeclared: such a model serves no request that needs one when routed.",
    )
    params_b: float | None = Field(
        default=None, gt=0, description="Parameters in billions (a MoE model: all experts)."
    )
    released: str | None = Field(
        default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description='Release month, "YYYY-MM".'
    )
    tags: tuple[str, ...] = Field(default=(), description="Free-form labels, e.g. eu, open.")
    endpoints: tuple[EndpointConfig, ...] = Field(
        default=(), description="Its replicas (required unless it is an adapter)."
    )
    adapter: AdapterConfig | None = Field(
        default=None, description="A LoRA adapter of another model (served by its replicas)."
    )
    fallbacks: tuple[str, ...] = Field(
        default=(), description="Models tried in order when no endpoint of this one answers."
    )

    _adapter_defaults = model_validator(mode="before")(fill_adapter_defaults)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.price_input_per_mtok
            + completion_tokens * self.price_output_per_mtok
        ) / 1e6


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error|critical)$")
    access_log: bool = False
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a new connection has to send a whole request head; a client that "
        "stalls longer (half a request line or half its headers) is answered 408 and closed.",
    )
    keep_alive_s: float = Field(
        default=5.0,
        gt=0,
        description="Idle time allowed on a kept-alive connection between requests, until "
        "the next request head is complete; then it is closed.",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="Open client connections per worker process; one more is answered 503 "
        "and closed (keep it below the process's file descriptor limit).",
    )
    gc_young_threshold: int = Field(
        default=100_000,
        ge=0,
        description="Allocations between two collections of the youngest generation "
        "(Python's default: 700). A proxied request leaves no garbage cycles, so collecting "
        "less often only saves CPU (docs/BENCHMARKS.md §13); 0 keeps Python's default.",
    )


class Balancer(StrEnum):
    switchyard = "switchyard"  # expected delay from engine metrics, power of two choices
    least_in_flight = "least_in_flight"
    round_robin = "round_robin"
    slo = "slo"  # the replica likeliest to meet upstream.slo.ttft_s; sheds early (429)


class UpstreamConfig(_Strict):
    """How the gateway talks to backends: timeouts, retries, the breaker, replica choice."""

    connect_timeout_s: float = Field(default=3.0, gt=0)
    first_byte_timeout_s: float = Field(
        default=120.0, gt=0, description="Until the response head (and a stream's first chunk)."
    )
    read_timeout_s: float = Field(default=300.0, gt=0, description="Longest gap between chunks.")
    max_attempts: int = Field(default=3, ge=1, description="Endpoints tried before the first byte.")
    retry_budget_s: float = Field(default=15.0, gt=0, description="Time allowed for all attempts.")
    pool_size: int = Field(default=1024, ge=1, description="Open connections per process.")
    breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open it.")
    breaker_cooldown_s: float = Field(default=10.0, gt=0, description="Open time before a probe.")
    endpoint_retry_ratio: float = Field(
        default=0.2, ge=0, description="Retries sent to an endpoint, as a share of its requests."
    )
    endpoint_retry_reserve: float = Field(
        default=10.0, ge=0, description="Retries an endpoint may take beyond that share (burst)."
    )
    balancer: Balancer = Field(
        default=Balancer.switchyard, description="How a replica of a model is chosen."
    )
    scrape_interval_s: float = Field(
        default=1.0, ge=0, description="How often endpoints' vLLM /metrics are read (0: never)."
    )
    replica_choices: int = Field(
        default=3, ge=1, description="Replicas sampled per pick; the least expected wait wins."
    )
    prefix_affinity: bool = Field(
        default=False, description="Send requests sharing a prompt prefix to the same replica."
    )
    affinity_prefix_chars: int = Field(
        default=1024, ge=1, description="Prompt characters keyed on without a system prompt."
    )
    prefix_scoring: bool = Field(
        default=False,
        description="Balancer switchyard: weigh the prefill each replica's prefix cache would "
        "save (from an index of the prompt blocks this gateway sent it) against its expected "
        "wait. Costs nothing for a model with one replica.",
    )
    prefix_index_blocks: int = Field(
        default=65_536,
        ge=1,
        description="Prompt blocks the prefix index remembers, all models together; least "
        "recently sent forgotten first (~300 bytes each).",
    )
    prefix_block_tokens: int = Field(
        default=64,
        ge=16,
        description="Tokens per block of the prefix index (4 of vLLM's 16-token blocks: a "
        "quarter of the hashing and lookups, matches found to within 64 tokens).",
    )
    prefix_max_tokens: int = Field(
        default=8192, ge=16, description="Prompt tokens hashed per request for prefix scoring."
    )
    max_queue_delay_s: float = Field(
        default=30.0, gt=0, description="Expected wait beyond which requests are shed (429)."
    )
    stream_keepalive_s: float = Field(
        default=15.0,
        ge=0,
        description="While a stream waits for its first token, send an SSE comment this often "
        "so idle timeouts of load balancers do not cut it (0: never).",
    )
    slo: SloConfig = Field(default_factory=SloConfig, description="Balancer slo's targets.")
    seed: int | None = Field(default=None, description="Seeds replica sampling (tests).")


class BanditScope(StrEnum):
    global_ = "global"  # one set of statistics per router, learned from every tenant
    tenant = "tenant"  # one per router and tenant: a tenant's feedback shapes only its routing


class FeedbackFrom(StrEnum):
    key = "key"  # only the API key that made the routed request
    tenant = "tenant"  # any key of that key's tenant


class BanditConfig(_Strict):
    """Online learning on top of a router: linear Thompson sampling on the residual of its
    predicted reward, learned from feedback (see ``switchyard.routers.online.bandit``)."""

    enabled: bool = Field(default=True, description="Learn from feedback and explore.")
    dim: int = Field(default=48, ge=1, le=512, description="Random projection of the embedding.")
    prior_strength: float = Field(
        default=100.0, gt=0, description="How many observations the offline prior is worth."
    )
    noise: float = Field(default=0.05, ge=0, description="Exploration scale (0: greedy).")
    discount: float = Field(
        default=0.995, gt=0, le=1, description="Forgetting per observation, for drift."
    )
    seed: int = Field(default=0, description="Seeds the projection; replicas must agree.")
    scope: BanditScope = Field(
        default=BanditScope.global_,
        description="Statistics shared by all tenants (global) or kept per tenant (tenant).",
    )


class RouterConfig(_Strict):
    """A routed model: a trained router directory choosing among configured models."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")
    artifact: Path = Field(description="Directory of a saved router (holds router.json).")
    candidates: tuple[str, ...] | None = Field(
        default=None, description="Models it may choose; default: the configured ones it knows."
    )
    cost_weight: float | None = Field(
        default=None, ge=0, description="Quality points per USD; default: the artifact's."
    )
    default: bool = Field(default=False, description='The router behind "model": "auto".')
    latency_weight: float = Field(
        default=0.1, ge=0, description="Quality points given up per second of expected wait."
    )
    bandit: BanditConfig = BanditConfig()
    kind: RouterKind = Field(default=RouterKind.router, description="router or cascade.")
    cascade: CascadeConfig | None = None  # kind cascade: how it escalates (defaults if unset)
    second_opinion: SecondOpinionConfig | None = None  # kind router: a checker, escalate_to

    def artifact_models(self) -> list[str]:
        """The models named in the artifact's router.json (ValueError if unreadable)."""
        try:
            manifest = json.loads((self.artifact / "router.json").read_text(encoding="utf-8"))
            models = manifest["models"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{self.artifact} is not a saved router directory: {err}") from None
        if not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
            raise ValueError(f"{self.artifact}/router.json: 'models' is not a list of names")
        return models


class RoutingConfig(_Strict):
    """How routed requests are decided and recorded."""

    embedder_cache: Path | None = Field(
        default=None, description="Cache holding the exported embedder (~/.cache/switchyard)."
    )
    embedder_threads: int = Field(default=1, ge=1, description="ONNX Runtime intra-op threads.")
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="Extra wait to fill a batch when the embedder is idle (0: go at once; "
        "prompts arriving while a batch is embedded always form the next batch).",
    )
    max_batch: int = Field(default=32, ge=1, description="Prompts embedded in one call at most.")
    records: int = Field(default=10_000, ge=1, description="Outcome records kept in memory.")
    refresh_s: float = Field(
        default=1.0, gt=0, description="How often a replica reads the shared bandit statistics."
    )
    buffer: int = Field(
        default=10_000, ge=1, description="Records held while Redis is away (oldest dropped)."
    )
    stream_maxlen: int = Field(
        default=1_000_000, ge=1, description="Outcome stream length kept in Redis (approx.)."
    )
    decision_ttl_s: int = Field(
        default=7 * 86400, ge=1, description="How long feedback can be given for a decision."
    )
    feedback_from: FeedbackFrom = Field(
        default=FeedbackFrom.key,
        description="Who may score a routed request (auth on): its key, or its key's tenant.",
    )


AUTO = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHYARD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    auth: AuthConfig = AuthConfig()
    state: StateConfig = StateConfig()
    routers: tuple[RouterConfig, ...] = ()
    routing: RoutingConfig = RoutingConfig()
    tracing: TracingConfig = TracingConfig()
    cache: CacheConfig = CacheConfig()
    adapters: AdaptersConfig = AdaptersConfig()
    shadow: ShadowConfig = ShadowConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        for i, model in enumerate(self.models):
            for j, ep in enumerate(model.endpoints):
                if ep.api_key_env and ep.api_key_env not in os.environ:
                    raise ValueError(
                        f"models.{i}.endpoints.{j}.api_key_env: environment variable "
                        f"{ep.api_key_env!r} is not set"
                    )
        for i, model in enumerate(self.models):
            bad = [f for f in model.fallbacks if f not in names or f == model.name]
            if bad:
                raise ValueError(f"models.{i}.fallbacks: unknown or self: {', '.join(bad)}")
        unknown = [m for k in self.auth.keys for m in k.models if m not in names]
        unknown += [m for m in self.auth.model_limits if m not in names]
        if unknown:
            raise ValueError(f"auth: unknown model(s) {', '.join(sorted(set(unknown)))}")
        check_adapters(self.models, self.adapters.on_demand_loading)
        self._check_routers(names)
        return self

    def _check_routers(self, names: list[str]) -> None:
        routers = [r.name for r in self.routers]
        clash = sorted({n for n in routers if routers.count(n) > 1 or n in names})
        if clash:
            raise ValueError(f"routers: names must be unique and not model names: {clash}")
        if self.routers and AUTO in names:
            raise ValueError(f"routers: a model named {AUTO!r} hides the routers' alias")
        if sum(r.default for r in self.routers) > 1:
            raise ValueError("routers: at most one router may be the default")
        for i, router in enumerate(self.routers):
            try:
                found = self.candidates(router)
                check_second_opinion(router.kind, router.second_opinion, names)
                check_cascade(router.kind, router.cascade, router.artifact, found)
            except ValueError as err:
                raise ValueError(f"routers.{i}: {err}") from None

    def candidates(self, router: RouterConfig) -> tuple[str, ...]:
        """The models ``router`` chooses among (ValueError naming the field if unusable)."""
        known = router.artifact_models()
        configured = [m.name for m in self.models]
        if router.candidates is None:
            found = tuple(m for m in configured if m in known)
            if not found:
                raise ValueError(
                    f"artifact: {router.artifact} knows none of the configured models "
                    f"(it knows {', '.join(known)})"
                )
            return found
        bad = [m for m in router.candidates if m not in configured]
        if bad:
            raise ValueError(f"candidates: unknown model(s) {', '.join(bad)}")
        bad = [m for m in router.candidates if m not in known]
        if bad:
            raise ValueError(f"candidates: the artifact does not know {', '.join(bad)}")
        if not router.candidates:
            raise ValueError("candidates: must not be empty")
        return router.candidates

    def router(self, name: str) -> RouterConfig | None:
        """The router serving ``name``: its own name, or "auto" for the default (or only) one."""
        for r in self.routers:
            if r.name == name:
                return r
        if name == AUTO and self.routers:
            default = [r for r in self.routers if r.default]
            if default or len(self.routers) == 1:
                return (default or list(self.routers))[0]
        return None

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def build_settings(data: dict[str, Any]) -> Settings:
    """Validate a config mapping (plus environment overrides) into ``Settings``."""
    try:
        return Settings(**data)
    except ValidationError as err:
        raise SettingsError(_describe(err)) from None


def load_settings(path: str | Path) -> Settings:
    """Read a YAML config file; raise ``SettingsError`` naming the bad field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise SettingsError(f"cannot read config file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SettingsError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping at the top level")
    return build_settings(data)
