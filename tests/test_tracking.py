"""MLflow tracking (MLFLOW_TRACKING_URI): a real `mlflow server` on loopback (SQLite backend store, local
artifact store; its own virtualenv, `make mlflow`) receives every training run with its
parameters, metrics and artifacts, read back through MLflow's client; a promote marks its run."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from Engine import EXIT_CANDIDATE
from MLPipeline.config import MANIFEST_NAME, PROJECT_ROOT
from MLPipeline.sample_data import DEFAULT_QUEUES, generate, write_data
from tests import servers
from tests.conftest import quick_engine, require

SERVER = PROJECT_ROOT / ".venv-mlflow" / "bin" / "mlflow"


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    require(SERVER.exists(), f"no MLflow server at {SERVER.relative_to(PROJECT_ROOT)} (make mlflow)")
    pytest.importorskip("mlflow", reason="the MLflow client is not installed (requirements-mlflow.txt)")
    root = tmp_path_factory.mktemp("mlflow")
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(SERVER), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")]
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start: " + (root / "server.log").read_text()[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # uvicorn waits for idle keep-alive connections
            process.kill()
            process.wait()


def test_each_run_is_tracked_with_params_metrics_artifacts_and_promotion(tracking_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"test-{tmp_path.name}")
    clean = generate(n_months=36)
    worse = clean.copy()
    worse.iloc[-24:-12, :len(DEFAULT_QUEUES)] *= 3
    out = tmp_path / "Output"
    assert quick_engine(write_data(clean, tmp_path / "clean.csv"), out) == 0
    first = json.loads((out / MANIFEST_NAME).read_text())
    assert quick_engine(write_data(worse, tmp_path / "worse.csv"), out) == EXIT_CANDIDATE
    candidate = max(p.name for p in (out / "runs").iterdir())

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(f"test-{tmp_path.name}")
    runs = {r.data.tags["model_version"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {first["model_version"], candidate}
    run = runs[first["model_version"]]
    assert run.info.run_name == first["model_version"] and run.data.tags["published"] == "true"
    assert run.data.params["kinds"] == "seasonal-naive" and run.data.params["train_end"] == "2013-12"
    assert run.data.params["gate_margin"] == "0.05" and run.data.params["n_series"] == str(len(DEFAULT_QUEUES))
    banking = first["metrics"]["Banking"]["seasonal-naive"]
    assert run.data.metrics["series/Banking/seasonal-naive/mase"] == pytest.approx(banking["mase"])
    assert run.data.metrics["overall/mase"] > 0 and "overall/coverage_95" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"manifest.json", "report.md"} <= artifacts
    local = Path(client.download_artifacts(run.info.run_id, "manifest.json", str(tmp_path)))
    assert json.loads(local.read_text())["model_version"] == first["model_version"]

    kept = runs[candidate]
    assert kept.data.tags["published"] == "false" and "worse than" in kept.data.tags["gate_reason"]
    assert kept.data.metrics["gate/challenger_mase"] > kept.data.metrics["gate/champion_mase"]

    import Engine

    assert Engine.main(["runs", "promote", candidate, "--output", str(out)]) == 0
    tags = client.get_run(kept.info.run_id).data.tags
    assert tags["promoted"] == "true" and tags["served_by"] == "promote"


def test_training_goes_on_when_the_tracking_server_is_down(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mlflow", reason="the MLflow client is not installed (requirements-mlflow.txt)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{servers.free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert quick_engine(write_data(generate(n_months=36), tmp_path / "calls.csv"), tmp_path / "Output") == 0
    assert (tmp_path / "Output" / MANIFEST_NAME).exists()
    assert "MLflow tracking failed" in caplog.text or "not tracked" in caplog.text
