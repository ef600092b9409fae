"""Training on a real dask.distributed LocalCluster (scheduler + 2 worker processes on loopback):
the same models as a local run, no series lost when a worker dies, one readable line when the
scheduler cannot be used."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, engine

from MLPipeline.dask_executor import SchedulerError
from MLPipeline.executor import map_series
from MLPipeline.pipeline import RunConfig, run

distributed = pytest.importorskip("distributed")
#: dask's connect timeout, through its environment configuration: an unreachable scheduler fails fast
QUICK_CONNECT = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        yield local


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("panel") / "queues.csv"
    subprocess.run([sys.executable, "-m", "MLPipeline.sample_data", "--queues", "20", "--output", str(path)],
                   cwd=PROJECT_ROOT, check=True, capture_output=True)
    return path


def _train(data: Path, output: Path, **kw) -> dict:
    return run(RunConfig(data_path=data, output_dir=output, plots=False, backtest=False,
                         kinds=("seasonal-naive",), **kw))


def test_a_cluster_run_saves_exactly_the_models_of_a_local_run(cluster, panel_csv, tmp_path, caplog):
    local = _train(panel_csv, tmp_path / "local", n_jobs=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="MLPipeline"):
        remote = _train(panel_csv, tmp_path / "cluster", scheduler=cluster.scheduler_address)
    progress = [r for r in caplog.records if r.name == "MLPipeline.progress"]
    assert progress and (progress[-1].done, progress[-1].total) == (20, 20)  # the JSON log's extras
    assert progress[-1].rate > 0 and progress[-1].eta_seconds == 0
    assert len(remote["series"]) == 20
    assert remote["series"] == local["series"] and remote["metrics"] == local["metrics"]
    assert remote["fallbacks"] == [] == local["fallbacks"]
    # same pickles byte for byte: the same fitted models, hence the same forecasts
    by_file = lambda m: {(a["series"], a["kind"]): a["sha256"] for a in m["artifacts"]}  # noqa: E731
    assert by_file(remote) == by_file(local) and len(by_file(local)) == 20
    run_files = lambda m: {k.split("/", 2)[-1]: v for k, v in m["files"].items()  # noqa: E731
                           if k.endswith(("holdout.json", "metrics.json", "data.csv"))}
    assert run_files(remote) == run_files(local)


def _slow_double(x: int) -> int:
    time.sleep(0.4)
    return 2 * x


def test_a_worker_killed_mid_run_loses_no_item(cluster):
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(
        map_series(_slow_double, list(range(20)), scheduler=cluster.scheduler_address)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        busy = {}
        while time.monotonic() < deadline:  # wait until both workers are running tasks of this map
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if len(busy) == 2:
                break
            time.sleep(0.05)
        assert len(busy) == 2, "the map never reached both workers"
        victim = next(iter(busy))
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker; the scheduler reschedules its tasks
    finally:
        runner.join(timeout=60)
        client.close()
    assert not runner.is_alive()
    assert results == [2 * x for x in range(20)]


def test_an_item_that_keeps_failing_is_handed_to_on_error(cluster):
    out = map_series(_fail_on_three, [1, 2, 3, 4], scheduler=cluster.scheduler_address,
                     on_error=lambda item, exc: ("fallback", item, type(exc).__name__))
    assert out == [1, 2, ("fallback", 3, "ValueError"), 4]


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_an_unreachable_scheduler_is_one_line_and_exit_2(panel_csv, tmp_path):
    result = engine("--data", str(panel_csv), "--output", str(tmp_path / "out"), "--kinds", "seasonal-naive",
                    "--no-plots", "--no-backtest", env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9", **QUICK_CONNECT}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert "\n" not in result.stderr.strip() and not (tmp_path / "out" / "manifest.json").exists()


def test_without_dask_installed_the_scheduler_flag_says_what_to_install(panel_csv, tmp_path):
    hide = ("import sys; sys.modules['distributed'] = None; sys.argv = ['Engine.py'] + sys.argv[1:]; "
            "import runpy; runpy.run_path('Engine.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", hide, "--data", str(panel_csv), "--output", str(tmp_path / "o"),
                             "--scheduler", "tcp://127.0.0.1:8786"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: --scheduler needs dask.distributed, which is not installed: "
                                     "pip install -r requirements-dask.txt")


def test_scheduler_error_is_raised_before_any_work(tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(SchedulerError, match="cannot reach"):
        map_series(_slow_double, [1], scheduler="tcp://127.0.0.1:9")
