"""Fine-tuning MiniLM itself with RouterDC's losses (issue 15, part 1), on the 2 CPU cores.

The embedding layer and the lower ``--frozen`` transformer layers stay fixed: their output for
every prompt is computed once and cached (float16, per prompt, unpadded). The upper layers,
the mean pooling and one learned vector per model are trained with RouterDC's sample-model
loss (each prompt's 3 best models against its 3 worst, temperature t) and sample-sample loss
(prompts of the same task are positives), AdamW, batch 32 (``encoder_finetune._losses``).

Epochs and t are chosen on a validation fifth of the RouterDC train split (the default router
trained on the other four fifths, scored by the per-task mean quality of the models it
chooses); the encoder is then trained on the whole train split with the chosen values, and the
default router on its embeddings is evaluated on the RouterDC test sets as ``switchyard eval``
does. Prompts are cut to their first ``--max-tokens`` tokens. The frozen encoder (0 epochs) is
scored the same way, so the gain is the fine-tuning's alone.

    .venv/bin/python bench/minilm_finetune.py [--frozen 4] [--max-tokens 128] [--epochs 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent))

from encoder_finetune import _losses, validation_score  # noqa: E402
from routerkit import DATA, LoadProbe, machine_info, write_results  # noqa: E402

OUT = BENCH / "results" / "minilm_finetune.json"
BATCH = 32


class Lookup:
    """An embedder over precomputed vectors (the pipeline's interface: name, dim, embed)."""

    def __init__(self, name: str, vectors: dict[str, np.ndarray]) -> None:
        self._name, self._vectors = name, vectors
        self.dim = len(next(iter(vectors.values())))

    @property
    def name(self) -> str:
        return self._name

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Any:
        del batch_size, progress
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


class Encoder:
    """MiniLM split at ``frozen`` layers: ``lower`` runs once per prompt, ``upper`` trains."""

    def __init__(self, frozen: int, max_tokens: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from tokenizers import Tokenizer
        from transformers import AutoModel

        from switchyard.routers.embedding.export import source_model_dir

        src = source_model_dir()
        self.model = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
        self.tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        self.frozen = frozen
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}

    def reset(self) -> None:
        self.model.load_state_dict(self.initial)

    def lower(self, prompts: Sequence[str]) -> dict[str, Any]:
        """Each prompt's hidden states after the frozen layers (float16 tensors)."""
        import torch

        ids = [e.ids for e in self.tokenizer.encode_batch(list(prompts))]
        order = np.argsort([len(i) for i in ids])
        out: dict[str, Any] = {}
        with torch.no_grad():
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                x, mask = self._padded([torch.tensor(ids[r]) for r in rows])
                h = self.model.embeddings(input_ids=x, token_type_ids=torch.zeros_like(x))
                for layer in self.model.encoder.layer[: self.frozen]:
                    h = self._layer(layer, h, mask)
                for r, row in zip(rows, h, strict=True):
                    out[prompts[r]] = row[: len(ids[r])].to(torch.float16)
        return out

    def upper(self, states: Sequence[Any]) -> Any:
        """Mean-pooled, L2-normalised embeddings of cached lower states (trainable)."""
        import torch

        h, mask = self._padded([s.float() for s in states])
        for layer in self.model.encoder.layer[self.frozen :]:
            h = self._layer(layer, h, mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1)

    @staticmethod
    def _padded(rows: Sequence[Any]) -> tuple[Any, Any]:
        import torch

        x = torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)
        lengths = torch.tensor([len(r) for r in rows])
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long()
        return x, mask

    @staticmethod
    def _layer(layer: Any, h: Any, mask: Any) -> Any:
        import torch

        extended = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        out = layer(h, attention_mask=extended)
        return out[0] if isinstance(out, tuple) else out


def train(enc: Encoder, states: dict[str, Any], data: Any, epochs: int, t: float) -> None:
    """``epochs`` of the two losses over ``data``'s prompts, from the pretrained weights."""
    import torch

    enc.reset()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    upper = [p for layer in enc.model.encoder.layer[enc.frozen :] for p in layer.parameters()]
    width = enc.model.config.hidden_size
    models = torch.nn.Parameter(torch.randn(data.quality.shape[1], width) * 0.1)
    opt = torch.optim.AdamW([{"params": upper, "lr": 3e-5}, {"params": [models], "lr": 1e-3}])
    q = torch.tensor(np.nan_to_num(data.quality), dtype=torch.float32)
    task_of = {name: i for i, name in enumerate(sorted(set(data.tasks)))}
    cluster = torch.tensor([task_of[name] for name in data.tasks])
    enc.model.train()
    for epoch in range(epochs):
        start, losses = time.perf_counter(), []
        for batch in np.array_split(rng.permutation(len(data)), max(1, len(data) // BATCH)):
            e = enc.upper([states[data.prompts[b]] for b in batch])
            loss = _losses(e, models, q[batch], cluster[batch], t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"    epoch {epoch + 1}: loss {np.mean(losses):.4f}, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    enc.model.eval()


def embed_all(enc: Encoder, states: dict[str, Any], name: str) -> Lookup:
    import torch

    prompts = list(states)
    vectors: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(prompts), 128):
            chunk = prompts[start : start + 128]
            for p, v in zip(chunk, enc.upper([states[p] for p in chunk]).numpy(), strict=True):
                vectors[p] = v
    return Lookup(name, vectors)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frozen", type=int, default=4, help="lower layers kept fixed (of 6)")
    p.add_argument("--max-tokens", type=int, default=128, help="tokens kept per prompt")
    p.add_argument("--epochs", default="1,2", help="validation grid: epochs")
    p.add_argument("--temperatures", default="0.1,0.2", help="validation grid: t")
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def choose(enc: Encoder, states: dict[str, Any], train_rows: Any, a: argparse.Namespace,
           cache: Path) -> tuple[int, float, dict[str, float]]:  # fmt: skip
    """(epochs, t) with the best validation score, and every score (``frozen``: no training)."""
    held = np.zeros(len(train_rows), dtype=bool)
    held[np.random.default_rng(0).permutation(len(train_rows))[: len(train_rows) // 5]] = True
    fit, valid = train_rows.subset(~held), train_rows.subset(held)
    tag = f"minilm-f{a.frozen}-t{a.max_tokens}-v"
    scores = {"frozen": validation_score(embed_all(enc, states, tag), fit, valid, cache)}
    print(f"  validation frozen: {scores['frozen']:.4f}", file=sys.stderr, flush=True)
    grid = {f"e{e}-t{t}": (int(e), float(t))
            for e in a.epochs.split(",") for t in a.temperatures.split(",")}  # fmt: skip
    for key, (epochs, t) in grid.items():
        train(enc, states, fit, epochs, t)
        scores[key] = validation_score(embed_all(enc, states, tag + key), fit, valid, cache)
        print(f"  validation {key}: {scores[key]:.4f}", file=sys.stderr, flush=True)
    epochs, t = grid[max(grid, key=scores.__getitem__)]
    return epochs, t, scores


def evaluate(enc: Encoder, states: dict[str, Any], data: Any, train_rows: Any, epochs: int,
             t: float, cache: Path, tag: str) -> dict[str, float]:  # fmt: skip
    """RouterDC test figures of the default router on the encoder after ``epochs`` (0: none)
    of training on the whole train split."""
    from switchyard.routers.eval_runner import run_protocol
    from switchyard.routers.models import make_router
    from switchyard.routers.pipeline import RoutingPipeline

    enc.reset()
    start = time.perf_counter()
    if epochs:
        train(enc, states, train_rows, epochs, t)
    train_s = time.perf_counter() - start
    embedder = embed_all(enc, states, f"{tag}-e{epochs}-t{t:g}")
    pipe = RoutingPipeline(make_router("default"), embedder, cache=cache).fit(train_rows)
    m = run_protocol("routerdc", pipe, data, progress=False).rows[0].metrics
    print(f"{epochs} epochs: ID {m['ID avg']:.4f} OOD {m['OOD avg']:.4f}", file=sys.stderr)
    return {**{k: round(float(v), 4) for k, v in m.items()}, "train_s": round(train_s, 1)}


def finetuned_minilm(a: argparse.Namespace) -> dict[str, Any]:
    """Validation scores, the chosen (epochs, t), and the RouterDC test figures of the frozen
    and the fine-tuned encoder."""
    import tempfile

    import torch

    from switchyard.routers.datasets.loaders import load_datasets
    from switchyard.routers.eval_runner import protocol_train_rows

    torch.set_num_threads(2)
    began = time.perf_counter()
    data = load_datasets([DATA / "routing" / "routerdc"])
    train_rows = protocol_train_rows("routerdc", data)
    enc = Encoder(a.frozen, a.max_tokens)
    states = enc.lower(list(dict.fromkeys(data.prompts)))
    cached_s = time.perf_counter() - began
    print(f"lower layers cached for {len(states)} prompts in {cached_s:.0f} s", file=sys.stderr)
    cache = Path(tempfile.mkdtemp(prefix="minilm-ft-"))
    epochs, t, scores = choose(enc, states, train_rows, a, cache)
    tag = f"minilm-f{a.frozen}-t{a.max_tokens}"
    return {
        "valid": {k: round(v, 4) for k, v in scores.items()},
        "frozen": evaluate(enc, states, data, train_rows, 0, t, cache, tag),
        "fine-tuned": evaluate(enc, states, data, train_rows, epochs, t, cache, tag),
        "chosen_epochs": epochs, "chosen_t": t, "cache_lower_s": round(cached_s, 1),
        "frozen_layers": a.frozen, "max_tokens": a.max_tokens,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    probe = LoadProbe()
    results = finetuned_minilm(a)
    machine = machine_info(probe, ("torch", "transformers", "numpy"))
    record = {"bench": "minilm_finetune", "command": " ".join(sys.argv), "machine": machine}
    write_results(json.dumps(results, indent=1), record | results, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
