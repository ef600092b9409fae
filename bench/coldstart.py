"""Cold-start benchmark: how long gunicorn takes from its start until ``GET /ready`` answers 200,
with the CPU capped the way a small Lightsail node caps it.

Lightsail's health check has no start grace period: a deployment fails when its container misses
``unhealthyThreshold`` checks in a row, ``intervalSeconds`` apart, so the time to the first 200
decides whether a cold start on a ``micro`` node (a quarter of a vCPU) survives.

The cap is a CPU cgroup (``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` on v1) holding gunicorn and
its workers, e.g. 25 ms of CPU per 100 ms period for 0.25 vCPU, all on one core (CPU affinity),
so workers never run side by side. It needs root and a writable cgroup hierarchy; without one the
benchmark stops and says so. The page cache is warm (the files were read before), so a real first
start after an image pull can be slower.

Each cell runs ``--repeat`` times; the table shows the median (min-max) seconds to the first
``/health`` 200 (a worker is listening) and the first ``/ready`` 200, the ready time as a multiple
of the uncapped single-core run in the same benchmark, and the CPU seconds gunicorn's processes had
used by then (``/proc``: master and workers). The CPU seconds hardly depend on other load, so
``CPU s / quota`` is what the cold start takes on a node that gives the full quota; the wall times
include whatever a shared machine's other load took (``uptime`` is printed before and after).

Run: ``python bench/coldstart.py [--output DIR] [--quotas 1 0.5 0.25] [--workers 1 2] [--repeat 3]``.
Without ``--output`` a model is trained into a temp dir first (the committed sample).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from MLPipeline.config import DEFAULT_DATA_PATH  # noqa: E402

PERIOD_US = 100_000
CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu"))  # v2 unified, v1 cpu controller
START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextlib.contextmanager
def cpu_cgroup(quota: float | None) -> Iterator[Path | None]:
    """A fresh cgroup limited to ``quota`` CPUs (None: no cgroup); removed afterwards."""
    if quota is None:
        yield None
        return
    name = f"callcenter-gp-coldstart-{os.getpid()}"
    for root in CGROUP_ROOTS:
        v2 = (root / "cgroup.controllers").exists()
        if not (v2 or (root / "cpu.cfs_quota_us").exists()):
            continue
        group = root / name
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            limit = int(quota * PERIOD_US)
            if v2:
                (group / "cpu.max").write_text(f"{limit} {PERIOD_US}\n")
            else:
                (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
                (group / "cpu.cfs_quota_us").write_text(f"{limit}\n")
            yield group
        finally:
            group.rmdir()
        return
    raise SystemExit("no writable CPU cgroup (needs root and /sys/fs/cgroup writable): cannot cap the CPU")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (gunicorn's master and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in (pid, *map(int, children)):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def cold_start(model_dir: Path, tmp: Path, workers: int, quota: float | None) -> tuple[float, float, float]:
    """Seconds from spawning gunicorn to the first /health 200 and the first /ready 200, and the
    CPU seconds its processes used until then."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")},
        "OUTPUT_DIR": str(model_dir),
        "PREDICTION_DB_DIR": str(tmp / f"var-{port}"),
        "WEB_CONCURRENCY": str(workers),
        "LOG_FORMAT": "json",
        "GUNICORN_LOGLEVEL": "warning",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app:app"]
    with cpu_cgroup(quota) as group:
        procs = None if group is None else group / "cgroup.procs"

        def confine() -> None:  # in the child, before exec: it and every worker it forks
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            if procs is not None:
                procs.write_text(f"{os.getpid()}\n")

        log = open(tmp / f"gunicorn-{port}.log", "wb")  # noqa: SIM115 - closed below
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, preexec_fn=confine)
        listening = ready = None
        try:
            while ready is None:
                if process.poll() is not None:
                    raise SystemExit(f"gunicorn exited {process.returncode}; see {log.name}")
                now = time.monotonic() - started
                if now > START_TIMEOUT_S:
                    raise SystemExit(f"/ready not 200 after {START_TIMEOUT_S} s; see {log.name}")
                if listening is None and status(f"http://127.0.0.1:{port}/health") == 200:
                    listening = time.monotonic() - started
                if listening is not None and status(f"http://127.0.0.1:{port}/ready") == 200:
                    ready = time.monotonic() - started
                    used = cpu_seconds(process.pid)
                time.sleep(0.1)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    return listening, ready, used


def train(directory: Path) -> Path:
    from MLPipeline.pipeline import RunConfig, run

    out = directory / "Output"
    run(RunConfig(data_path=DEFAULT_DATA_PATH, output_dir=out, plots=False))
    return out


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, help="a trained Output directory (default: train one in a temp dir)")
    p.add_argument("--quotas", type=float, nargs="+", default=[1.0, 0.5, 0.25],
                   help="CPU caps in vCPUs (default 1 0.5 0.25); an uncapped one-core run is the reference")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="WEB_CONCURRENCY values (default 1 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell (default 3)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # clean up servers and cgroups
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.output or train(tmp)
        results: dict[tuple[int, float | None], list[tuple[float, float, float]]] = {}
        # Round-robin over the cells, so slow and busy minutes of a shared machine spread over all.
        cells = [(w, q) for w in args.workers for q in (None, *args.quotas)]
        for run in range(args.repeat):
            for workers, quota in cells:
                listening, ready, used = cold_start(model_dir, tmp, workers, quota)
                results.setdefault((workers, quota), []).append((listening, ready, used))
                cap = "one core" if quota is None else f"{quota:g} vCPU"
                print(f"run {run + 1}: {workers} worker(s), {cap}: listening {listening:.1f} s, ready {ready:.1f} s, "
                      f"{used:.1f} CPU s", flush=True)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("\n| workers | CPU | first /health 200, s | first /ready 200, s | ready vs one core | CPU s until ready |"
          " CPU s / quota |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for workers, quota in cells:
        runs = results[(workers, quota)]
        reference = statistics.median(r for _, r, _ in results[(workers, None)])
        ready = [r for _, r, _ in runs]
        used = [u for _, _, u in runs]
        cap = "one core, uncapped" if quota is None else f"{quota:g} vCPU"
        at_quota = "-" if quota is None else f"{statistics.median(used) / quota:.1f}"
        print(f"| {workers} | {cap} | {cell([h for h, _, _ in runs])} | {cell(ready)} | "
              f"{statistics.median(ready) / reference:.1f}x | {cell(used)} | {at_quota} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
