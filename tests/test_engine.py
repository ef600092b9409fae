"""Engine.py end to end: artifacts, manifest hashes, reload equality, and clean failures."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from MLPipeline.artifacts import load_bundle, sha256_file
from MLPipeline.config import DOMAINS, KINDS, PROJECT_ROOT, REGRESSORS
from MLPipeline.data import load_workbook
from MLPipeline.forecaster import GPForecaster
from tests.conftest import write_frame


def engine(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "Engine.py"), *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def tree_digest(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def check_output(out: Path, data_path: Path, *, plots: bool) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    assert {a["domain"] for a in manifest["artifacts"]} == set(DOMAINS)
    assert {(a["domain"], a["kind"]) for a in manifest["artifacts"]} == {(d, k) for d in DOMAINS for k in KINDS}
    for art in manifest["artifacts"]:
        assert sha256_file(out / art["file"]) == art["sha256"]
    for rel, digest in manifest["files"].items():
        assert sha256_file(out / rel) == digest
    run_dir = out / manifest["run_dir"]
    for name in ("metrics.json", "normality.json", "holdout.json", "report.md", "data.csv"):
        assert (run_dir / name).is_file(), name
    figures = sorted(p.name for p in (run_dir / "figures").glob("*.png")) if plots else []
    if plots:
        assert len(figures) == len(DOMAINS) * (2 + len(KINDS))
    report = (run_dir / "report.md").read_text()
    assert all(d in report for d in DOMAINS) and "sMAPE" in report and "Shapiro" in report
    assert set(manifest["preferred"]) == set(DOMAINS) and set(manifest["preferred"].values()) <= set(KINDS)
    bundle = load_bundle(out)
    for d in DOMAINS:
        assert manifest["selection"][d]["reason"] and manifest["selection"][d]["regressor_reason"]
        # Every served kind of a domain follows the domain's regressor decision.
        uses = manifest["uses_regressors"][d]
        assert {bundle.models[(d, k)].regressors_ for k in KINDS} == {tuple(REGRESSORS) if uses else ()}
        for k in KINDS:
            m = manifest["metrics"][d][k]
            assert 0 <= m["smape"] <= 200 and m["mase"] > 0 and 0 <= m["coverage_95"] <= 1
    assert manifest["data"]["file_sha256"] == sha256_file(data_path)
    return manifest


def test_engine_end_to_end_on_sample(tmp_path, sample_path):
    out = tmp_path / "Output"
    result = engine("--data", str(sample_path), "--output", str(out), "--log-format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    steps = {line.get("step") for line in lines if "seconds" in line}
    assert {"load", "normality", "eda figures", "holdout fit", "selection backtest", "save"} <= steps
    check_output(out, sample_path, plots=True)


def test_engine_on_real_workbook_and_reload_equality(tmp_path, real_path):
    out = tmp_path / "Output"
    result = engine("--data", str(real_path), "--output", str(out), "--no-plots")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = check_output(out, real_path, plots=False)
    assert manifest["train_window"] == {"start": "2010-01", "end": "2020-12"}
    bundle = load_bundle(out)
    frame = load_workbook(real_path)
    # The pickled model predicts exactly what the same fit in this process predicts.
    months = ["2019-06", "2021-01", "2021-06"]
    X = pd.DataFrame({"phone_lines": [3.0, 4.0, 2.0], "channels": [2.0, 1.0, 3.0]},
                     index=pd.DatetimeIndex(months))
    X_train = frame[list(REGRESSORS)] if manifest["uses_regressors"]["Telecom"] else None
    for kind in KINDS:
        refit = GPForecaster(kind=kind).fit(frame["Telecom"], X_train)
        served = bundle.models[("Telecom", kind)]
        np.testing.assert_allclose(served.predict_at(months, X).to_numpy(),
                                   refit.predict_at(months, X).to_numpy(), rtol=1e-6)


def test_engine_failure_keeps_previous_output(trained_output, tmp_path, workbook_frame):
    before = tree_digest(trained_output)
    bad = workbook_frame.copy()
    bad.loc[3, "Banking"] = -5
    path = write_frame(bad, tmp_path / "bad.xlsx")
    result = engine("--data", str(path), "--output", str(trained_output), "--no-plots")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "negative value -5" in result.stderr and "Traceback" not in result.stderr
    assert tree_digest(trained_output) == before


@pytest.mark.parametrize("case", ["missing", "empty", "type", "short", "month", "duplicate", "gap",
                                  "nonnumeric", "missing-value", "no-column", "holdout"])
def test_engine_rejects_bad_input_with_one_line(tmp_path, workbook_frame, case, trained_output):
    frame = workbook_frame.copy().astype(object)
    args: list[str] = []
    path = tmp_path / "book.xlsx"
    if case == "missing":
        path = tmp_path / "absent.xlsx"
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "type":
        path = tmp_path / "book.txt"
        path.write_text("x")
    else:
        if case == "short":
            frame = frame.iloc[:20]
        elif case == "month":
            frame.loc[2, "month"] = "not-a-month"
        elif case == "duplicate":
            frame.loc[2, "month"] = frame.loc[1, "month"]
        elif case == "gap":
            frame = frame.drop(index=[5])
        elif case == "nonnumeric":
            frame.loc[2, "Telecom"] = "n/a"
        elif case == "missing-value":
            frame.loc[2, "Telecom"] = None
        elif case == "no-column":
            frame = frame.drop(columns=["#ofphonelines"])
        elif case == "holdout":
            args = ["--holdout", "20"]
        write_frame(frame, path)
    before = tree_digest(trained_output)
    result = engine("--data", str(path), "--output", str(trained_output), "--no-plots", *args)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line
    assert tree_digest(trained_output) == before


def test_unwritable_output_exits_cleanly(tmp_path, sample_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = engine("--data", str(sample_path), "--output", str(blocker / "Output"), "--no-plots")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: could not write") and "\n" not in result.stderr.strip()


def test_failed_run_mid_save_leaves_previous_models(trained_output, sample_path, monkeypatch):
    """A failure after models are fitted (e.g. disk full) must not touch the published run."""
    from MLPipeline import artifacts, pipeline

    before = tree_digest(trained_output)

    def disk_full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts.RunWriter, "write_model", disk_full)
    with pytest.raises(OSError):
        pipeline.run(pipeline.RunConfig(data_path=sample_path, output_dir=trained_output, plots=False))
    assert tree_digest(trained_output) == before
    assert len(list((trained_output / "runs").iterdir())) == 1
