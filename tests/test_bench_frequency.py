"""bench/frequency.py's parts that decide its figures (the benchmark itself is not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from MLPipeline.statespace import StateSpaceGP

BENCH = Path(__file__).resolve().parent.parent / "bench" / "frequency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_frequency", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_exact_gp_it_times_is_the_same_model(bench):
    # The scaling table compares like with like only if the dense objective is the state-space one.
    model = StateSpaceGP(periods=(24.0, 168.0), optimize=False).fit(bench.hourly_series(400))
    theta = np.log(np.array(list(model.hyperparameters_.values())))
    dense = bench._dense_objective(model, model._z)
    for shift in (0.0, 0.3, -0.5):
        assert dense(theta + shift) == pytest.approx(model._objective(theta + shift, model._z), rel=1e-5)


def test_the_data_sets_are_the_ones_named(bench):
    taylor, promo = bench.tasks()
    assert (len(taylor["y"]), len(taylor["test"]), taylor["m"], taylor["horizons"]) == (3696, 336, 336, (48, 336))
    assert promo["X"].shape == (len(promo["y"]), 2) and promo["X_future"].shape == (len(promo["test"]), 2)


def test_tables_render_failed_rows(bench):
    row = {"dataset": "taylor", "h": 48, "model": "MSTL", "error": "ValueError: x", "fit_s": 1.0, "peak_mib": 1.0}
    text = bench.markdown([row], [], {"finished": "now", "machine": "m"})
    assert "| taylor | 48 | MSTL | failed: ValueError: x |" in text
