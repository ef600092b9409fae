"""The gunicorn worker the service runs (``worker_class`` in gunicorn.conf.py): gthread, plus three
things gthread leaves out.

- **Slow clients cannot hold a thread.** A request's line, headers and body must arrive within
  READ_TIMEOUT seconds of the moment its connection was handed to the thread pool, plus one second
  per MIN_BODY_RATE bytes received (so an upload at that rate or faster always fits); bytes that
  have arrived are always read, only a read that would have to wait past the deadline fails. The
  client then gets a 408 and the connection closes. The time queued for a thread counts: N slow
  clients ahead of a probe hold it up for one READ_TIMEOUT, not N / threads of them. A connection
  that has sent nothing waits in the worker's poller after FIRST_BYTE_WAIT, not in a thread.
  gthread reads requests with blocking reads in its request threads, so eight clients trickling
  bodies held all four threads of two workers for as long as they liked, and /health queued
  behind them.
- **A request over the timeout restarts the worker.** gunicorn's ``timeout`` watches the worker's
  heartbeat, which gthread's main loop keeps sending while a request thread hangs: a hung request
  was never timed out. A watchdog thread does it: the worker stops accepting connections, lets its
  other requests finish, logs the hung one and exits; the master starts a replacement.
- **gunicorn's own errors use the one JSON error shape.** A request gunicorn refuses before the
  app sees it (414 long URL, 431 large headers, 400 malformed request line, 408 above) is answered
  with ``{"error": {"code", "message", "field"}}``, not gunicorn's HTML page.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from gunicorn.workers import gthread
from werkzeug.exceptions import RequestTimeout

from service.errors import HTTP_CODES, error_body


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


#: Seconds from a request's first byte to its last (before the rate allowance below).
READ_TIMEOUT = _seconds("GUNICORN_READ_TIMEOUT", 3.0)
#: Bytes per second of body that earn one more second: a 1 MiB body at this rate takes 16 s.
MIN_BODY_RATE = 64 * 1024
#: How long a new connection may wait in a thread for its first byte before it waits in the poller.
FIRST_BYTE_WAIT = 0.25
#: Longest part of a gunicorn error message echoed back (the message can quote the request).
MAX_ERROR_MESSAGE = 200
#: How often the watchdog looks at the requests in flight.
WATCHDOG_EVERY = 1.0


class ReadTimeout(RequestTimeout):
    """The client did not send its whole request in time (werkzeug's 408, so the app's error
    handler answers it in our shape when it happens while the app reads the body)."""

    description = "the request did not arrive in time; send it at once"


class DeadlineSocket:
    """A connection's socket whose reads end at the current request's deadline.

    Everything but ``recv`` is the socket's own; the request parser and the app read through
    ``recv``. ``arm`` starts a request's clock, ``disarm`` stops it once the app has its body.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._armed = False
        self._deadline = 0.0
        self._received = 0

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def arm(self) -> None:
        self._armed, self._deadline, self._received = True, time.monotonic() + READ_TIMEOUT, 0

    def disarm(self) -> None:
        self._armed = False

    def recv(self, size: int, *flags: int) -> bytes:
        if not self._armed:
            return self._sock.recv(size, *flags)
        left = max(self._deadline + self._received / MIN_BODY_RATE - time.monotonic(), 0.0)
        prior = self._sock.gettimeout()
        self._sock.settimeout(left if prior is None else min(prior, left))  # 0: only what is there
        try:
            data = self._sock.recv(size, *flags)
        except (TimeoutError, BlockingIOError):
            raise ReadTimeout() from None
        finally:
            self._sock.settimeout(prior)
        self._received += len(data)
        return data


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error page, to learn the
    status line gunicorn chose (gunicorn.util.write_error; it asks gettimeout, then sendall)."""

    def __init__(self):
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status(self) -> tuple[int, str]:
        parts = self.data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        try:
            return int(parts[1]), parts[2] if len(parts) > 2 else ""
        except (IndexError, ValueError):
            return 500, "Internal Server Error"


def json_error(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying our error shape; the connection closes after it."""
    from service.api import SECURITY_HEADERS

    body = json.dumps(error_body(HTTP_CODES.get(status, f"http_{status}"), message)).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Worker(gthread.ThreadWorker):
    """gthread with read deadlines, a request watchdog and JSON error pages (see the module)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_flight: dict[int, tuple[float, str]] = {}  # thread id -> (start, "METHOD path")

    # ------------------------------------------------------------- reading requests
    def enqueue_req(self, conn):
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock)  # before the parser is made: it reads this
        conn.sock.arm()  # here, in the main loop: waiting for a thread counts too
        super().enqueue_req(conn)

    def handle(self, conn):
        if not conn.initialized and not conn.data_ready and not conn.wait_for_data(FIRST_BYTE_WAIT):
            return gthread._DEFER  # nothing sent yet: wait in the poller, not in this thread
        try:
            return super().handle(conn)
        finally:
            conn.sock.disarm()

    def handle_request(self, req, conn):
        me = threading.get_ident()
        self._in_flight[me] = (time.monotonic(), f"{req.method} {req.path}")
        try:
            return super().handle_request(req, conn)
        finally:
            # The app has read what it wanted; gunicorn's own drain of the rest has its own bound.
            conn.sock.disarm()
            self._in_flight.pop(me, None)

    # -------------------------------------------------------------- error pages
    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, ReadTimeout):
            self.log.warning("request from %s not received within its deadline", (addr or ("",))[0])
            status, reason = 408, "Request Timeout"
        else:
            page = _Captured()  # gunicorn picks the status and logs; only its page is replaced
            super().handle_error(req, page, addr, exc)
            status, reason = page.status()
        message = ReadTimeout.description if status == 408 else (
            str(exc)[:MAX_ERROR_MESSAGE] if status < 500 else "internal server error"
        )
        try:
            gthread.util.write_nonblock(client, json_error(status, reason, message))
        except OSError:
            self.log.debug("could not send the error response")

    # ------------------------------------------------------------------ watchdog
    def run(self):
        threading.Thread(target=self._watch, name="request-watchdog", daemon=True).start()
        super().run()

    def _watch(self) -> None:
        limit = self.cfg.timeout
        while self.alive:
            time.sleep(WATCHDOG_EVERY)
            now = time.monotonic()
            hung = {tid: (start, what) for tid, (start, what) in list(self._in_flight.items())
                    if now - start > limit}  # fmt: skip
            if limit and hung:
                self._restart(hung, now)

    def _restart(self, hung: dict[int, tuple[float, str]], now: float) -> None:
        """Stop taking connections, let the healthy requests finish, then exit for a replacement.

        os._exit: the hung thread cannot be stopped, and a normal exit would wait for it.
        """
        for start, what in hung.values():
            self.log.error(
                "request %s has run %.1f s, over the %s s timeout: restarting worker %s",
                what, now - start, self.cfg.timeout, self.pid,
            )  # fmt: skip
        self.alive = False
        self.method_queue.defer(lambda: None)  # wake the main loop so it stops accepting now
        deadline = now + self.cfg.graceful_timeout
        while set(self._in_flight) - set(hung) and time.monotonic() < deadline:
            time.sleep(0.1)
        os._exit(1)
