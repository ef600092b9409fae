"""The retrain schedule on EC2: `deploy/ec2-run.sh install-timer` writes a systemd service + timer that
`systemd-analyze verify` accepts, and `retrain` runs Engine.py --actuals in the image on the models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from MLPipeline.config import PROJECT_ROOT

EC2_RUN = PROJECT_ROOT / "deploy" / "ec2-run.sh"
UNITS = ("callcenter-gp-retrain.service", "callcenter-gp-retrain.timer")


def ec2_run(tmp_path: Path, *args: str, path_extra: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "EC2_SYSTEMD_DIR": str(tmp_path / "units"), "EC2_ENV_FILE": str(tmp_path / "none.env")}
    if path_extra is not None:
        env["PATH"] = f"{path_extra}:{env['PATH']}"
    return subprocess.run(["bash", str(EC2_RUN), *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def host(tmp_path):
    """A models directory and a data file, as on the EC2 host."""
    (tmp_path / "models").mkdir()
    data = tmp_path / "calls.csv"
    data.write_text("month,Sales\n")
    return tmp_path / "models", data


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed")
    return found


def test_install_timer_writes_units_that_verify(tmp_path, host):
    models, data = host
    result = ec2_run(tmp_path, "--models", str(models), "--data", str(data), "--image", "callcenter-gp:v7",
                     "--on-calendar", "Mon *-*-* 02:30:00", "install-timer")
    assert result.returncode == 0, result.stderr
    service, timer = ((tmp_path / "units" / name).read_text() for name in UNITS)
    assert "@" not in service + timer  # every placeholder filled in
    assert (f"ExecStart={EC2_RUN} --image callcenter-gp:v7 --name callcenter-gp --env-file {tmp_path / 'none.env'} "
            f"--models {models} --data {data} retrain") in service
    assert "SuccessExitStatus=3" in service and "Type=oneshot" in service
    assert "OnCalendar=Mon *-*-* 02:30:00" in timer and "Persistent=true" in timer
    verify = subprocess.run([analyze(), "verify", *(str(tmp_path / "units" / n) for n in UNITS)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert "callcenter-gp-retrain" not in verify.stderr  # not even a warning about our units


def test_a_schedule_systemd_cannot_parse_is_refused(tmp_path, host):
    analyze()
    models, data = host
    result = ec2_run(tmp_path, "--models", str(models), "--data", str(data), "--on-calendar", "every blue moon",
                     "install-timer")
    assert result.returncode != 0 and "systemd-analyze verify refused" in result.stderr


def test_install_timer_needs_the_models_and_the_data(tmp_path, host):
    models, _ = host
    result = ec2_run(tmp_path, "--models", str(models), "install-timer")
    assert result.returncode == 1 and "needs --data FILE" in result.stderr
    assert not (tmp_path / "units").exists()


@pytest.mark.parametrize("status", [0, 3, 2])
def test_retrain_runs_engine_with_actuals_in_the_image_and_passes_its_status_on(tmp_path, host, status):
    models, data = host
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker.calls"
    (bin_dir / "docker").write_text(  # a stand-in: records `docker run`, exits as Engine.py would
        f'#!/usr/bin/env bash\n[[ $1 == run ]] && printf "%s\\n" "$*" >> {calls} && exit {status}\nexit 0\n')
    (bin_dir / "docker").chmod(0o755)
    result = ec2_run(tmp_path, "--models", str(models), "--data", str(data), "retrain", path_extra=bin_dir)
    assert result.returncode == status, result.stderr
    (run,) = calls.read_text().splitlines()
    assert f"--volume {models}:/app/Output " in run and "--volume callcenter-gp-data:/app/data " in run
    assert f"--volume {data}:/app/Input/retrain/calls.csv:ro " in run
    assert run.endswith("callcenter-gp:latest python Engine.py --data /app/Input/retrain/calls.csv "
                        "--output /app/Output --actuals --no-plots")
    assert {0: "published", 3: "kept as a candidate", 2: "served model is unchanged"}[status] in result.stderr
