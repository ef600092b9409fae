"""Serving benchmark: the production gunicorn config on a loopback port, bounded load, one table.

Endpoints: ``GET /health``, ``POST /predict`` (one month, every domain), ``POST /predict`` (100
instances), ``POST /forecast`` (horizon 12), each at 1, 8 and 32 connections for ``--seconds``.
Columns: the client connections each worker held (sampled with ``ss`` a second in: a keep-alive
connection stays on the worker that accepted it, so an uneven split caps a cell), requests/s,
p50/p95/p99 latency (ms), errors (non-2xx and socket errors), and each endpoint's throughput as a
share of ``/health`` at the same connection count in the same run.
The prediction log is on (SQLite in a temp dir), as in production.

Load generator: ``wrk`` when it is installed (``apt-get install wrk``; a C client that is not the
bottleneck), else a Python thread pool with keep-alive ``http.client`` connections (its own CPU
use competes with the server's on a small machine, so its numbers are a lower bound). The
output says which one ran.

Run: ``make bench-serve`` or ``python bench/serve.py [--output DIR] [--seconds 5] [--workers 2]``.
Without ``--output`` a model is trained into a temp dir first (the real workbook if present, else
the committed sample). Writes serve.md and serve.json to Output/bench/ (``--results DIR``).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from MLPipeline.config import DEFAULT_DATA_PATH, SHARED_DATA_PATH, output_dir  # noqa: E402
from MLPipeline.months import format_month  # noqa: E402
from service.cache import configured_rows  # noqa: E402
from tests.servers import Gunicorn  # noqa: E402 - the tests' gunicorn driver, reused

CONNECTIONS = (1, 8, 32)
#: Distinct request bodies each load cycles through, so no endpoint answers one input only.
VARIANTS = 24


def bodies(train_end: pd.Timestamp, series: list[str]) -> dict[str, tuple[str, str, list[str | None]]]:
    """endpoint name -> (method, path, bodies to cycle through) for the served model."""
    future = [train_end + pd.DateOffset(months=k) for k in range(1, VARIANTS + 1)]
    single = [
        json.dumps({"month": format_month(m), "phone_lines": 3 + i % 3, "channels": 2})
        for i, m in enumerate(future)
    ]
    window = pd.date_range(end=train_end + pd.DateOffset(months=12), periods=100, freq="MS")
    batch = [
        json.dumps({"instances": [{"month": format_month(m), "phone_lines": 3 + v % 3, "channels": 2}
                                  for m in window]})
        for v in range(3)
    ]  # fmt: skip
    forecast = [json.dumps({"domain": d, "horizon": 12}) for d in series]
    return {
        "/health": ("GET", "/health", [None]),
        "/predict 1 month": ("POST", "/predict", single),
        "/predict 100 instances": ("POST", "/predict", batch),
        "/forecast horizon 12": ("POST", "/forecast", forecast),
    }


# ------------------------------------------------------------------ load generators


def _lua(method: str, payloads: list[str | None], script: Path) -> Path:
    quoted = ", ".join("[==[" + (p or "") + "]==]" for p in payloads)
    script.write_text(f"""
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{{quoted}}}
local i = 0
request = function()
  i = i % #bodies + 1
  local body = bodies[i]
  if body == "" then body = nil end
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, ' ..
    '"status": %d, "socket": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
""")
    return script


def run_wrk(url: str, method: str, path: str, payloads, connections: int, seconds: float, tmp: Path) -> dict:
    script = _lua(method, payloads, tmp / "bench.lua")
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script),
         url + path],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    return {
        "requests": result["requests"],
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50"] / 1000,
        "p95_ms": result["p95"] / 1000,
        "p99_ms": result["p99"] / 1000,
        "errors": result["status"] + result["socket"],
    }


def run_python(
    url: str, method: str, path: str, payloads, connections: int, seconds: float, tmp: Path
) -> dict:
    """One thread per connection, keep-alive http.client, until the deadline."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    start = time.perf_counter()
    deadline = start + seconds

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = slot
        while time.perf_counter() < deadline:
            body = payloads[i % len(payloads)]
            i += 1
            t0 = time.perf_counter()
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 400
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            latencies[slot].append(time.perf_counter() - t0)
            errors[slot] += not ok
        conn.close()

    pool = [threading.Thread(target=client, args=(slot,)) for slot in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    every = np.concatenate([np.asarray(part) for part in latencies]) * 1000
    p50, p95, p99 = np.percentile(every, [50, 95, 99]) if len(every) else (np.nan,) * 3
    return {"requests": len(every), "rps": len(every) / elapsed, "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99), "errors": int(sum(errors))}  # fmt: skip


# ------------------------------------------------------------------ the run


def connection_split(port: int) -> str:
    """Established client connections per server process on ``port``, largest first ("16/16"), from
    ``ss``; "-" without it. A keep-alive connection stays on the worker that accepted it, so an
    uneven split caps a cell's throughput whatever the code does."""
    if shutil.which("ss") is None:
        return "-"
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    counts = collections.Counter(re.findall(r"pid=(\d+)", out))
    return "/".join(str(n) for n in sorted(counts.values(), reverse=True)) or "-"


def measured(load, port: int, url: str, method: str, path: str, payloads, connections: int, seconds: float,
             tmp: Path) -> dict:
    """``load(...)`` with the connection split sampled once its connections are open."""
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(load(url, method, path, payloads, connections, seconds, tmp)))
    worker.start()
    time.sleep(min(1.0, seconds / 2))
    split = connection_split(port)
    worker.join()
    return {**result, "split": split}


def train(directory: Path, data: Path) -> Path:
    from MLPipeline.pipeline import RunConfig, run

    out = directory / "Output"
    run(RunConfig(data_path=data, output_dir=out, plots=False))
    return out


def table(rows: list[dict]) -> str:
    lines = ["| endpoint | connections | per worker | requests/s | p50 ms | p95 ms | p99 ms | errors | vs /health |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['endpoint']} | {r['connections']} | {r.get('split', '-')} | {r['rps']:.0f} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['ratio_to_health']:.0%} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--output", type=Path, help="a trained Output directory (default: train one in a temp dir)"
    )
    p.add_argument("--data", type=Path, help="workbook to train on when --output is not given")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each load (default 5)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 2))
    p.add_argument("--connections", type=int, nargs="+", default=list(CONNECTIONS))
    p.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--results", type=Path, help="directory for serve.md/.json (default Output/bench)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
    load = run_wrk if client == "wrk" else run_python
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.output
        if model_dir is None:
            data = args.data or (SHARED_DATA_PATH if SHARED_DATA_PATH.exists() else DEFAULT_DATA_PATH)
            print(f"training on {data} ...", flush=True)
            model_dir = train(tmp, data)
        env = {"OUTPUT_DIR": str(model_dir), "PREDICTION_DB_DIR": str(tmp / "var"),
               "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "GUNICORN_LOGLEVEL": "warning"}  # fmt: skip
        rows = []
        with Gunicorn(tmp, env, workers=args.workers) as server:
            info = json.loads(_get(server.url, "/model"))
            port = int(server.url.rsplit(":", 1)[1])
            plan = bodies(pd.Timestamp(info["train_end"]), info["domains"])
            for method, path, payloads in plan.values():  # warm every worker's code paths
                load(server.url, method, path, payloads, 4, 1.0, tmp)
            for connections in args.connections:
                for name, (method, path, payloads) in plan.items():
                    result = measured(load, port, server.url, method, path, payloads, connections,
                                      args.seconds, tmp)
                    rows.append({"endpoint": name, "connections": connections, **result})
                    print(f"{name:24s} c={connections:<3d} [{result['split']}] {result['rps']:8.1f} req/s  "
                          f"p50 {result['p50_ms']:7.1f}  p99 {result['p99_ms']:7.1f} ms  "
                          f"errors {result['errors']}", flush=True)  # fmt: skip
    health = {r["connections"]: r["rps"] for r in rows if r["endpoint"] == "/health"}
    for r in rows:
        r["ratio_to_health"] = (
            r["rps"] / health[r["connections"]] if health.get(r["connections"]) else float("nan")
        )
    meta = {
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "client": client,
        "workers": args.workers,
        "threads_per_worker": int(os.environ.get("GUNICORN_THREADS") or 2),
        "seconds_per_load": args.seconds,
        "model_version": info["model_version"],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "prediction_log": "sqlite",
        "prediction_cache_rows": configured_rows(),
        "reuse_port": os.environ.get("GUNICORN_REUSE_PORT", ""),
    }
    text = "\n".join([
        f"# Serving benchmark ({meta['finished']})", "",
        f"gunicorn -c gunicorn.conf.py, {args.workers} workers x {meta['threads_per_worker']} threads, "
        f"{meta['cpus']} CPUs, load generator: **{client}**, {args.seconds:g} s per cell, "
        f"prediction log on (SQLite), answer cache {meta['prediction_cache_rows']:,} rows per worker "
        f"(0 = off), up to {VARIANTS} distinct bodies cycled per endpoint, model {meta['model_version']}.", "",
        table(rows), "",
    ])  # fmt: skip
    print()
    print(text)
    out = args.results or (output_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.md").write_text(text)
    (out / "serve.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out / 'serve.md'} and serve.json")
    return 1 if any(r["errors"] for r in rows) else 0


def _get(url: str, path: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


if __name__ == "__main__":
    sys.exit(main())
