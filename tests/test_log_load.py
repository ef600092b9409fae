"""Through real gunicorn (the committed config, 4 workers): 2,000 /predict requests from 8 client
threads leave exactly one log row per prediction served, on SQLite and on PostgreSQL; /metrics
sums the workers' counts; the JSON access line carries the request id returned in the header.

Loopback only, bounded: a fixed number of requests, a timeout on each.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from test_metrics import samples, value
from test_store import pg_schema_url  # noqa: F401 - fixture

from MLPipeline.config import DOMAINS, KINDS, PROJECT_ROOT
from service import store

pytestmark = pytest.mark.slow

WORKERS = 4
CLIENT_THREADS = 8
REQUESTS = 2000
BODY = {"month": "2021-03", "phone_lines": 4, "channels": 2}  # one month, every domain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn -c gunicorn.conf.py app:app on a free loopback port; stdout kept in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], workers: int = WORKERS, wait_for: str = "/ready"):
        self.port = free_port()
        self.workers = workers
        self.wait_for = wait_for  # the path that must answer 200 before __enter__ returns
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / "gunicorn.stdout"
        self.stderr_path = tmp_path / "gunicorn.stderr"
        inherited = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # only ours
        self.env = {**inherited, "LOG_FORMAT": "json", "WEB_CONCURRENCY": str(workers), **env}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{self.port}",
                   "-w", str(self.workers), "app:app"]  # fmt: skip
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"gunicorn exited {self.process.returncode}: {self.stderr_path.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{self.url}{self.wait_for}", timeout=10).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"gunicorn never became ready: {self.stderr_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stdout_lines(self) -> list[str]:
        return [line for line in self.stdout_path.read_text().splitlines() if line.strip()]


def fire(
    url: str, request_ids: list[str], timeout: float = 30, threads: int = CLIENT_THREADS
) -> dict[str, tuple[int, dict | str]]:
    """POST /predict once per id, spread over ``threads`` client threads (a Session each).

    Returns id -> (status, JSON body); status 0 when the connection failed. A 200 whose
    X-Request-ID differs from the one sent counts as status -1.
    """
    shares = [request_ids[i::threads] for i in range(threads)]

    def client(ids: list[str]) -> dict[str, tuple[int, dict | str]]:
        answers = {}
        with requests.Session() as session:
            for rid in ids:
                try:
                    r = session.post(
                        f"{url}/predict", json=BODY, headers={"X-Request-ID": rid}, timeout=timeout
                    )
                except requests.RequestException as exc:
                    answers[rid] = (0, str(exc))
                    continue
                echoed = r.headers.get("X-Request-ID") == rid
                answers[rid] = (r.status_code if echoed else -1, r.json())
        return answers

    with ThreadPoolExecutor(threads) as pool:
        return {rid: answer for part in pool.map(client, shares) for rid, answer in part.items()}


def logged_rows(url: str) -> list[tuple[str, str]]:
    """(request_id, domain) of every row in the prediction log."""
    engine = store.create_engine(store.normalise_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.prediction_log.c.request_id, store.prediction_log.c.domain)).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def assert_one_row_per_prediction(rows: list[tuple[str, str]], served: set[str]) -> None:
    """Exactly the served requests, each with one row per domain: none lost, none extra."""
    per_request = collections.Counter(rid for rid, _ in rows)
    assert len(rows) == len(served) * len(DOMAINS)
    assert set(per_request) == served
    assert set(rows) == {(rid, d) for rid in served for d in DOMAINS}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> dict[str, str]:
    """Environment for the server, and the URL the test reads the rows back through."""
    if request.param == "sqlite":
        directory = tmp_path / "var"
        return {"env": {"PREDICTION_DB_DIR": str(directory)}, "url": store.database_url(db_dir=directory)}
    url = request.getfixturevalue("pg_schema_url")
    return {"env": {"DATABASE_URL": url}, "url": url}


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
    print(f"\n{database['url'].split(':')[0]}: {len(ok)} successful requests x {len(DOMAINS)} domains "
          f"= {len(ok) * len(DOMAINS)} expected rows; {len(rows)} rows in the log")  # fmt: skip
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
        for d in DOMAINS
    }
    assert by_domain == {d: REQUESTS for d in DOMAINS}
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
