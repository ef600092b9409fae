"""Prometheus metrics: request counts and latency, predictions, write failures, model metrics,
the multiprocess directory hooks, and summing across processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap

import pytest

from MLPipeline.config import MANIFEST_NAME, PROJECT_ROOT
from service import create_app, metrics
from service.store import EXTENSION_KEY
from tests.servers import samples, value

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(metrics.MULTIPROC_ENV)), reason="these tests read the in-process registry"
)


def scrape(client) -> dict[tuple[str, tuple], float]:
    """GET /metrics as {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


@pytest.fixture
def app(tmp_path):
    output = tmp_path / "Output"
    output.mkdir()
    trained_at = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    (output / MANIFEST_NAME).write_text(
        json.dumps({"model_version": "20260101-abc", "trained_at": trained_at})
    )
    return create_app(
        {"LOAD_MODELS": False, "OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "var")}
    )


def test_requests_are_counted_and_timed_by_endpoint_method_and_status(app):
    client = app.test_client()
    before = scrape(client)
    for _ in range(3):
        client.get("/health")
    client.post("/actuals", json={"month": "nope"})
    client.get("/no/such/page/42")
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"endpoint": "/health", "method": "GET", "status": "200"}
    assert delta("callcenter_http_requests_total", **ok) == 3
    assert delta("callcenter_http_request_duration_seconds_count", **ok) == 3
    assert delta("callcenter_http_request_duration_seconds_bucket", le="+Inf", **ok) == 3
    assert delta("callcenter_http_requests_total", endpoint="/actuals", method="POST", status="422") == 1
    # Unknown paths share one label value, so clients cannot blow up the series count.
    assert delta("callcenter_http_requests_total", endpoint="<unmatched>", method="GET", status="404") == 1
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_logged_predictions_and_write_failures_are_counted(app, tmp_path):
    client = app.test_client()
    before = scrape(client)
    row = {"month": "2021-01", "kind": "level", "mean": 1.0, "std": 1.0, "model_version": "v"}
    rows = [{**row, "domain": "Healthcare"}, {**row, "domain": "Healthcare"}, {**row, "domain": "Banking"}]
    app.extensions[EXTENSION_KEY].record("r", "predict", rows)
    metrics.count_predictions(rows)  # what service.api does once the log has them
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    broken = create_app(
        {"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp_path), "PREDICTION_DB_DIR": str(blocker / "x")}
    )
    with pytest.raises(Exception, match="prediction log write failed"):
        broken.extensions[EXTENSION_KEY].record("r", "predict", [{**row, "domain": "Telecom"}])
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("callcenter_predictions_total", domain="Healthcare", kind="level") == 2
    assert delta("callcenter_predictions_total", domain="Banking", kind="level") == 1
    assert delta("callcenter_predictions_total", domain="Telecom", kind="level") == 0  # refused: not served
    assert delta("callcenter_prediction_log_write_failures_total") == 1


def test_only_the_first_series_get_their_own_label(app):
    client = app.test_client()
    before = scrape(client)
    labelled = metrics.series_labels([f"q{i}" for i in range(10)], limit=3)
    metrics.count_predictions([{"domain": f"q{i}", "kind": "level"} for i in range(10)], labelled)
    after = scrape(client)
    names = {dict(labels)["domain"] for name, labels in after if name == "callcenter_predictions_total"}
    assert {"q0", "q1", "q2", metrics.OTHER_SERIES} <= names and not names & {f"q{i}" for i in range(3, 10)}
    assert (value(after, "callcenter_predictions_total", domain="_other", kind="level")
            - value(before, "callcenter_predictions_total", domain="_other", kind="level")) == 7


def test_model_version_and_seconds_since_training_come_from_the_manifest(app):
    scraped = scrape(app.test_client())
    info = [labels for (name, labels) in scraped if name == "callcenter_model_info"]
    assert len(info) == 1 and dict(info[0])["version"] == "20260101-abc"
    age = value(scraped, "callcenter_model_seconds_since_training")
    assert 2 * 3600 - 60 < age < 2 * 3600 + 600


def test_no_manifest_means_no_model_metrics_and_no_error(tmp_path):
    app = create_app(
        {"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp_path), "PREDICTION_DB_DIR": str(tmp_path / "var")}
    )
    scraped = scrape(app.test_client())
    assert not any(name.startswith("callcenter_model") for name, _ in scraped)


# --------------------------------------------------------------------------- gunicorn hooks


def test_on_starting_empties_the_configured_directory(tmp_path, monkeypatch):
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    assert metrics.prepare_multiprocess_dir() == str(directory)
    assert list(directory.iterdir()) == []
    metrics.remove_multiprocess_dir()  # not ours: left alone
    assert directory.is_dir()


def test_on_starting_makes_a_private_directory_when_none_is_configured(monkeypatch):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    path = metrics.prepare_multiprocess_dir()
    try:
        assert os.environ[metrics.MULTIPROC_ENV] == path and os.path.isdir(path)
        metrics.mark_worker_dead(999_999)  # nothing to remove: no error
    finally:
        metrics.remove_multiprocess_dir()
        # not monkeypatch.delenv: it would record the value prepare_multiprocess_dir set and put it
        # back at teardown, leaving every later test in this process in multiprocess mode
        os.environ.pop(metrics.MULTIPROC_ENV)
    assert not os.path.exists(path)


def test_counts_from_several_processes_are_summed(tmp_path):
    """Three forked 'workers' count requests; one exposition shows the sum (multiprocess mode)."""
    script = textwrap.dedent(
        """
        import os
        from service import metrics
        metrics.prepare_multiprocess_dir()
        pids = []
        for worker in range(3):
            pid = os.fork()
            if pid == 0:
                for _ in range(worker + 1):
                    metrics.observe_request("/predict", "POST", 200, 0.004)
                metrics.count_predictions([{"domain": "Banking", "kind": "level"}] * 5)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
            metrics.mark_worker_dead(pid)
        print(metrics.exposition()[0].decode())
        """
    )
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path / "prom"), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    scraped = samples(done.stdout)
    labels = {"endpoint": "/predict", "method": "POST", "status": "200"}
    assert value(scraped, "callcenter_http_requests_total", **labels) == 1 + 2 + 3
    assert value(scraped, "callcenter_http_request_duration_seconds_count", **labels) == 6
    assert value(scraped, "callcenter_http_request_duration_seconds_bucket", le="0.005", **labels) == 6
    assert value(scraped, "callcenter_predictions_total", domain="Banking", kind="level") == 15
