"""The GPU and model catalogs: complete, sourced, and consistent with known figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from switchyard.deploy.catalog import CatalogError, load_gpus, load_models, node_selectors
from switchyard.resources import data_path

REQUIRED_GPUS = {"L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100-80GB", "H200", "MI300X"}
REQUIRED_MODELS = {
    "Llama-3.1-8B", "Llama-3.1-70B", "Mixtral-8x7B", "Mixtral-8x22B", "Qwen3-30B-A3B",
    "Qwen3-235B-A22B", "DeepSeek-V3", "gpt-oss-20b", "gpt-oss-120b",
}  # fmt: skip


def test_catalog_has_every_required_gpu_with_price_and_bandwidth() -> None:
    gpus = load_gpus()
    assert set(gpus) >= REQUIRED_GPUS
    for name in REQUIRED_GPUS:
        assert gpus[name].price_per_hour and gpus[name].hbm_gbs > 0
    assert gpus["H100-80GB"].nvlink and not gpus["L4"].nvlink
    assert gpus["A100-80GB"].fp8_tflops is None and gpus["H200"].fp8_tflops is not None
    assert node_selectors()["H100-80GB"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_catalog_has_every_required_model_with_moe_fields() -> None:
    models = load_models()
    assert set(models) >= REQUIRED_MODELS
    qwen = models["Qwen3-30B-A3B"]
    assert (qwen.experts, qwen.top_k) == (128, 8)
    # Experts hold almost all of a sparse MoE's parameters.
    assert qwen.expert_params / (qwen.total_params_b * 1e9) > 0.9
    assert models["DeepSeek-V3"].attention == "mla"
    assert models["Llama-3.1-8B"].expert_params == 0


def test_a_number_without_source_is_rejected(tmp_path: Path) -> None:
    doc = yaml.safe_load(data_path("gpus.yaml").read_text())
    doc["gpus"]["L4"]["memory_gb"] = 24
    path = tmp_path / "gpus.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match=r"gpus\.L4\.memory_gb"):
        load_gpus(path)


def test_a_model_with_an_unknown_field_is_rejected(tmp_path: Path) -> None:
    doc = yaml.safe_load(data_path("models.yaml").read_text())
    doc["models"]["Llama-3.1-8B"]["layerz"] = 3
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match="layerz"):
        load_models(path)
