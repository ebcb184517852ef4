"""The GPU and model catalogs (``data/gpus.yaml``, ``data/models.yaml``, package data) as
perf-model specs.

Every catalogue number is stored with its source and date; loading checks that each one has
both, so an unsourced figure fails at load rather than slipping into a plan.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from switchyard.deploy.perf.specs import Efficiency, GpuSpec, ModelSpec
from switchyard.resources import data_path

_GPU_NUMBERS = ("memory_gb", "hbm_gbs", "bf16_tflops", "fp8_tflops", "interconnect_gbs")


class CatalogError(ValueError):
    """A catalogue entry is missing a field, a source or a date, or has a bad value."""


def _sourced(entry: dict[str, Any], key: str, where: str) -> Any:
    item = entry.get(key)
    if not isinstance(item, dict) or not {"value", "source", "date"} <= item.keys():
        raise CatalogError(f"{where}.{key}: expected {{value, source, date}}, got {item!r}")
    return item["value"]


def _gpu(name: str, entry: dict[str, Any]) -> GpuSpec:
    where = f"gpus.{name}"
    numbers = {key: _sourced(entry, key, where) for key in _GPU_NUMBERS}
    price = _sourced(entry, "price_per_hour", where)
    eff = entry.get("efficiency") or {}
    if not {"source", "date"} <= eff.keys():
        raise CatalogError(f"{where}.efficiency: needs a source and a date")
    selector = entry.get("node_selector") or {}
    return GpuSpec(
        name=name,
        memory_gb=float(numbers["memory_gb"]),
        hbm_gbs=float(numbers["hbm_gbs"]),
        bf16_tflops=float(numbers["bf16_tflops"]),
        fp8_tflops=None if numbers["fp8_tflops"] is None else float(numbers["fp8_tflops"]),
        nvlink=bool(entry.get("nvlink", False)),
        interconnect_gbs=float(numbers["interconnect_gbs"]),
        price_per_hour=None if price is None else float(price),
        efficiency=Efficiency(
            compute=float(eff["compute"]),
            memory=float(eff["memory"]),
            kernel_overhead_s=float(eff["kernel_overhead_us"]) * 1e-6,
            sharpness=float(eff["sharpness"]),
        ),
        product_label=next(iter(selector.values()), ""),
        k8s_resource=str(entry.get("k8s_resource", "nvidia.com/gpu")),
    )


def node_selectors(path: Path | None = None) -> dict[str, dict[str, str]]:
    """{GPU name: its Kubernetes nodeSelector} (GPU feature discovery labels)."""
    raw = _read(path or data_path("gpus.yaml"), "gpus")
    return {name: dict(entry.get("node_selector") or {}) for name, entry in raw.items()}


_MODEL_FIELDS = {f.name for f in fields(ModelSpec)} - {"name"}


def _model(name: str, entry: dict[str, Any]) -> ModelSpec:
    sources = entry.get("sources") or {}
    if not {"params", "config", "date"} <= sources.keys():
        raise CatalogError(f"models.{name}.sources: needs params, config and date")
    unknown = set(entry) - _MODEL_FIELDS - {"sources"}
    if unknown:
        raise CatalogError(f"models.{name}: unknown fields {sorted(unknown)}")
    try:
        return ModelSpec(name=name, **{k: v for k, v in entry.items() if k != "sources"})
    except TypeError as err:
        raise CatalogError(f"models.{name}: {err}") from None


def _read(path: Path, key: str) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise CatalogError(f"{path}: expected a mapping under {key!r}")
    return dict(doc[key])


def load_gpus(path: Path | None = None) -> dict[str, GpuSpec]:
    """{name: GpuSpec} from ``switchyard/data/gpus.yaml`` (or ``path``)."""
    raw = _read(path or data_path("gpus.yaml"), "gpus")
    return {name: _gpu(name, entry) for name, entry in raw.items()}


def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    """{name: ModelSpec} from ``switchyard/data/models.yaml`` (or ``path``)."""
    raw = _read(path or data_path("models.yaml"), "models")
    return {name: _model(name, entry) for name, entry in raw.items()}
