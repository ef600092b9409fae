"""Engine.py --actuals: months recorded with POST /actuals are appended after the data's last month,
the data wins where both have a month (each disagreement reported), and bad rows refuse the run."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from MLPipeline.actuals import Actual, merge_actuals, prediction_log_url
from MLPipeline.data import load_panel
from MLPipeline.months import month_ordinal, parse_month
from MLPipeline.sample_data import generate, write_data
from service import store
from tests.conftest import quick_engine, tree_digest


@pytest.fixture(autouse=True)
def default_log_location(monkeypatch):
    """The log is the SQLite file beside each test's Output/, whatever the shell that runs the tests set."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PREDICTION_DB_DIR", raising=False)


def ordinal(month: str) -> int:
    return month_ordinal(parse_month(month))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Five queues, 2011-01..2013-12."""
    return write_data(generate(n_months=36), tmp_path_factory.mktemp("actuals") / "calls.csv")


def log_actuals(output, rows) -> str:
    """Write ``rows`` (domain, 'YYYY-MM', value) into the log the service would use for ``output``,
    straight into the table, as a database edited by hand (or an older service) could hold them."""
    url = prediction_log_url(output)
    log = store.PredictionLog(url)
    log.ensure_schema()
    engine = store.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(store.actuals), [
            {"domain": d, "period": dt.datetime(int(m[:4]), int(m[5:]), 1), "value": v, "updated_at": store.utcnow()}
            for d, m, v in rows])
    engine.dispose()
    log.dispose()
    return url


def test_merge_appends_following_months_and_keeps_the_data_where_both_have_one(data):
    panel = load_panel(data)
    banking = panel["Banking"]
    logged = [Actual("Banking", ordinal("2014-01"), 500.0), Actual("Banking", ordinal("2014-02"), 510.0),
              Actual("Banking", ordinal("2014-04"), 530.0),  # after a gap: not appended
              Actual("Banking", ordinal("2013-12"), banking.y[-1]),  # the same value: no disagreement
              Actual("Banking", ordinal("2013-11"), banking.y[-2] + 7),  # differs: the data wins
              Actual("Nowhere", ordinal("2014-01"), 1.0)]
    merged, report = merge_actuals(panel, logged, "test log")
    after = merged["Banking"]
    assert len(after) == len(banking) + 2 and list(after.y[-2:]) == [500.0, 510.0]
    assert after.y[-3] == banking.y[-1] and after.y[-4] == banking.y[-2]
    assert (after.x[-2:] == banking.x[-1]).all()  # regressors repeat the last row
    assert report.appended == {"Banking": ["2014-01", "2014-02"]}
    assert report.disagreements == [{"series": "Banking", "month": "2013-11", "data": banking.y[-2],
                                     "log": banking.y[-2] + 7}]
    assert {(u["series"], u["month"]) for u in report.unused} == {("Banking", "2014-04"), ("Nowhere", "2014-01")}
    assert len(merged["Telecom"]) == len(panel["Telecom"])


def test_engine_appends_the_logged_months_and_reports_disagreements(data, tmp_path):
    out = tmp_path / "Output"
    panel = load_panel(data)
    log_actuals(out, [("Telecom", "2014-01", 400.0), ("Telecom", "2014-02", 410.0),
                      ("Telecom", "2013-12", panel["Telecom"].y[-1] + 1)])
    assert quick_engine(data, out, "--actuals") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    telecom = next(e for e in manifest["series"] if e["id"] == "Telecom")
    assert telecom["last"] == "2014-02" and telecom["months"] == 38
    assert manifest["actuals"]["appended"] == {"Telecom": ["2014-01", "2014-02"]}
    report = (out / manifest["run_dir"] / "report.md").read_text()
    assert "1 disagreement(s)" in report and "| Telecom | 2013-12 |" in report
    saved = (out / manifest["run_dir"] / "data.csv").read_text()
    assert "Telecom,2014-02,410" in saved


# (NaN cannot be stored on SQLite, whose NOT NULL column refuses it; PostgreSQL would keep it.)
@pytest.mark.parametrize("value, words", [(-3.0, "negative"), (float("inf"), "not a finite"), (1e13, "above")])
def test_a_bad_logged_value_refuses_the_run_and_leaves_the_models(data, tmp_path, capsys, value, words):
    out = tmp_path / "Output"
    assert quick_engine(data, out) == 0
    before = tree_digest(out)
    capsys.readouterr()
    log_actuals(out, [("Banking", "2014-01", 5.0), ("Banking", "2014-02", value)])
    assert quick_engine(data, out, "--actuals") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "'Banking'" in err[0] and "2014-02" in err[0]
    assert tree_digest(out) == before


def test_a_missing_log_is_one_line_and_exit_2(data, tmp_path, capsys):
    assert quick_engine(data, tmp_path / "Output", "--actuals") == 2
    assert "no prediction log at" in capsys.readouterr().err


def test_hourly_actuals_are_read_on_the_datas_hours_and_appended(tmp_path):
    from MLPipeline.actuals import read_actuals
    from MLPipeline.sample_data import generate_steps, write_steps

    panel = load_panel(write_steps(generate_steps("hourly", 24 * 14, "2024-03-04", seed=3, queues=1),
                                   tmp_path / "hours.csv"))
    (series,) = panel
    log = store.PredictionLog(prediction_log_url(tmp_path / "Output"))
    log.upsert_actuals([{"period": "2024-03-18T00:00:00Z", "domain": series.id, "value": 40.0},
                        {"period": "2024-03-18T02:00:00+01:00", "domain": series.id, "value": 41.0}], "hourly")
    log.upsert_actuals([{"month": "2024-03", "domain": series.id, "value": 9999.0}])  # monthly: not read
    url = log.url
    log.dispose()
    logged = read_actuals(url, panel.calendar)
    assert sorted((a.domain, panel.calendar.label(a.month), a.value) for a in logged) == [
        (series.id, "2024-03-18T00:00:00Z", 40.0), (series.id, "2024-03-18T01:00:00Z", 41.0)]
    merged, report = merge_actuals(panel, logged, "log")
    assert report.appended == {series.id: ["2024-03-18T00:00:00Z", "2024-03-18T01:00:00Z"]}
    assert list(merged[series.id].y[-2:]) == [40.0, 41.0] and len(merged[series.id]) == len(series) + 2


def test_an_actual_off_the_datas_hours_refuses_the_read_with_one_line(tmp_path):
    from MLPipeline.actuals import read_actuals
    from MLPipeline.calendars import calendar_for
    from MLPipeline.data import DataError

    log = store.PredictionLog(prediction_log_url(tmp_path / "Output"))
    log.upsert_actuals([{"period": "2024-03-18T00:30:00Z", "domain": "q", "value": 4.0}], "hourly")
    url = log.url
    log.dispose()
    with pytest.raises(DataError, match=r"\(domain 'q', period 2024-03-18T00:30:00Z\): not a period of the data"):
        read_actuals(url, calendar_for("hourly"))
