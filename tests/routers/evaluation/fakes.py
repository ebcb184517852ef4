"""Stand-ins for the router under test and small synthetic routing datasets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.prediction import Prediction

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def _cost(data: RoutingDataset) -> np.ndarray:
    return np.zeros(data.quality.shape) if data.cost is None else np.nan_to_num(data.cost)


class NoisyOracle:
    """Reads the true quality (and true cost) of the rows it is asked about, plus noise."""

    def __init__(self, noise: float = 0.3, seed: int = 0) -> None:
        self.noise, self.seed = noise, seed
        self._models: list[str] = []

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def fit(self, data: RoutingDataset) -> NoisyOracle:
        self._models = list(data.models)
        return self

    def predict(self, data: RoutingDataset) -> Prediction:
        rng = np.random.default_rng(self.seed)
        noise = rng.normal(0.0, self.noise, data.quality.shape)
        return Prediction(quality=np.nan_to_num(data.quality) + noise, cost=_cost(data))

    def clone(self) -> NoisyOracle:
        return NoisyOracle(self.noise, self.seed)


class ConstantRouter:
    """Always prefers ``choice`` (predicted quality 1, others 0) and predicts no cost."""

    def __init__(self, choice: str, models: Sequence[str] | None = None) -> None:
        self.choice = choice
        self._models = list(models or [])

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def fit(self, data: RoutingDataset) -> ConstantRouter:
        self._models = list(data.models)
        return self

    def predict(self, data: RoutingDataset) -> Prediction:
        q = np.zeros((len(data), len(self._models)))
        q[:, self._models.index(self.choice)] = 1.0
        return Prediction(quality=q, cost=np.zeros_like(q))

    def clone(self) -> ConstantRouter:
        return ConstantRouter(self.choice)


class BestPerTask:
    """Picks the model with the best mean training quality on the prompt's task."""

    def __init__(self) -> None:
        self._models: list[str] = []
        self._best: dict[str, int] = {}
        self._overall = 0

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def fit(self, data: RoutingDataset) -> BestPerTask:
        self._models = list(data.models)
        tasks = np.asarray(data.tasks, dtype=object)
        for task in set(data.tasks):
            means = np.nanmean(data.quality[tasks == task], axis=0)
            self._best[task] = int(np.argmax(means))
        self._overall = int(np.argmax(np.nanmean(data.quality, axis=0)))
        return self

    def predict(self, data: RoutingDataset) -> Prediction:
        q = np.zeros((len(data), len(self._models)))
        for i, task in enumerate(data.tasks):
            q[i, self._best.get(task, self._overall)] = 1.0
        return Prediction(quality=q, cost=np.zeros_like(q))

    def clone(self) -> BestPerTask:
        return BestPerTask()


class GroupSpy(NoisyOracle):
    """Records the groups it was fitted on and the overlap with the groups it predicts."""

    overlaps: list[set[str]]

    def __init__(self, log: list[set[str]] | None = None) -> None:
        super().__init__(noise=0.3)
        self.overlaps = log if log is not None else []
        self._fit_groups: set[str] = set()

    def fit(self, data: RoutingDataset) -> GroupSpy:
        super().fit(data)
        self._fit_groups = set(data.groups or [])
        return self

    def predict(self, data: RoutingDataset) -> Prediction:
        self.overlaps.append(self._fit_groups & set(data.groups or []))
        return super().predict(data)

    def clone(self) -> GroupSpy:
        return GroupSpy(self.overlaps)


def bernoulli(rng: np.random.Generator, n: int, accuracy: Sequence[float]) -> np.ndarray:
    return (rng.random((n, len(accuracy))) < np.asarray(accuracy)).astype(np.float64)


def routerdc_like(seed: int = 0) -> RoutingDataset:
    """3 models, RouterDC's 5 ID tasks (train + test) and 3 OOD tasks (no split label)."""
    rng = np.random.default_rng(seed)
    acc = {
        "gsm8k": (0.8, 0.4, 0.3),
        "humaneval": (0.6, 0.5, 0.2),
        "arc_challenge": (0.5, 0.7, 0.4),
        "mmlu": (0.5, 0.6, 0.7),
        "cmmlu": (0.3, 0.4, 0.8),
        "MATH_prealgebra": (0.7, 0.3, 0.3),
        "mbpp": (0.5, 0.6, 0.3),
        "ceval": (0.3, 0.3, 0.7),
    }
    blocks: list[tuple[str, str, np.ndarray]] = []
    for task, a in acc.items():
        ood = task in ("MATH_prealgebra", "mbpp", "ceval")
        for split, n in (("", 40),) if ood else (("train", 60), ("test", 40)):
            blocks.append((task, split, bernoulli(rng, n, a)))
    quality = np.vstack([b[2] for b in blocks])
    return RoutingDataset(
        prompts=[f"q{i}" for i in range(len(quality))],
        models=["A", "B", "C"],
        quality=quality,
        tasks=[b[0] for b in blocks for _ in range(len(b[2]))],
        splits=[b[1] for b in blocks for _ in range(len(b[2]))],
        name="routerdc-like",
    )


def routellm_like(seed: int = 0, subjects: int = 12) -> RoutingDataset:
    """Weak/strong pair: an MMLU-like task grouped by subject and a GSM8K-like task."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 80, subjects)
    mmlu = bernoulli(rng, int(sizes.sum()), (0.65, 0.8))
    gsm = bernoulli(rng, 150, (0.6, 0.85))
    groups = [f"subject_{s}" for s, k in enumerate(sizes) for _ in range(int(k))]
    return RoutingDataset(
        prompts=[f"p{i}" for i in range(len(mmlu) + len(gsm))],
        models=[WEAK, STRONG],
        quality=np.vstack([mmlu, gsm]),
        tasks=["mmlu"] * len(mmlu) + ["gsm8k"] * len(gsm),
        groups=groups + ["gsm8k"] * len(gsm),
        name="routellm-like",
    )


def routerbench_like(seed: int = 0, n: int = 300) -> RoutingDataset:
    """4 priced models: cheap/weak, mid, expensive/strong and an overpriced weak one."""
    rng = np.random.default_rng(seed)
    quality = bernoulli(rng, n, (0.5, 0.7, 0.9, 0.3))
    unit = np.array([0.001, 0.01, 0.1, 0.05])
    cost = unit * rng.uniform(0.5, 1.5, (n, 1))
    return RoutingDataset(
        prompts=[f"r{i}" for i in range(n)],
        models=["cheap", "mid", "strong", "overpriced"],
        quality=quality,
        tasks=["task"] * n,
        cost=cost,
        splits=["train" if i % 3 else "test" for i in range(n)],
        name="routerbench-like",
    )
