"""Expected USD cost of sending a prompt to each model.

Two sources, per model, in this order:

* per-query costs in the training data (RouterBench has them): a least-squares line
  ``cost ≈ a + b · prompt_tokens`` fitted on the rows where that model's cost is known;
* list prices (USD per million input/output tokens): ``prompt_tokens · p_in + E[out] · p_out``
  where ``E[out]`` is the model's mean output length in the data (or ``default_output_tokens``).

A model with neither costs 0 (the policy then ranks it by quality alone). Prompt tokens are
estimated as ``len(text) / chars_per_token``; good enough for ranking, and tokenizer-free."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.routers.models.base import FloatArray, NotFittedError


def prompt_tokens(prompts: Sequence[str], chars_per_token: float = 4.0) -> FloatArray:
    """Estimated prompt tokens per prompt."""
    return np.array([max(1.0, len(p) / chars_per_token) for p in prompts])


class CostPredictor:
    """Per-model linear cost in prompt tokens; see the module docstring for the sources."""

    def __init__(
        self,
        prices: Mapping[str, tuple[float, float]] | None = None,
        default_output_tokens: float = 256.0,
        chars_per_token: float = 4.0,
    ) -> None:
        self.prices = dict(prices or {})
        self.default_output_tokens = default_output_tokens
        self.chars_per_token = chars_per_token

    def fit(
        self,
        prompts: Sequence[str],
        models: Sequence[str],
        cost: FloatArray | None = None,
        output_tokens: FloatArray | None = None,
    ) -> CostPredictor:
        tokens = prompt_tokens(prompts, self.chars_per_token)
        coef = np.zeros((len(models), 2))
        source: list[str] = []
        for j, model in enumerate(models):
            observed = None if cost is None else cost[:, j]
            if observed is not None and (~np.isnan(observed)).sum() >= 2:
                coef[j] = _line(tokens, observed)
                source.append("data")
            elif model in self.prices:
                p_in, p_out = self.prices[model]
                out = _mean_or(output_tokens, j, self.default_output_tokens)
                coef[j] = (out * p_out / 1e6, p_in / 1e6)
                source.append("prices")
            else:
                source.append("none")
        self.models_ = list(models)
        self.coef_ = coef
        self.source_ = source
        return self

    def predict(self, prompts: Sequence[str]) -> FloatArray:
        """Expected USD per call, shape (n, m)."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("CostPredictor is not fitted")
        tokens = prompt_tokens(prompts, self.chars_per_token)
        return np.maximum(self.coef_[:, 0][None, :] + tokens[:, None] * self.coef_[:, 1], 0.0)

    def to_json(self) -> dict[str, Any]:
        if not hasattr(self, "coef_"):
            raise NotFittedError("CostPredictor is not fitted")
        return {
            "prices": {m: list(p) for m, p in self.prices.items()},
            "default_output_tokens": self.default_output_tokens,
            "chars_per_token": self.chars_per_token,
            "models": self.models_,
            "coef": self.coef_.tolist(),
            "source": self.source_,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CostPredictor:
        prices = {m: (float(p[0]), float(p[1])) for m, p in data["prices"].items()}
        out = cls(prices, data["default_output_tokens"], data["chars_per_token"])
        out.models_ = list(data["models"])
        out.coef_ = np.asarray(data["coef"], dtype=np.float64).reshape(len(out.models_), 2)
        out.source_ = list(data["source"])
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))


def _line(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through the known points (slope ≥ 0)."""
    ok = ~np.isnan(y)
    xs, ys = x[ok], y[ok]
    if xs.var() < 1e-12:
        return float(ys.mean()), 0.0
    slope = max(0.0, float(((xs - xs.mean()) * (ys - ys.mean())).mean() / xs.var()))
    return float(ys.mean() - slope * xs.mean()), slope


def _mean_or(values: FloatArray | None, col: int, default: float) -> float:
    if values is None or np.isnan(values[:, col]).all():
        return default
    return float(np.nanmean(values[:, col]))
