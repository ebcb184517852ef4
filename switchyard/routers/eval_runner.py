"""Run a published protocol on a trained router, beside routers trained for comparison.

RouterDC and RouterBench evaluate the router as trained (it must have been trained on the
protocol's train split); routers named in ``compare`` are trained here on that same split
with the same embedder. RouteLLM is a cross-validation protocol: every router, the trained
one included, is re-fitted on each fold's training part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation import (
    ROUTERDC_ID_TASKS,
    Report,
    Router,
    evaluate_routellm,
    evaluate_routerbench,
    evaluate_routerdc,
)
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline


def protocol_train_rows(protocol: str, data: RoutingDataset) -> RoutingDataset:
    """The rows a protocol trains on."""
    if protocol == "routerdc":
        return data.where(tasks=ROUTERDC_ID_TASKS, split="train")
    if protocol == "routerbench":
        return data.where(split="train")
    raise ValueError(f"protocol {protocol!r} has no fixed train split")


def comparison_routers(pipe: RoutingPipeline, names: Sequence[str]) -> dict[str, RoutingPipeline]:
    """Fresh, untrained pipelines for ``names`` sharing ``pipe``'s embedder and prices."""
    return {
        name: RoutingPipeline(
            make_router(name), pipe.embedder, prices=pipe.prices, cache=pipe.cache
        )
        for name in names
    }


def run_protocol(
    protocol: str,
    pipe: RoutingPipeline,
    data: RoutingDataset,
    *,
    compare: Sequence[str] = (),
    folds: int = 5,
    progress: bool = True,
) -> Report:
    label = str(pipe.metadata.get("name") or pipe.router.kind)
    others = comparison_routers(pipe, [c for c in compare if c != label])
    routers: Mapping[str, Router] = {label: pipe, **others}
    if protocol == "routellm":
        return evaluate_routellm(routers, data, folds=folds, progress=progress)
    train = protocol_train_rows(protocol, data)
    if len(train) == 0 and others:
        raise ValueError(f"the data has no {protocol} training rows to train --compare routers")
    for other in others.values():
        other.fit(train, progress=progress)
    if protocol == "routerdc":
        return evaluate_routerdc(routers, data, refit=False, progress=progress)
    if protocol == "routerbench":
        return evaluate_routerbench(routers, data, refit=False, progress=progress)
    raise ValueError(f"unknown protocol {protocol!r}")
