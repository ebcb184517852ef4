"""Fine-tuning the static embedder's token table with RouterDC's losses (issue 15, part 1), for
``encoder_frontier.py --finetune``.

The table (vocabulary x 256, from the static embedder) is trained end to end with one learned
vector per model: sample-model loss (each prompt's 3 best models against its 3 worst,
temperature t) plus sample-sample loss (prompts of the same task are positives), AdamW, batch
64. Epochs and t are chosen on a validation fifth of the RouterDC train split (the default
router trained on the other four fifths, scored by the per-task mean of the chosen models'
quality); the table is then trained on the whole train split with the chosen values and the
default router is evaluated on the RouterDC test sets exactly as ``switchyard eval`` does.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import DATA

GRID = [(epochs, t) for epochs in (3, 6) for t in (0.1, 0.2)]
TOP = 3


def train_table(static: Any, prompts: list[str], quality: Any, tasks: list[str],
                epochs: int, temperature: float) -> Any:  # fmt: skip
    """The table after ``epochs`` of the two contrastive losses; float32 numpy."""
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = static.tokenizer.content_ids(prompts)
    ids = [seq or [static.tokenizer.cls_id] for seq in ids]
    table = torch.nn.EmbeddingBag.from_pretrained(
        torch.tensor(np.load(static.directory / "table.npy")), freeze=False, mode="mean"
    )
    models = torch.nn.Parameter(torch.randn(quality.shape[1], table.embedding_dim) * 0.1)
    opt = torch.optim.AdamW([*table.parameters(), models], lr=1e-3, weight_decay=0.0)
    q = torch.tensor(np.nan_to_num(quality), dtype=torch.float32)
    task_of = {t: i for i, t in enumerate(sorted(set(tasks)))}
    cluster = torch.tensor([task_of[t] for t in tasks])
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(ids)), max(1, len(ids) // 64)):
            flat = torch.tensor([t for b in batch for t in ids[b]])
            offsets = torch.tensor(np.cumsum([0] + [len(ids[b]) for b in batch[:-1]]))
            e = torch.nn.functional.normalize(table(flat, offsets), dim=1)
            loss = _losses(e, models, q[batch], cluster[batch], temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return table.weight.detach().numpy().astype(np.float32)


def _losses(e: Any, models: Any, q: Any, cluster: Any, temperature: float) -> Any:
    import torch

    k = torch.nn.functional.normalize(models, dim=1)
    sim = e @ k.T / temperature
    order = q.argsort(dim=1, descending=True)
    pos, neg = sim.gather(1, order[:, :TOP]), sim.gather(1, order[:, -TOP:])
    both = torch.cat([pos.unsqueeze(2), neg.unsqueeze(1).expand(-1, TOP, -1)], dim=2)
    sample_model = -(pos - torch.logsumexp(both, dim=2)).mean()
    eye = torch.eye(len(e))
    ss = e @ e.T / temperature - eye * 1e9
    same = (cluster[:, None] == cluster[None, :]).float() - eye
    log_p = torch.logsumexp(ss.masked_fill(same == 0, -1e9), 1) - torch.logsumexp(ss, 1)
    has = same.sum(1) > 0
    sample_sample = -log_p[has].mean() if bool(has.any()) else torch.zeros(())
    return sample_model + sample_sample


def tuned(static: Any, table: Any, tag: str) -> Any:
    """``static`` with another table (and a name of its own, so cached embeddings differ)."""
    out = copy.copy(static)
    out._table = np.ascontiguousarray(table)
    out._name = f"{static.name}+dc-{tag}"
    return out


def validation_score(embedder: Any, train: Any, valid: Any, cache: Path) -> float:
    from switchyard.routers.models import make_router
    from switchyard.routers.pipeline import RoutingPipeline

    pipe = RoutingPipeline(make_router("default"), embedder, cache=cache).fit(train)
    chosen = np.nanargmax(pipe.predict(valid).quality, axis=1)
    score = np.nan_to_num(valid.quality[np.arange(len(valid)), chosen])
    tasks = np.array(valid.tasks)
    return float(np.mean([score[tasks == t].mean() for t in sorted(set(valid.tasks))]))


def finetuned_routerdc(static: Any, cache: Path) -> dict[str, float]:
    """Choose (epochs, t) on validation, train on the whole split, RouterDC test averages."""
    from switchyard.routers.datasets.loaders import load_datasets
    from switchyard.routers.eval_runner import protocol_train_rows, run_protocol
    from switchyard.routers.models import make_router
    from switchyard.routers.pipeline import RoutingPipeline

    data = load_datasets([DATA / "routing" / "routerdc"])
    train = protocol_train_rows("routerdc", data)
    held = np.zeros(len(train), dtype=bool)
    held[np.random.default_rng(0).permutation(len(train))[: len(train) // 5]] = True
    fit, valid = train.subset(~held), train.subset(held)
    scores = {"frozen": validation_score(static, fit, valid, cache)}
    for epochs, t in GRID:
        table = train_table(static, fit.prompts, fit.quality, fit.tasks, epochs, t)
        scores[f"e{epochs}-t{t:g}"] = validation_score(tuned(static, table, f"v-e{epochs}-t{t:g}"),
                                                       fit, valid, cache)  # fmt: skip
        print(f"  validation {epochs} epochs, t={t:g}: {scores[f'e{epochs}-t{t:g}']:.4f} "
              f"(frozen {scores['frozen']:.4f})", file=sys.stderr, flush=True)  # fmt: skip
    best = max((k for k in scores if k != "frozen"), key=scores.__getitem__)
    epochs, t = int(best[1:].split("-t")[0]), float(best.split("-t")[1])
    table = train_table(static, train.prompts, train.quality, train.tasks, epochs, t)
    pipe = RoutingPipeline(make_router("default"), tuned(static, table, best), cache=cache)
    pipe.fit(train)
    metrics = run_protocol("routerdc", pipe, data, progress=False).rows[0].metrics
    return {"ID avg": round(float(metrics["ID avg"]), 4),
            "OOD avg": round(float(metrics["OOD avg"]), 4),
            "chosen_epochs": epochs, "chosen_t": t,
            **{f"valid {k}": round(v, 4) for k, v in scores.items()}}  # fmt: skip
