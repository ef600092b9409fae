"""Real gunicorn with the committed gunicorn.conf.py on a free loopback port, against a freshly
trained Output: /ready, /predict (single and batch) and /forecast over HTTP, and the served
numbers equal GPForecaster.predict_at in-process for the same inputs."""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest
import requests

from MLPipeline.artifacts import load_bundle
from MLPipeline.config import MANIFEST_NAME
from MLPipeline.months import format_month
from MLPipeline.sample_data import DEFAULT_QUEUES
from tests.conftest import history_frame
from tests.servers import gunicorn

BOUNDS = ("mean", "std", "lower_80", "upper_80", "lower_95", "upper_95")


@pytest.fixture(scope="module")
def bundle(trained_output):
    return load_bundle(trained_output)


def in_process(bundle, domain, kind, months, phone_lines, channels):
    """predict_at with what the service passes: the given regressors, and for path months the
    request skips (difference models sum a path) the stated median of the last 12 training months."""
    index = pd.DatetimeIndex(pd.to_datetime(months, format="%Y-%m"), name="month")
    x = pd.DataFrame({"phone_lines": phone_lines, "channels": channels}, index=index, dtype=float)
    path = pd.date_range(bundle.train_end + pd.DateOffset(months=1), index.max(), freq="MS", name="month")
    median = history_frame(bundle)[list(x.columns)].astype(float).iloc[-12:].median()
    gaps = path.difference(index)
    if len(gaps):
        x = pd.concat([x, pd.DataFrame([median.to_numpy()] * len(gaps), index=gaps, columns=x.columns)])
    return bundle.models[(domain, kind)].predict_at(index, X=x, level=(80, 95))


def assert_rows_equal(rows, frame):
    assert len(rows) == len(frame)
    for row, (_, want) in zip(rows, frame.iterrows(), strict=True):
        assert [row[c] for c in BOUNDS] == pytest.approx([want[c] for c in BOUNDS], rel=1e-9)


def test_ready_over_http(server, bundle):
    response = requests.get(f"{server}/ready", timeout=10)
    assert response.status_code == 200
    assert response.json()["model_version"] == bundle.version


def test_predict_single_over_http_equals_predict_at(server, bundle):
    month = format_month(bundle.train_end + pd.DateOffset(months=2))
    response = requests.post(
        f"{server}/predict", json={"month": month, "phone_lines": 5, "channels": 3}, timeout=30
    )
    assert response.status_code == 200
    rows = response.json()["predictions"]
    assert [r["domain"] for r in rows] == list(DEFAULT_QUEUES)
    for row in rows:
        assert_rows_equal([row], in_process(bundle, row["domain"], row["kind"], [month], [5], [3]))


def test_predict_batch_over_http_equals_predict_at(server, bundle):
    months = [format_month(bundle.train_end + pd.DateOffset(months=k)) for k in range(-3, 9)]
    lines = [2.0 + (k % 4) for k in range(len(months))]
    channels = [1.0 + (k % 3) for k in range(len(months))]
    instances = [
        {"month": m, "phone_lines": p, "channels": c} for m, p, c in zip(months, lines, channels, strict=True)
    ]
    for kind in ("level", "difference"):
        body = {"instances": instances, "domains": ["Telecom", "Insurance"], "kind": kind}
        response = requests.post(f"{server}/predict", json=body, timeout=30)
        assert response.status_code == 200
        rows = response.json()["predictions"]
        for domain in ("Telecom", "Insurance"):
            mine = [r for r in rows if r["domain"] == domain]
            assert [r["month"] for r in mine] == months
            assert_rows_equal(mine, in_process(bundle, domain, kind, months, lines, channels))


def test_forecast_over_http_equals_predict(server, bundle):
    response = requests.post(f"{server}/forecast", json={"domain": "Banking", "horizon": 6}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["assumption"] and len(body["forecast"]) == 6
    model = bundle.models[("Banking", body["kind"])]
    months = [row["month"] for row in body["forecast"]]
    index = pd.DatetimeIndex(pd.to_datetime(months, format="%Y-%m"), name="month")
    x = pd.DataFrame(
        {n: [row[n] for row in body["forecast"]] for n in ("phone_lines", "channels")}, index=index
    )
    assert_rows_equal(
        body["forecast"], model.predict(6, X_future=x if model.regressors_ else None, level=(80, 95))
    )


def test_errors_over_http_are_json(server):
    response = requests.post(
        f"{server}/predict", data="{oops", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    response = requests.get(f"{server}/nope", timeout=10)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"


def publish(output, old: str, new: str) -> None:
    """A new manifest naming a copy of the current run (the same verified files) as version ``new``."""
    manifest = json.loads((output / MANIFEST_NAME).read_text())
    run = manifest["run_dir"]
    shutil.copytree(output / run, output / "runs" / new)
    text = json.dumps(manifest).replace(f'"{run}/', f'"runs/{new}/').replace(f'"{run}"', f'"runs/{new}"')
    (output / MANIFEST_NAME).write_text(text.replace(f'"{old}"', f'"{new}"'))


def test_every_worker_serves_the_newest_model_after_a_reload(trained_output, tmp_path):
    """POST /admin/reload reaches one worker, and a newer manifest lands before the other's next
    request: every worker ends on the newest (each follows manifest.json, service.registry)."""
    output = shutil.copytree(trained_output, tmp_path / "Output", symlinks=True)
    with gunicorn(output, tmp_path, ADMIN_TOKEN="t0ken") as base:
        old = requests.get(f"{base}/ready", timeout=10).json()["model_version"]
        publish(output, old, "next-version")
        response = requests.post(
            f"{base}/admin/reload", headers={"Authorization": "Bearer t0ken"}, timeout=30
        )
        assert response.status_code == 200 and response.json()["model_version"] == "next-version"
        publish(output, "next-version", "third-version")
        # New connections spread over both workers; within a bounded number of requests every
        # answer must name the newest version (a worker looks at the manifest at most once a second).
        streak, deadline = 0, time.monotonic() + 30
        while streak < 20 and time.monotonic() < deadline:
            version = requests.get(f"{base}/ready", timeout=10).json()["model_version"]
            streak = streak + 1 if version == "third-version" else 0
            time.sleep(0.05)
        assert streak >= 20, "a worker kept serving an older model"
