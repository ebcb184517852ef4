"""Process set-up of ``switchyard serve`` (``switchyard.gateway.serve``)."""

from __future__ import annotations

import os

import pytest

from switchyard.gateway.serve import BLAS_THREADS, one_blas_thread


def test_blas_runs_on_one_thread_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    one_blas_thread()

    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "4"  # the operator's choice is kept
    assert set(BLAS_THREADS) == {"OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
