"""service/worker.py through real gunicorn (the committed config) on loopback: gunicorn's own errors
in the JSON shape, chunked bodies past the limit, slow clients that cannot starve /health, and a
hung request that restarts its worker. Raw sockets where the request must be malformed or slow.
"""

from __future__ import annotations

import fcntl
import json
import re
import socket
import threading
import time

import pytest
import requests

from service.api import SECURITY_HEADERS
from tests.servers import Gunicorn, wait_until, workers_of

pytestmark = pytest.mark.slow

WORKERS = 2  # x 2 threads each (gunicorn.conf.py)
READ_TIMEOUT = 1  # seconds, for these servers (GUNICORN_READ_TIMEOUT)


@pytest.fixture(scope="module")
def server(trained_output, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("worker")
    env = {"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(tmp / "var"),
           "GUNICORN_READ_TIMEOUT": str(READ_TIMEOUT)}  # fmt: skip
    with Gunicorn(tmp, env, workers=WORKERS) as running:
        yield running


def exchange(server, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, want: int, code: str) -> dict:
    assert status == want, body
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "field"} and error["code"] == code and error["message"]
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value
    return error


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
         431, "headers_too_large"),  # fmt: skip
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ],
)
def test_gunicorns_own_errors_are_in_the_json_error_shape(server, request_bytes, status, code):
    assert_json_error(*exchange(server, request_bytes), status, code)


def chunked_predict(body: bytes, request_id: str) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
                      for i in range(0, len(body), 65536))  # fmt: skip
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\nX-Request-ID: " + request_id.encode()
            + b"\r\n\r\n" + chunks + b"0\r\n\r\n")  # fmt: skip


def logged_request_ids(server) -> set[str]:
    rows = requests.get(f"{server.url}/predictions?limit=1000", timeout=10).json()["predictions"]
    return {row["request_id"] for row in rows}


def test_a_chunked_body_past_the_limit_is_413_and_nothing_is_logged(server):
    valid = json.dumps({"month": "2021-03", "domains": ["Banking"]}).encode()
    # Valid JSON up to the 1 MiB limit, and more after it: werkzeug read only the first 1 MiB.
    status, headers, body = exchange(server, chunked_predict(valid + b" " * (2 << 20), "chunked-over"))
    assert_json_error(status, headers, body, 413, "payload_too_large")
    status, _, body = exchange(server, chunked_predict(valid + b" " * 1000, "chunked-under"))
    assert status == 200, body  # a chunked body within the limit is served as before
    assert {"chunked-under"} <= logged_request_ids(server) and "chunked-over" not in logged_request_ids(server)


def trickle(server, seconds: float, answers: list) -> None:
    """Send headers, then a byte every 0.3 s for ``seconds``; record what the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")  # fmt: skip
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                sock.sendall(b" ")
                time.sleep(0.3)
            answers.append(sock.recv(4096))
        except OSError:  # the server answered 408 and closed while we were still sending
            try:
                answers.append(sock.recv(4096))
            except OSError:
                answers.append(b"reset")


def test_slow_clients_cannot_starve_health(server):
    """Twice as many trickling clients as request threads; /health answers all along."""
    answers: list[bytes] = []
    slow = [threading.Thread(target=trickle, args=(server, 5, answers)) for _ in range(2 * WORKERS * 2)]
    for thread in slow:
        thread.start()
    time.sleep(0.5)  # they hold every thread now
    probes = []
    end = time.monotonic() + 4
    while time.monotonic() < end:
        try:
            probes.append(requests.get(f"{server.url}/health", timeout=4).status_code)
        except requests.RequestException as exc:
            probes.append(type(exc).__name__)
        time.sleep(0.3)
    for thread in slow:
        thread.join(timeout=20)
    assert probes and set(probes) == {200}, probes
    assert any(b" 408 " in answer and b'"request_timeout"' in answer for answer in answers), answers


def test_an_upload_at_a_reasonable_rate_is_not_cut_off(server):
    """~300 KB at ~150 KB/s takes 2 s, twice READ_TIMEOUT: the rate allowance keeps it alive."""
    body = json.dumps({"month": "2021-03", "domains": ["Banking"]}).encode() + b" " * 300_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        for i in range(0, len(body), 30_000):
            sock.sendall(body[i : i + 30_000])
            time.sleep(0.2)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:300]


def test_a_hung_request_restarts_its_worker_and_the_other_keeps_answering(trained_output, tmp_path):
    """A request stuck past GUNICORN_TIMEOUT (here: waiting on the log's write lock, held by the
    test) makes its worker exit; the master replaces it. gthread's heartbeat alone never did."""
    db_dir = tmp_path / "var"
    env = {"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(db_dir), "GUNICORN_TIMEOUT": "3"}
    with Gunicorn(tmp_path, env, workers=WORKERS) as server:
        master = server.process.pid
        assert requests.post(f"{server.url}/predict", json={"month": "2021-03"}, timeout=30).status_code == 200
        before = wait_until(lambda: len(workers_of(master)) == WORKERS and workers_of(master))
        with open(db_dir / "predictions.db.write-lock", "a") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)  # every write now waits for the test
            try:
                with pytest.raises(requests.RequestException):  # its worker is gone: no answer
                    requests.post(f"{server.url}/predict", json={"month": "2021-03"}, timeout=15)
                replaced = wait_until(lambda: (w := workers_of(master)) - before and len(w) == WORKERS and w, 15)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
        health = [requests.get(f"{server.url}/health", timeout=5).status_code for _ in range(6)]
        assert server.process.poll() is None
    assert replaced and len(before - replaced) == 1, (before, replaced)
    assert health == [200] * 6
    log = server.stderr_path.read_text()
    assert re.search(r"request POST /predict has run [\d.]+ s, over the 3 s timeout", log), log[-2000:]
