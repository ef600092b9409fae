"""Through real gunicorn (the committed config, 4 workers): 2,000 /predict requests from 8 client
threads leave exactly one log row per prediction served, on SQLite, PostgreSQL and MySQL; /metrics
sums the workers' counts; the JSON access line carries the request id returned in the header.

Loopback only, bounded: a fixed number of requests, a timeout on each.
"""

from __future__ import annotations

import collections
import contextlib
import json
import sqlite3

import pytest
import requests
import sqlalchemy as sa

from MLPipeline.config import KINDS
from MLPipeline.sample_data import DEFAULT_QUEUES
from service import store
from tests.servers import (
    CLIENT_THREADS,
    Gunicorn,
    assert_one_row_per_prediction,
    fire,
    logged_rows,
    samples,
    value,
)

pytestmark = pytest.mark.slow

WORKERS = 4
REQUESTS = 2000




def test_every_prediction_is_logged_once_and_counted_across_workers(trained_output, tmp_path, database):
    prom_dir = tmp_path / "prometheus"
    env = {"OUTPUT_DIR": str(trained_output), "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), **database["env"]}
    with Gunicorn(tmp_path, env) as server:
        answers = fire(server.url, [f"load-{i}" for i in range(REQUESTS)])
        scraped = samples(requests.get(f"{server.url}/metrics", timeout=10).text)
        plain = requests.get(f"{server.url}/health", timeout=10)  # no X-Request-ID: one is generated
        workers_seen = len(list(prom_dir.glob("counter_*.db")))
    # SIGTERM has been handled: every in-flight request finished and wrote its rows.

    ok = {rid: body["model_version"] for rid, (status, body) in answers.items() if status == 200}
    assert [(rid, a) for rid, a in answers.items() if a[0] != 200] == []
    assert len(ok) == REQUESTS

    rows = logged_rows(database["url"])
    print(f"\n{database['url'].split(':')[0]}: {len(ok)} successful requests x {len(DEFAULT_QUEUES)} domains "
          f"= {len(ok) * len(DEFAULT_QUEUES)} expected rows; {len(rows)} rows in the log")  # fmt: skip
    assert_one_row_per_prediction(rows, set(ok))

    # /metrics, answered by one worker, sums all of them.
    assert workers_seen >= 2, "the load should have been spread over several workers"
    labels = {"endpoint": "/predict", "method": "POST", "status": "200"}
    assert value(scraped, "callcenter_http_requests_total", **labels) == REQUESTS
    assert value(scraped, "callcenter_http_request_duration_seconds_count", **labels) == REQUESTS
    by_domain = {
        d: sum(
            value(scraped, "callcenter_predictions_total", domain=d, kind=k) for k in KINDS
        )
        for d in DEFAULT_QUEUES
    }
    assert by_domain == {d: REQUESTS for d in DEFAULT_QUEUES}
    assert value(scraped, "callcenter_prediction_log_write_failures_total") == 0
    version = next(iter(ok.values()))
    assert any(n == "callcenter_model_info" and dict(lab).get("version") == version for n, lab in scraped)

    # The JSON access line for a request carries the id returned in its header.
    access = {}
    for line in server.stdout_lines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # gunicorn's own lines, if its access log is on
        if entry.get("logger") == "callcenter.access":
            access[entry["request_id"]] = entry
    generated = plain.headers["X-Request-ID"]
    assert access[generated]["path"] == "/health" and access[generated]["status"] == 200
    sample = access["load-317"]
    assert (sample["method"], sample["path"], sample["status"]) == ("POST", "/predict", 200)
    assert sample["duration_ms"] > 0 and sample["level"] == "INFO" and sample["timestamp"]
    assert len([rid for rid in access if rid.startswith("load-")]) == REQUESTS


@contextlib.contextmanager
def writes_blocked(url: str):
    """Hold the log's write lock from outside the service: its inserts wait, then time out."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")  # WAL: other writers wait (busy timeout), readers don't
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = store.create_engine(store.normalise_url(url))
    if engine.dialect.name in store.MYSQL_BACKENDS:
        with engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLES prediction_log READ")  # blocks INSERT, not SELECT
            try:
                yield
            finally:
                conn.exec_driver_sql("UNLOCK TABLES")
        engine.dispose()
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        conn.execute(sa.text("LOCK TABLE prediction_log IN EXCLUSIVE MODE"))  # blocks INSERT, not SELECT
        yield
    engine.dispose()


def test_a_database_outage_mid_load_gives_503_and_loses_no_row(trained_output, tmp_path, database):
    """Before, during and after the log is unwritable: 200s are logged, the rest are 503, no 500."""
    env = {
        "OUTPUT_DIR": str(trained_output),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        **database["env"],
    }
    with Gunicorn(tmp_path, env) as server:
        answers = fire(server.url, [f"before-{i}" for i in range(40)])
        with writes_blocked(database["url"]):
            # Each blocked write waits the full lock timeout (10 s), and a worker may have accepted
            # several of these connections, answering them one after another: allow for that.
            answers |= fire(server.url, [f"during-{i}" for i in range(CLIENT_THREADS)], timeout=120)
            alive = requests.get(f"{server.url}/health", timeout=120).status_code
        answers |= fire(server.url, [f"after-{i}" for i in range(40)])
        scraped = samples(requests.get(f"{server.url}/metrics", timeout=10).text)

    assert alive == 200
    statuses = collections.Counter(status for status, _ in answers.values())
    odd = {rid: answer for rid, answer in answers.items() if answer[0] not in (200, 503)}
    assert odd == {}, statuses  # never a 500, never a dropped connection
    for rid, (status, body) in answers.items():
        expected = 503 if rid.startswith("during-") else 200
        assert status == expected, (rid, body)
        if status == 503:
            assert body["error"]["code"] == "prediction_log_unavailable"
    served = {rid for rid, (status, _) in answers.items() if status == 200}
    assert_one_row_per_prediction(logged_rows(database["url"]), served)
    assert value(scraped, "callcenter_prediction_log_write_failures_total") == statuses[503]
    assert sum(
        value(scraped, "callcenter_predictions_total", domain="Banking", kind=k) for k in KINDS
    ) == len(served)
