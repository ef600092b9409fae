"""tests/run-suite.sh, the script `make test` runs: which database servers it hands to pytest.

A stand-in interpreter answers the script's connection probes (the real probe connects with the
service's own engine settings) and records the environment and arguments pytest would get.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "run-suite.sh"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql+pymysql://root@127.0.0.1:3306/test"

# "python - URL" is the probe (succeeds for URLs in $UP); "python -m pytest ..." records and exits.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-" ]; then
  cat >/dev/null
  case " $UP " in *" $2 "*) exit 0 ;; esac
  exit 1
fi
exec "$REAL_PYTHON" -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:],
  "postgres": os.environ.get("TEST_DATABASE_URL"), "mysql": os.environ.get("TEST_MYSQL_URL")}))' "$@"
"""


def run(tmp_path: Path, up: list[str], *args: str, **preset: str) -> tuple[dict, str]:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "TEST_MYSQL_URL")}
    env.update(UP=" ".join(up), REAL_PYTHON=sys.executable, **preset)
    result = subprocess.run(["bash", str(SCRIPT), str(python), *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    *notes, recorded = result.stdout.strip().splitlines()
    return json.loads(recorded), "\n".join(notes)


def test_servers_that_answer_are_exported_and_pytest_gets_the_arguments(tmp_path: Path):
    recorded, notes = run(tmp_path, [POSTGRES, MYSQL], "-q", "-k", "store")
    assert recorded == {"argv": ["-m", "pytest", "-q", "-k", "store"], "postgres": POSTGRES, "mysql": MYSQL}
    assert "PostgreSQL answers on 127.0.0.1:5432/test" in notes


def test_a_server_that_does_not_answer_is_left_out_and_said_so(tmp_path: Path):
    recorded, notes = run(tmp_path, [POSTGRES])
    assert (recorded["postgres"], recorded["mysql"]) == (POSTGRES, None)
    assert "MySQL/MariaDB is not answering on 127.0.0.1:3306/test: its prediction-log tests skip" in notes


def test_a_preset_url_is_kept_and_an_empty_one_leaves_the_server_out(tmp_path: Path):
    elsewhere = "postgresql://ci@db.internal:5432/test"
    recorded, notes = run(tmp_path, [POSTGRES, MYSQL], TEST_DATABASE_URL=elsewhere, TEST_MYSQL_URL="")
    assert (recorded["postgres"], recorded["mysql"]) == (elsewhere, "")
    assert "db.internal" not in notes  # a preset URL may carry a password: never printed
    assert "TEST_MYSQL_URL is set empty" in notes
