"""deploy/prometheus/alerts.yml: valid for promtool, and its unit tests (alerts_test.yml: the drift alert
fires for the drifting queue only, not before its `for`) pass."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from MLPipeline.config import PROJECT_ROOT
from service import drift
from tests.conftest import require

RULES = PROJECT_ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    require(found is not None, "promtool is not installed (Debian package prometheus)")
    return found


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60)


def test_alert_rules_pass_promtool_check(promtool):
    result = promtool_run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_alert_rules_fire_as_their_unit_tests_expect(promtool):
    result = promtool_run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_is_refused(promtool, tmp_path):
    broken = (RULES / "alerts.yml").read_text().replace("> 1.5 * callcenter_series_holdout_mape", "> > 1.5", 1)
    (tmp_path / "alerts.yml").write_text(broken)
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "alerts.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0


def test_the_alert_rules_state_the_dashboards_drift_rule():
    """One rule, two notations: the PromQL thresholds equal service.drift's."""
    rules = (RULES / "alerts.yml").read_text()
    assert (f"callcenter_series_live_mape > {drift.DRIFT_MAPE_FACTOR:g} * callcenter_series_holdout_mape"
            f" + {drift.DRIFT_MAPE_SLACK:g}") in rules
    assert f"callcenter_series_live_scored >= {drift.DRIFT_MIN_SCORED}" in rules
    assert f"callcenter_series_live_coverage_95 < {drift.DRIFT_COVERAGE_FLOOR:g}" in rules
    assert f"callcenter_series_live_scored >= {drift.DRIFT_COVERAGE_MIN_SCORED}" in rules
