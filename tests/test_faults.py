"""Faults through real gunicorn on loopback (the committed config): SIGTERM during load, a killed
worker, a missing/corrupt/tampered model at start, the database unavailable at start.

Covered elsewhere, not repeated here: a bad bundle at reload (tests/test_reload.py), the
database failing mid-load (tests/test_log_load.py), disk full while Engine.py saves
(tests/test_engine.py), a worker starting without models becoming ready (tests/test_reload.py).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from service import store
from tests.servers import (
    BODY,
    Gunicorn,
    assert_one_row_per_prediction,
    fire,
    logged_rows,
    wait_until,
    workers_of,
)

pytestmark = pytest.mark.slow

WORKERS = 2


def sqlite_env(output: Path, tmp_path: Path) -> tuple[dict[str, str], str]:
    directory = tmp_path / "var"
    env = {"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(directory),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}  # fmt: skip
    return env, store.database_url(db_dir=directory)


def test_sigterm_during_load_finishes_in_flight_requests_and_writes_their_rows(trained_output, tmp_path):
    env, url = sqlite_env(trained_output, tmp_path)
    server = Gunicorn(tmp_path, env, workers=WORKERS)
    answers: dict = {}
    with server:
        ids = [f"term-{i}" for i in range(3000)]
        load = threading.Thread(target=lambda: answers.update(fire(server.url, ids, timeout=60)))
        load.start()
        assert wait_until(lambda: logged_count(url) >= 100, timeout=60), "the load never got going"
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0  # a graceful stop, not a kill
        load.join(timeout=120)
    statuses = collections.Counter(status for status, _ in answers.values())
    assert set(statuses) <= {200, 0}, statuses  # answered, or refused after the stop: never a 5xx
    served = {rid for rid, (status, _) in answers.items() if status == 200}
    assert 20 <= len(served) < len(ids), statuses  # SIGTERM really came in the middle
    assert_one_row_per_prediction(logged_rows(url), served)  # every answered request, nothing else


def logged_count(url: str) -> int:
    try:
        return len(logged_rows(url))
    except Exception:  # the table may not exist before the first worker migrated it
        return 0


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(trained_output, tmp_path):
    env, url = sqlite_env(trained_output, tmp_path)
    with Gunicorn(tmp_path, env, workers=WORKERS) as server:
        master = server.process.pid
        before = wait_until(lambda: len(workers_of(master)) == WORKERS and workers_of(master))
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        answers = fire(server.url, [f"crash-{i}" for i in range(100)])
        replaced = wait_until(lambda: (w := workers_of(master)) - before and len(w) == WORKERS and w)
        assert replaced and victim not in replaced, "gunicorn did not start a new worker"
        # Enough requests that the new worker serves some too, once it has loaded the models.
        time.sleep(1)
        answers |= fire(server.url, [f"after-{i}" for i in range(200)])
        assert server.process.poll() is None, "the master must survive a worker crash"
    statuses = collections.Counter(status for status, _ in answers.values())
    assert statuses == {200: 300}, statuses
    assert_one_row_per_prediction(logged_rows(url), set(answers))


def corrupt_manifest(output: Path) -> str:
    (output / "manifest.json").write_text("{not json")
    return "manifest"


def first_pickle(output: Path) -> Path:
    return sorted((output / "runs").glob("*/models/shard-*.bin"))[0]


def tampered_model(output: Path) -> str:
    payload = bytearray(first_pickle(output).read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    first_pickle(output).write_bytes(bytes(payload))
    return "sha256"


def missing_model(output: Path) -> str:
    first_pickle(output).unlink()
    return "missing"


def missing_manifest(output: Path) -> str:
    (output / "manifest.json").unlink()
    return "does not exist"


@pytest.mark.parametrize("damage", [missing_manifest, corrupt_manifest, tampered_model, missing_model])
def test_a_bad_model_at_start_gives_not_ready_with_the_reason_and_no_crash_loop(
    trained_output, tmp_path, damage
):
    output = tmp_path / "Output"
    shutil.copytree(trained_output, output)
    says = damage(output)
    env, _ = sqlite_env(output, tmp_path)
    with Gunicorn(tmp_path, env, workers=WORKERS, wait_for="/health") as server:
        master = server.process.pid
        first = wait_until(lambda: len(workers_of(master)) == WORKERS and workers_of(master))
        ready = requests.get(f"{server.url}/ready", timeout=10)
        predict = requests.post(f"{server.url}/predict", json=BODY, timeout=10)
        time.sleep(3)  # a crash loop would have replaced the workers by now
        assert workers_of(master) == first and server.process.poll() is None
    assert ready.status_code == 503
    reason = ready.json()["reason"]
    assert says in reason and ready.json()["checks"]["models"].startswith("not loaded")
    assert str(tmp_path) not in reason and not reason.count("/tmp/"), "no filesystem layout in replies"
    assert predict.status_code == 503 and predict.json()["error"]["code"] == "model_not_loaded"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


@pytest.mark.parametrize("where", ["postgresql-refused", "mysql-refused", "sqlite-unwritable"])
def test_a_database_unavailable_at_start_gives_503_never_500(trained_output, tmp_path, where):
    env, _ = sqlite_env(trained_output, tmp_path)
    if where == "postgresql-refused":
        env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    elif where == "mysql-refused":
        env["DATABASE_URL"] = f"mysql://root@127.0.0.1:{closed_port()}/test"
    else:
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the database directory should be")
        env["PREDICTION_DB_DIR"] = str(blocker / "var")
    with Gunicorn(tmp_path, env, workers=WORKERS, wait_for="/health") as server:
        ready = requests.get(f"{server.url}/ready", timeout=30)
        predicts = [requests.post(f"{server.url}/predict", json=BODY, timeout=30) for _ in range(4)]
        health = requests.get(f"{server.url}/health", timeout=10)
        assert server.process.poll() is None
    assert health.status_code == 200
    body = ready.json()
    assert ready.status_code == 503 and body["checks"]["models"] == "ok"
    assert body["checks"]["database"].startswith("prediction log check failed"), body
    assert str(tmp_path) not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
    for response in predicts:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "prediction_log_unavailable"
        assert response.headers.get("Retry-After")
