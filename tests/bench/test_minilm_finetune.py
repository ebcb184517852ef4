"""MiniLM fine-tuned with RouterDC's losses (bench/minilm_finetune.py): the split encoder is the
whole model until it trains, training moves only the upper layers, and reset undoes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset
from tests.support.bench import bench_module

TEXTS = [
    "What is the capital of France?",
    "Solve 2x + 3 = 7 for x and show your steps.",
    "def add(a, b):\n    return a + b",
    "计算 12 乘以 7 的结果。",
]


@pytest.fixture(scope="module")
def finetune() -> Any:
    return bench_module("minilm_finetune")


@pytest.fixture(scope="module")
def encoder(finetune: Any) -> Any:
    return finetune.Encoder(frozen=4, max_tokens=32)


def _whole_model(encoder: Any, text: str) -> np.ndarray:
    import torch

    ids = torch.tensor([encoder.tokenizer.encode(text).ids])
    with torch.no_grad():
        out = encoder.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                            token_type_ids=torch.zeros_like(ids)).last_hidden_state  # fmt: skip
    return np.asarray(torch.nn.functional.normalize(out.mean(1), dim=1)[0])


def test_cached_lower_layers_then_upper_layers_give_the_whole_models_embedding(
    finetune: Any, encoder: Any
) -> None:
    states = encoder.lower(TEXTS)
    vectors = finetune.embed_all(encoder, states, "test").embed(TEXTS)
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert float(vector @ _whole_model(encoder, text)) > 0.9995  # float16 cache


def test_training_moves_the_upper_layers_only_and_reset_restores_them(
    finetune: Any, encoder: Any
) -> None:
    import torch

    states = encoder.lower(TEXTS)
    quality = np.array(
        [[1.0, 0.0, 0.5, 0.2, 0.9, 0.1, 0.3]] * 2 + [[0.0, 1.0, 0.2, 0.5, 0.1, 0.9, 0.7]] * 2
    )
    data = RoutingDataset(prompts=TEXTS, models=[f"m{i}" for i in range(7)], quality=quality,
                          tasks=["qa", "math", "code", "math"])  # fmt: skip
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    finetune.train(encoder, states, data, epochs=1, t=0.2)
    after = encoder.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("encoder.layer.4.", "encoder.layer.5.")) for k in moved)
    encoder.reset()
    assert all(torch.equal(v, encoder.model.state_dict()[k]) for k, v in before.items())
