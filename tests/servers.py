"""Real servers for the tests: gunicorn started as users start it (the committed gunicorn.conf.py, on a
free loopback port), clients that fire bounded loads at it, and readers of what it logged and counted.

Shared by the test modules (through tests/conftest.py's fixtures) and by bench/serve.py.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from MLPipeline.config import PROJECT_ROOT
from MLPipeline.sample_data import DEFAULT_QUEUES
from service import store

WORKERS = 4

CLIENT_THREADS = 8


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
    assert len(rows) == len(served) * len(DEFAULT_QUEUES)
    assert set(per_request) == served
    assert set(rows) == {(rid, d) for rid in served for d in DEFAULT_QUEUES}


def workers_of(master: int) -> set[int]:
    """The gunicorn master's child processes (its workers)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def wait_until(condition, timeout: float = 60, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    return condition()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped, name, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


START_TIMEOUT = 120  # seconds for two workers to import, load models and answer /ready


def wait_ready(base: str, process: subprocess.Popen) -> requests.Response:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}")
        try:
            response = requests.get(f"{base}/ready", timeout=5)
            if response.status_code == 200:
                return response
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or the workers are still loading the models
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not become ready within {START_TIMEOUT} s")


@contextlib.contextmanager
def gunicorn(output, logs, **env_extra):
    """gunicorn -c gunicorn.conf.py app:app, 2 workers, bound to 127.0.0.1 only; stopped after."""
    port = free_port()
    env = {
        **os.environ,
        "OUTPUT_DIR": str(output),
        "PREDICTION_DB_DIR": str(logs / "db"),
        "WEB_CONCURRENCY": "2",
        "PORT": str(port),
        **env_extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "-b",
        f"127.0.0.1:{port}",
        "app:app",
    ]
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, process)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0, (logs / "stderr").read_text()[-2000:]
