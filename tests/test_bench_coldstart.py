"""A smoke run of bench/coldstart.py (the benchmark itself is not a test): one capped and one
uncapped cold start of one worker. Needs root and a writable CPU cgroup; skipped without one."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "coldstart.py"
QUOTA = 0.5


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_coldstart", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def writable_cgroup(bench) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        with bench.cpu_cgroup(QUOTA):
            return True
    except SystemExit:
        return False


@pytest.mark.slow
def test_a_capped_cold_start_reaches_ready_within_its_cpu_quota(bench, trained_output, tmp_path):
    if not writable_cgroup(bench):
        pytest.skip("needs root and a writable CPU cgroup")
    listening, ready, used = bench.cold_start(trained_output, tmp_path, workers=1, quota=QUOTA)
    assert 0 < listening <= ready
    assert used > 0
    # The cap binds: gunicorn's processes got at most QUOTA of a CPU for the time they ran
    # (one 100 ms period of slack for where the measurement window cuts a period).
    assert used <= QUOTA * ready + bench.PERIOD_US / 1e6
    assert not list(Path("/sys/fs/cgroup/cpu").glob("callcenter-gp-coldstart-*"))  # cleaned up
    _, free_ready, free_used = bench.cold_start(trained_output, tmp_path, workers=1, quota=None)
    assert free_ready > 0 and free_used > 0
