"""Per-request model constraints: what a request needs of the model that serves it.

Two sources. Explicit: the body's ``switchyard.require`` object, e.g. ``{"max_params_b": 10,
"min_context": 32000, "capabilities": ["tools"], "released_after": "2025-01", "tags":
["eu"]}``. Implicit: what the request uses (``tools``: tools;
``response_format`` json_object / json_schema: json_mode / json_schema; on a routed request,
image parts in ``messages``: vision). They are checked against the models' metadata in the
config (``ModelConfig``: ``params_b``, ``max_context``, ``capabilities``, ``released``,
``tags``).

A model whose config does not give a field does not satisfy an explicit constraint on it (a
model listing no feature in ``capabilities`` has none declared; one without ``max_context``
given does not satisfy ``min_context``), so ``switchyard.require`` never lets an unknown model
through. Implicit needs are held only against models that declare features: a config that
declares none (every config before this feature) serves tools and JSON mode as it always did.

A routed request's candidates are filtered before the policy decides; none left is a 400
naming each model and the constraints it fails. A concrete model that fails is a 400 too.
Fallbacks are filtered the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.settings import Feature, ModelConfig

REQUIRE = "require"  # the field of the ``switchyard`` options object
_PARAM = f"switchyard.{REQUIRE}"
_FIELDS = ("max_params_b", "min_params_b", "min_context", "capabilities", "released_after",
           "tags")  # fmt: skip
_FEATURES = frozenset(Feature)
_JSON_MODES = {"json_object": Feature.json_mode, "json_schema": Feature.json_schema}
_MAY_NEED = frozenset({"switchyard", "tools", "response_format"})  # body fields needs_of reads
CODE = "constraints_unsatisfiable"


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request needs of its model. ``features`` maps each needed feature to the
    request field it comes from (``switchyard.require.capabilities``, ``tools``, ...)."""

    max_params_b: float | None = None
    min_params_b: float | None = None
    min_context: int | None = None
    released_after: str | None = None  # "YYYY-MM": released in that month or later
    tags: frozenset[str] = frozenset()
    features: Mapping[Feature, str] | None = None

    def failures(self, model: ModelConfig) -> list[tuple[str, str]]:
        """(param, what fails) for each constraint ``model`` does not satisfy."""
        out: list[tuple[str, str]] = []
        size = model.params_b
        if self.max_params_b is not None and (size is None or size > self.max_params_b):
            out.append(_fail("max_params_b", f"≤ {self.max_params_b:g}", _has(size)))
        if self.min_params_b is not None and (size is None or size < self.min_params_b):
            out.append(_fail("min_params_b", f"≥ {self.min_params_b:g}", _has(size)))
        if self.min_context is not None:
            context = model.max_context if "max_context" in model.model_fields_set else None
            if context is None or context < self.min_context:
                out.append(_fail("min_context", f"≥ {self.min_context}", _has(context)))
        if self.released_after is not None:
            released = model.released
            if released is None or released < self.released_after:
                out.append(_fail("released_after", f"{self.released_after} or later",
                                 _has(released)))  # fmt: skip
        missing = sorted(self.tags.difference(model.tags))
        if missing:
            out.append(_fail("tags", ", ".join(missing), "not tagged"))
        out += self._feature_failures(model)
        return out

    def _feature_failures(self, model: ModelConfig) -> list[tuple[str, str]]:
        if not self.features:
            return []
        why = "not supported" if _declared(model) else "not declared"
        return [
            (source, f"{_what_needs(source)} {feature.value} ({why})")
            for feature, source in self.features.items()
            if feature not in model.capabilities
        ]

    def refuses(self, model: ModelConfig) -> list[tuple[str, str]]:
        """The failures ``model`` is refused for: all, except implicit needs on a model that
        declares no features."""
        failures = self.failures(model)
        if _declared(model):
            return failures
        return [f for f in failures if f[0].startswith(_PARAM)]

    def allows(self, model: ModelConfig | None) -> bool:
        """Whether ``model`` may serve the request."""
        return model is not None and not self.refuses(model)


def _what_needs(source: str) -> str:
    """How a message names where a feature need comes from."""
    return "capabilities" if source.startswith(_PARAM) else f"{source} needs"


def _fail(name: str, wanted: str, found: str) -> tuple[str, str]:
    return f"{_PARAM}.{name}", f"{name} {wanted} ({found})"


def _has(value: float | int | str | None) -> str:
    if value is None:
        return "unknown"
    return f"has {value:g}" if isinstance(value, float) else f"has {value}"


def _declared(model: ModelConfig) -> bool:
    return any(c in _FEATURES for c in model.capabilities)


def needs_of(data: Mapping[str, Any], images: bool) -> Needs | None:
    """What the request body needs (None: nothing); 400 for a malformed ``require``.
    ``images``: also look for image parts in ``messages`` (routed requests)."""
    if not (data.keys() & _MAY_NEED) and not (images and _has_images(data.get("messages"))):
        return None  # the common case: nothing to read
    options = data.get("switchyard")
    given = options.get(REQUIRE) if isinstance(options, dict) else None
    needs = _parse(given) if given is not None else Needs()
    features = dict(needs.features or {})
    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        features.setdefault(Feature.tools, "tools")
    fmt = data.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    mode = _JSON_MODES.get(kind) if isinstance(kind, str) else None
    if mode is not None:
        features.setdefault(mode, "response_format")
    if images and _has_images(data.get("messages")):
        features.setdefault(Feature.vision, "messages")
    if given is None and not features:
        return None
    return Needs(needs.max_params_b, needs.min_params_b, needs.min_context,
                 needs.released_after, needs.tags, features or None)  # fmt: skip


def _has_images(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
            for part in content
        ):
            return True
    return False


def _parse(given: Any) -> Needs:
    if not isinstance(given, dict):
        raise InvalidRequestError(f"'{_PARAM}' must be an object", param=_PARAM)
    unknown = sorted(set(given) - set(_FIELDS))
    if unknown:
        raise InvalidRequestError(
            f"unknown '{_PARAM}' field(s): {', '.join(unknown)}; known: {', '.join(_FIELDS)}",
            param=_PARAM,
        )
    context = given.get("min_context")
    if context is not None and (
        isinstance(context, bool) or not isinstance(context, int) or context < 1
    ):
        raise InvalidRequestError("'min_context' must be a positive integer",
                                  param=f"{_PARAM}.min_context")  # fmt: skip
    features = {f: f"{_PARAM}.capabilities" for f in _features(given.get("capabilities"))}
    return Needs(
        max_params_b=_size(given.get("max_params_b"), "max_params_b"),
        min_params_b=_size(given.get("min_params_b"), "min_params_b"),
        min_context=context,
        released_after=_month(given.get("released_after")),
        tags=frozenset(_strings(given.get("tags"), "tags")),
        features=features or None,
    )


def _size(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"'{name}' must be a number of billions of parameters",
                                  param=f"{_PARAM}.{name}")  # fmt: skip
    if value <= 0:
        raise InvalidRequestError(f"'{name}' must be > 0", param=f"{_PARAM}.{name}")
    return float(value)


def _month(value: Any) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, str) and len(value) == 7 and value[4] == "-"
    if not (ok and value[:4].isdigit() and value[5:].isdigit() and 1 <= int(value[5:]) <= 12):
        raise InvalidRequestError("'released_after' must be a month, \"YYYY-MM\"",
                                  param=f"{_PARAM}.released_after")  # fmt: skip
    return str(value)


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise InvalidRequestError(f"'{name}' must be a list of strings", param=f"{_PARAM}.{name}")
    return value


def _features(value: Any) -> list[Feature]:
    names = _strings(value, "capabilities")
    unknown = [n for n in names if n not in Feature.__members__]
    if unknown:
        raise InvalidRequestError(
            f"unknown capabilities {', '.join(unknown)}; known: {', '.join(Feature)}",
            param=f"{_PARAM}.capabilities",
        )
    return [Feature(n) for n in names]


def unsatisfiable(
    headline: str, failures: Mapping[str, list[tuple[str, str]]]
) -> InvalidRequestError:
    """The 400 for constraints no model left can meet: each model and what it fails; the
    param is the constraint every model fails, when there is one."""
    params = [{p for p, _ in f} for f in failures.values()]
    common = set.intersection(*params) if params else set()
    detail = "; ".join(f"{m}: {', '.join(t for _, t in f)}" for m, f in failures.items())
    param = min(common) if common else _PARAM
    return InvalidRequestError(f"{headline} ({detail})", param=param, code=CODE)


def filter_candidates(
    router: str,
    candidates: Iterable[str],
    needs: Needs,
    model: Callable[[str], ModelConfig | None],
    metrics: GatewayMetrics,
) -> frozenset[str]:
    """The candidates that satisfy ``needs``; 400 naming what each fails if none does."""
    kept: list[str] = []
    failed: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(candidates):
        config = model(name)
        failures = needs.refuses(config) if config is not None else [(_PARAM, "not configured")]
        if failures:
            failed[name] = failures
        else:
            kept.append(name)
    if not kept:
        err = unsatisfiable(f"no candidate of router '{router}' satisfies the constraints", failed)
        metrics.constraint_refusals.labels(router, err.param).inc()
        raise err
    return frozenset(kept)


def check_model(model: ModelConfig, needs: Needs, metrics: GatewayMetrics) -> None:
    """400 if the concrete ``model`` fails what the request needs of it."""
    failures = needs.refuses(model)
    if failures:
        headline = f"model '{model.name}' does not satisfy the constraints"
        err = unsatisfiable(headline, {model.name: failures})
        metrics.constraint_refusals.labels(model.name, err.param).inc()
        raise err


def allowing(
    may_use: Callable[[str], bool], needs: Needs, models: Mapping[str, ModelConfig]
) -> Callable[[str], bool]:
    """``may_use`` narrowed to the models ``needs`` allows (for the fallback chain)."""
    return lambda name: may_use(name) and needs.allows(models.get(name))
