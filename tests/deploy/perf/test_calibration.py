"""The roofline fitted on Vidur's measured GEMMs: error per GPU, and the catalogue's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.deploy.perf.calibrate import calibrate, read_vidur_csv, vidur_files
from switchyard.deploy.perf.specs import GpuSpec
from tests.support.requirements import reference_data


@pytest.fixture(scope="module")
def vidur() -> Path:
    return reference_data("perf", "vidur")


def test_vidur_rows_become_four_gemms_with_tensor_parallel_shapes(vidur: Path) -> None:
    files = vidur_files(vidur)
    assert sorted(files) == ["A100-80GB", "A40", "H100-80GB"]
    gemms = read_vidur_csv(next(p for p in files["H100-80GB"] if "Llama-2-7b" in p.name))
    up = [g for g in gemms if g.op == "mlp_up_proj" and g.tokens == 4096]
    # Llama-2-7B's gated MLP: 4096 -> 2 x 11008, split over TP 1, 2, 4 and 8.
    assert sorted(g.n for g in up)[-1] == 2 * 11008
    assert {g.n for g in up} == {2 * 11008 // tp for tp in (1, 2, 4, 8)}


def test_fitted_roofline_median_error_is_under_ten_percent_per_gpu(
    vidur: Path, gpus: dict[str, GpuSpec]
) -> None:
    reports = calibrate(vidur, gpus)
    assert len(reports) == 3
    for report in reports:
        assert report.median_error < 0.10, report
        assert report.p90_error < 0.25, report


def test_catalogue_efficiencies_are_the_fitted_ones(vidur: Path, gpus: dict[str, GpuSpec]) -> None:
    for report in calibrate(vidur, gpus):
        stored = gpus[report.gpu].efficiency
        assert stored.compute == pytest.approx(report.efficiency.compute, abs=0.01)
        assert stored.memory == pytest.approx(report.efficiency.memory, abs=0.01)
        assert stored.kernel_overhead_s == pytest.approx(
            report.efficiency.kernel_overhead_s, abs=0.5e-6
        )
        assert stored.sharpness == pytest.approx(report.efficiency.sharpness, abs=0.02)
