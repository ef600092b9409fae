"""Per-series accuracy gauges in /metrics (service.drift): holdout figures from the manifest, live
figures from the prediction log, series labels bounded by METRICS_SERIES_LABELS."""

from __future__ import annotations

import json
import re

import pytest

from MLPipeline.sample_data import DEFAULT_QUEUES, generate, write_data
from service import create_app, drift
from tests import servers
from tests.conftest import quick_engine


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    out = root / "Output"
    assert quick_engine(write_data(generate(n_months=36), root / "calls.csv"), out) == 0
    return out


def scrape(client) -> dict:
    return servers.samples(client.get("/metrics").get_data(as_text=True))


def test_holdout_and_live_gauges_per_series_with_bounded_labels(output, tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_SERIES_LABELS", "2")
    monkeypatch.setattr(drift, "LIVE_CACHE_SECONDS", 0.0)
    client = create_app({"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db")}).test_client()
    manifest = json.loads((output / "manifest.json").read_text())
    first, second, *rest = DEFAULT_QUEUES
    scraped = scrape(client)
    holdout = manifest["metrics"][first]["seasonal-naive"]
    assert servers.value(scraped, "callcenter_series_holdout_mape", series=first) == pytest.approx(holdout["mape"])
    assert servers.value(scraped, "callcenter_series_holdout_coverage_95", series=second) == pytest.approx(
        manifest["metrics"][second]["seasonal-naive"]["coverage_95"])
    other = sum(manifest["metrics"][s]["seasonal-naive"]["mape"] for s in rest) / len(rest)
    assert servers.value(scraped, "callcenter_series_holdout_mape", series="_other") == pytest.approx(other)
    assert {labels for name, labels in scraped if name.startswith("callcenter_series_")} == {
        (("series", s),) for s in (first, second, "_other")}
    assert not [k for k in scraped if k[0].startswith("callcenter_series_live")]  # nothing scored yet

    predicted = client.post("/predict", json={"month": "2014-01", "phone_lines": 4, "channels": 2}).get_json()
    means = {p["domain"]: p for p in predicted["predictions"]}
    # first: 10% above the forecast, inside the interval; second: far outside it
    actuals = [{"month": "2014-01", "domain": first, "value": means[first]["mean"] * 1.1},
               {"month": "2014-01", "domain": second, "value": means[second]["upper_95"] * 3 + 10}]
    actuals += [{"month": "2014-01", "domain": s, "value": means[s]["mean"] * 1.2} for s in rest]
    assert client.post("/actuals", json={"actuals": actuals}).status_code == 200
    scraped = scrape(client)
    live = servers.value(scraped, "callcenter_series_live_mape", series=first)
    assert live == pytest.approx(100 * 0.1 / 1.1)
    assert servers.value(scraped, "callcenter_series_live_coverage_95", series=first) == 1.0
    assert servers.value(scraped, "callcenter_series_live_coverage_95", series=second) == 0.0
    assert servers.value(scraped, "callcenter_series_live_mape", series="_other") == pytest.approx(100 * 0.2 / 1.2)
    assert servers.value(scraped, "callcenter_series_live_scored", series="_other") == len(rest)


def test_metrics_still_answer_when_the_log_is_unreadable(output, tmp_path, monkeypatch):
    monkeypatch.setattr(drift, "LIVE_CACHE_SECONDS", 0.0)
    app = create_app({"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db")})

    class Broken:
        def accuracy(self):
            raise OSError("disk gone")

    app.extensions["prediction_log"] = Broken()
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "callcenter_series_holdout_mape{" in text and "callcenter_series_live_mape{" not in text


@pytest.mark.parametrize(("live", "holdout", "expected"), [
    ({"count": 3, "mape": 20.1, "coverage_95": 1.0}, {"mape": 10.0}, ["live MAPE 20.1% vs 10.0% at holdout"]),
    ({"count": 3, "mape": 19.9, "coverage_95": 1.0}, {"mape": 10.0}, []),  # under 1.5 x 10 + 5
    ({"count": 2, "mape": 90.0, "coverage_95": 0.0}, {"mape": 10.0}, []),  # too few scored yet
    ({"count": 6, "mape": 5.0, "coverage_95": 0.5}, {"mape": 10.0}, ["95% coverage 50%"]),
    ({"count": 5, "mape": 5.0, "coverage_95": 0.5}, {"mape": 10.0}, []),
    ({"count": 9, "mape": 50.0, "coverage_95": None}, {}, []),  # no holdout figure to compare with
])
def test_the_drift_rule(live, holdout, expected):
    assert drift.drift_reasons(live, holdout) == expected


def test_the_dashboard_marks_the_drifting_series_only(output, tmp_path):
    client = create_app({"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db")}).test_client()
    first, second, *_ = DEFAULT_QUEUES
    actuals = []
    for month in ("2014-01", "2014-02", "2014-03"):
        answer = client.post("/predict", json={"month": month, "domains": [first, second],
                                               "phone_lines": 4, "channels": 2})
        assert answer.status_code == 200
        means = {p["domain"]: p["mean"] for p in answer.get_json()["predictions"]}
        actuals += [{"month": month, "domain": first, "value": means[first] * 3},  # MAPE ~67% at each month
                    {"month": month, "domain": second, "value": means[second]}]
    assert client.post("/actuals", json={"actuals": actuals}).status_code == 200
    page = client.get("/").get_data(as_text=True)
    note = re.search(r'<p class="drift-note" id="drift-note">(.*?)</p>', page, re.S)
    assert note is not None and "1 series drifting" in note.group(1) and note.group(1).rstrip().endswith(f"{first}.")
    rows = {domain: bool(flag) for flag, domain in re.findall(r'<tr( class="drifting")? data-domain="([^"]+)">', page)}
    assert rows == {first: True, second: False}
