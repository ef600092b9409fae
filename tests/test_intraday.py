"""An hourly model end to end: Engine.py trains it, saves it, and gunicorn serves it.

The data is the sample generator's hourly queues (MLPipeline.sample_data.generate_steps): four weeks
of hours for two queues, one of them starting a week late. The served numbers are checked against
the saved models' own ``predict_at``/``predict``, periods are ISO 8601 UTC timestamps on the wire,
a monthly client's ``month`` gets a clear 422 from an hourly model, and the prediction log, actuals
and live accuracy work by the hour.
"""

from __future__ import annotations

import io
import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import requests

from MLPipeline.artifacts import load_bundle
from MLPipeline.calendars import calendar_for
from MLPipeline.sample_data import generate_steps, write_steps
from tests.servers import Gunicorn

HOURS = 24 * 7 * 4


@pytest.fixture(scope="module")
def hourly_output(tmp_path_factory):
    import Engine

    root = tmp_path_factory.mktemp("hourly")
    frame = generate_steps("hourly", HOURS, "2024-03-04", seed=11, queues=2)
    frame.iloc[:24 * 7, 1] = np.nan  # queue 2 starts a week later
    path = write_steps(frame, root / "hourly.csv")
    output = root / "out"
    assert Engine.main(["--data", str(path), "--output", str(output), "--no-plots", "--jobs", "1"]) == 0
    return output, frame


@pytest.fixture(scope="module")
def hourly_server(hourly_output, tmp_path_factory):
    output, _ = hourly_output
    env = {"OUTPUT_DIR": str(output), "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'log.db'}"}
    with Gunicorn(tmp_path_factory.mktemp("gunicorn"), env, workers=2) as server:
        yield server


def test_the_manifest_records_the_frequency_and_periods_as_timestamps(hourly_output):
    output, frame = hourly_output
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["frequency"] == "hourly" and manifest["kinds"] == ["statespace"]
    assert manifest["train_window"] == {"start": "2024-03-04T00:00:00Z", "end": "2024-03-31T23:00:00Z"}
    first, second = manifest["series"]
    assert (first["first"], first["periods"]) == ("2024-03-04T00:00:00Z", HOURS)
    assert (second["first"], second["periods"]) == ("2024-03-11T00:00:00Z", HOURS - 24 * 7)
    assert first["holdout"] == {"start": "2024-03-25T00:00:00Z", "end": "2024-03-31T23:00:00Z", "periods": 168}
    # scored on its held-out week: an hourly GP on a clear daily shape is far better than a naive forecast
    assert manifest["metrics"]["queue 1"]["statespace"]["mase"] < 1.0


def test_the_training_report_speaks_hours(hourly_output):
    output, _ = hourly_output
    manifest = json.loads((output / "manifest.json").read_text())
    report = (output / manifest["run_dir"] / "report.md").read_text()
    season = calendar_for("hourly").season  # what the holdout metrics were scaled by
    assert "held out its last 168 hours" in report and f"seasonal-naive MAE (m = {season})" in report
    assert not re.search(r"\bmonths?\b", report), "a unit of the report is still months"


def test_the_saved_bundle_loads_on_an_hourly_calendar(hourly_output):
    output, frame = hourly_output
    bundle = load_bundle(output)
    assert bundle.calendar == calendar_for("hourly")
    history = bundle.history["queue 1"]
    np.testing.assert_array_equal(history.y, frame["queue 1"].to_numpy())
    held = bundle.holdout[("queue 1", "statespace")]
    assert held.index[0] == pd.Timestamp("2024-03-25 00:00") and len(held) == 168


def test_predict_at_a_timestamp_over_gunicorn_equals_the_saved_model(hourly_server, hourly_output):
    output, _ = hourly_output
    bundle = load_bundle(output)
    model = bundle.models[("queue 1", "statespace")]
    asked = ["2024-04-01T09:00:00Z", "2024-04-01T10:00:00+01:00", "2024-03-20T12:00:00Z"]
    response = requests.post(f"{hourly_server.url}/predict", timeout=30, json={
        "instances": [{"period": p} for p in asked], "domains": ["queue 1"]})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [r["period"] for r in rows] == ["2024-04-01T09:00:00Z", "2024-04-01T09:00:00Z", "2024-03-20T12:00:00Z"]
    assert [r["fitted"] for r in rows] == [False, False, True] and "month" not in rows[0]
    expected = model.predict_at(pd.DatetimeIndex(["2024-04-01 09:00", "2024-04-01 09:00", "2024-03-20 12:00"]),
                                level=(80, 95))
    for row, (_, want) in zip(rows, expected.iterrows(), strict=True):
        for column in ("mean", "std", "lower_80", "upper_95"):
            assert row[column] == pytest.approx(want[column], rel=1e-9)


def test_forecast_24_hours_over_gunicorn_equals_the_saved_model(hourly_server, hourly_output):
    output, _ = hourly_output
    model = pickle.loads(pickle.dumps(load_bundle(output).models[("queue 2", "statespace")]))
    response = requests.post(f"{hourly_server.url}/forecast", json={"domain": "queue 2", "horizon": 24}, timeout=30)
    assert response.status_code == 200, response.text
    rows = response.json()["forecast"]
    assert [r["period"] for r in rows] == list(pd.date_range("2024-04-01", periods=24, freq="h")
                                               .strftime("%Y-%m-%dT%H:%M:%SZ"))
    expected = model.predict(24, level=(80, 95))
    np.testing.assert_allclose([r["mean"] for r in rows], expected["mean"], rtol=1e-9)
    np.testing.assert_allclose([r["upper_95"] for r in rows], expected["upper_95"], rtol=1e-9)
    assert all(r["lower_95"] >= 0 for r in rows)  # counts: bounds clipped at zero
    daytime, night = rows[12]["mean"], rows[3]["mean"]
    assert daytime > 2 * night  # the working day's shape carried into the forecast


def test_hourly_predictions_and_actuals_are_logged_and_scored_by_the_hour(hourly_server):
    url, asked = hourly_server.url, "2024-04-01T14:00:00Z"
    served = requests.post(f"{url}/predict", json={"period": asked, "domains": ["queue 1"]}, timeout=30)
    assert served.status_code == 200, served.text
    (row,) = served.json()["predictions"]
    page = requests.get(f"{url}/predictions", params={"domain": "queue 1", "period_from": asked,
                                                       "period_to": "2024-04-01T14:59:00Z"}, timeout=30).json()
    (logged,) = page["predictions"]
    assert logged["period"] == asked and "month" not in logged
    assert (logged["mean"], logged["upper_95"], logged["endpoint"]) == (row["mean"], row["upper_95"], "predict")
    # a month range selects the periods inside it; the hour before is outside period_from
    in_april = requests.get(f"{url}/predictions", params={"domain": "queue 1", "month_from": "2024-04",
                                                           "month_to": "2024-04"}, timeout=30).json()
    assert asked in {r["period"] for r in in_april["predictions"]}
    before = requests.get(f"{url}/predictions", params={"period_to": "2024-04-01T13:00:00Z"}, timeout=30).json()
    assert asked not in {r["period"] for r in before["predictions"]}

    value = row["mean"] + 5.0
    stored = requests.post(f"{url}/actuals", json={"period": "2024-04-01T15:00:00+01:00", "domain": "queue 1",
                                                   "value": value}, timeout=30)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"stored": 1, "actuals": [{"period": asked, "domain": "queue 1", "value": value}]}
    accuracy = requests.get(f"{url}/accuracy", params={"domain": "queue 1"}, timeout=30).json()
    (figures,) = accuracy["domains"]
    assert figures["all_versions"]["count"] == 1 and figures["all_versions"]["mae"] == pytest.approx(5.0)
    page = requests.get(url + "/", timeout=30)
    assert page.status_code == 200 and "Logged predictions whose hour has an actual" in page.text
    # the chart marks the actual at its hour, checked against the logged prediction's 95% interval
    chart = requests.get(f"{url}/dashboard/chart", params={"series": "queue 1"}, timeout=30).json()
    assert chart["actuals"] == {"month": [asked], "value": [value],
                                "anomaly": [not row["lower_95"] <= value <= row["upper_95"]]}


@pytest.mark.parametrize(("item", "code", "field"), [
    ({"month": "2024-04"}, "period_required", "month"),
    ({"period": "2024-04-01T09:30:00Z"}, "invalid_period", "period"),  # not on the hours
    ({"period": "2024-04-01T09:00:00Z", "month": "2024-04"}, "conflicting_fields", "month"),
    ({"period": "2027-04-01T09:00:00Z", "domain": "queue 9"}, "unknown_domain", "domain"),
])
def test_actuals_an_hourly_model_cannot_place_are_refused_naming_the_field(hourly_server, item, code, field):
    response = requests.post(f"{hourly_server.url}/actuals", json={"domain": "queue 2", "value": 3, **item}, timeout=30)
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    accuracy = requests.get(f"{hourly_server.url}/accuracy", params={"domain": "queue 2"}, timeout=30).json()
    assert accuracy["domains"][0]["all_versions"]["count"] == 0  # nothing stored


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_hourly_forecast_downloads_in_statsforecasts_columns(hourly_server, fmt):
    """ds is each hour's timestamp (UTC), as a statsforecast frame of hourly data has it."""
    response = requests.post(f"{hourly_server.url}/forecast?format={fmt}&output=nixtla",
                             json={"domain": "queue 1", "horizon": 24}, timeout=30)
    assert response.status_code == 200, response.text
    if fmt == "csv":
        table = pd.read_csv(io.StringIO(response.text), parse_dates=["ds"])
    else:
        table = pd.read_excel(io.BytesIO(response.content), sheet_name=0)
    assert list(table.columns[:3]) == ["unique_id", "ds", "mean"] and set(table["unique_id"]) == {"queue 1"}
    ds = pd.to_datetime(table["ds"])
    ds = ds.dt.tz_convert(None) if ds.dt.tz is not None else ds
    assert list(ds) == list(pd.date_range("2024-04-01", periods=24, freq="h"))
    served = requests.post(f"{hourly_server.url}/forecast", json={"domain": "queue 1", "horizon": 24}, timeout=30)
    np.testing.assert_allclose(table["hi-95"], [r["upper_95"] for r in served.json()["forecast"]], rtol=1e-12)


@pytest.mark.parametrize("body, status, code, field", [
    ({"month": "2024-04", "domains": ["queue 1"]}, 422, "period_required", "month"),
    ({"period": "2024-04-01T09:30:00Z", "domains": ["queue 1"]}, 422, "invalid_period", "period"),
    ({"period": "next tuesday", "domains": ["queue 1"]}, 422, "invalid_period", "period"),
    ({"period": "2024-05-01T00:00:00Z", "domains": ["queue 1"]}, 422, "period_out_of_range", "period"),
    ({"period": "2024-03-04T00:00:00Z", "domains": ["queue 2"]}, 422, "period_out_of_range", "period"),
    ({"month": "2024-04", "period": "2024-04-01T00:00:00Z"}, 422, "conflicting_fields", "period"),
])
def test_wrong_periods_get_the_one_error_shape(hourly_server, body, status, code, field):
    response = requests.post(f"{hourly_server.url}/predict", json=body, timeout=30)
    assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["field"] == field


def test_a_horizon_past_two_weeks_of_hours_is_refused(hourly_server):
    response = requests.post(f"{hourly_server.url}/forecast", json={"domain": "queue 1", "horizon": 337}, timeout=30)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_horizon"
    assert "at most 336 hours" in response.json()["error"]["message"]


def test_the_series_listing_model_info_and_dashboard_speak_hours(hourly_server):
    series = requests.get(f"{hourly_server.url}/series", timeout=30).json()["series"]
    assert [(s["id"], s["first"], s["periods"]) for s in series] == [
        ("queue 1", "2024-03-04T00:00:00Z", HOURS), ("queue 2", "2024-03-11T00:00:00Z", HOURS - 168)]
    info = requests.get(f"{hourly_server.url}/model", timeout=30).json()
    assert info["frequency"] == "hourly" and info["train_end"] == "2024-03-31T23:00:00Z"
    page = requests.get(f"{hourly_server.url}/", timeout=30)
    assert page.status_code == 200 and "Predict a period" in page.text and "(ISO 8601, UTC)" in page.text
    chart = requests.get(f"{hourly_server.url}/dashboard/chart", params={"series": "queue 1"}, timeout=30).json()
    assert chart["forecast"]["month"][0] == "2024-04-01T00:00:00Z" and len(chart["forecast"]["month"]) == 48


def test_anomalies_score_hours(hourly_server):
    response = requests.post(f"{hourly_server.url}/anomalies", timeout=30, json={
        "domain": "queue 1", "observations": [{"period": "2024-03-20T12:00:00Z", "value": 1e6}]})
    assert response.status_code == 200, response.text
    row = response.json()["observations"][0]
    assert row["period"] == "2024-03-20T12:00:00Z" and row["anomaly"] is True
