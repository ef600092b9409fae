"""service.downloads through the app: /forecast and /predictions as CSV and .xlsx read back (pandas,
openpyxl) equal to their JSON answers; ``output=nixtla`` carries statsforecast's column names for
the same levels; a log download is one page with the next one linked; and formats the service cannot
write are refused in the one error shape."""

from __future__ import annotations

import importlib.util
import io
from urllib.parse import urlsplit

import numpy as np
import openpyxl
import pandas as pd
import pytest
from conftest import assert_error, post, require

from MLPipeline.pipeline import RunConfig, run
from MLPipeline.sample_data import DEFAULT_QUEUES
from service import create_app
from service.downloads import MEDIA_TYPES

FORECAST = {"domain": DEFAULT_QUEUES[1], "horizon": 4, "level": [80, 95]}
FORMATS = ("csv", "xlsx")


@pytest.fixture(scope="module")
def client(sample_path, tmp_path_factory):
    """The app on a quick model of the sample (seasonal-naive), with a few forecasts in its log."""
    root = tmp_path_factory.mktemp("downloads")
    run(RunConfig(data_path=sample_path, output_dir=root / "Output", plots=False, kinds=("seasonal-naive",),
                  backtest=False, n_jobs=1))
    app = create_app({"OUTPUT_DIR": str(root / "Output"), "PREDICTION_DB_DIR": str(root / "db")})
    client = app.test_client()
    for domain in DEFAULT_QUEUES[:3]:
        assert post(client, "/forecast", {"domain": domain, "horizon": 2}).status_code == 200
    return client


#: How close a number in the .xlsx is to the JSON's: openpyxl writes 16 significant digits (Excel shows 15).
XLSX_DIGITS = 1e-15


def assert_same(table: pd.DataFrame, expected: pd.DataFrame, fmt: str) -> None:
    """The CSV equal bit for bit; the .xlsx to 16 significant digits, where pandas also reads a whole
    number as an int (4321.0 -> 4321)."""
    if fmt == "csv":
        pd.testing.assert_frame_equal(table, expected, check_exact=True)
    else:
        pd.testing.assert_frame_equal(table, expected, check_dtype=False, check_exact=False, rtol=XLSX_DIGITS,
                                      atol=0)


def read_table(response, fmt: str, **options) -> pd.DataFrame:
    """A download as pandas reads it (every float exactly as written)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == MEDIA_TYPES[fmt]
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(response.data), float_precision="round_trip", **options)
    return pd.read_excel(io.BytesIO(response.data), sheet_name="data", engine="openpyxl")


def forecast_file(client, fmt: str, how: str, body=FORECAST, query: str = ""):
    if how == "accept":
        return client.post(f"/forecast?{query}", json=body, headers={"Accept": MEDIA_TYPES[fmt]})
    return client.post(f"/forecast?format={fmt}&{query}", json=body)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_predict_download_equals_the_json_answer_for_many_queues(client, fmt):
    """One month for every queue as a table; the nixtla shape has a row per queue for that month."""
    body = {"month": "2022-03", "domains": list(DEFAULT_QUEUES)}
    answer = post(client, "/predict", body).get_json()
    table = read_table(client.post(f"/predict?format={fmt}", json=body), fmt)
    assert list(table.columns) == list(pd.json_normalize(answer["predictions"]).columns)
    assert_same(table, pd.json_normalize(answer["predictions"]), fmt)
    shaped = read_table(client.post(f"/predict?format={fmt}&output=nixtla", json=body), fmt)
    assert list(shaped["unique_id"]) == list(DEFAULT_QUEUES)
    assert set(pd.to_datetime(shaped["ds"])) == {pd.Timestamp("2022-03-01")}
    np.testing.assert_allclose(shaped["hi-95"], [r["upper_95"] for r in answer["predictions"]],
                               rtol=0 if fmt == "csv" else XLSX_DIGITS, atol=0)


@pytest.mark.parametrize("how", ["format", "accept"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_forecast_download_equals_the_json_answer(client, fmt, how):
    answer = post(client, "/forecast", FORECAST).get_json()
    table = read_table(forecast_file(client, fmt, how), fmt)
    expected = pd.json_normalize(answer["forecast"])
    assert list(table.columns) == list(answer["forecast"][0])  # the JSON rows' keys, in their order
    assert table["fitted"].dtype == bool and not table["fitted"].any()
    assert_same(table, expected, fmt)


def test_the_spreadsheet_keeps_text_as_text_and_says_what_was_assumed(client):
    answer = post(client, "/forecast", FORECAST).get_json()
    book = openpyxl.load_workbook(io.BytesIO(forecast_file(client, "xlsx", "format").data))
    assert book.sheetnames == ["data", "about"]
    cells = list(book["data"].iter_rows(values_only=False))
    assert all(c.data_type == "s" for row in cells for c in row if isinstance(c.value, str))
    about = dict(book["about"].iter_rows(min_row=2, values_only=True))
    assert about["model_version"] == answer["model_version"] and about["assumption"] == answer["assumption"]
    assert about["horizon"] == FORECAST["horizon"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_log_download_is_the_json_page_and_links_the_next(client, fmt):
    page = client.get("/predictions?limit=3").get_json()
    response = client.get(f"/predictions?limit=3&format={fmt}")
    table = read_table(response, fmt, dtype={"request_id": str})
    assert_same(table, pd.json_normalize(page["predictions"]), fmt)
    assert "regressors.phone_lines" in table.columns  # nested values flattened as json_normalize does
    link = response.headers["Link"]
    assert link.endswith('; rel="next"') and page["next_cursor"] in link
    following = urlsplit(link[1:link.index(">")])
    second = client.get(f"{following.path}?{following.query}")
    json_second = client.get(f"/predictions?limit=3&cursor={page['next_cursor']}").get_json()
    assert_same(read_table(second, fmt, dtype={"request_id": str}), pd.json_normalize(json_second["predictions"]), fmt)


def test_a_log_download_is_bounded_like_the_json_answer(client):
    assert_error(client.get("/predictions?limit=5000&format=csv"), 422, "invalid_value", "limit")
    everything = client.get("/predictions?limit=1000&format=csv")
    assert "Link" not in everything.headers  # the last page
    assert len(read_table(everything, "csv")) == len(client.get("/predictions?limit=1000").get_json()["predictions"])


def statsforecast_columns(levels) -> list[str]:
    """The columns of a statsforecast forecast frame for ``levels``, with the model's name as "mean"
    (the names its models return from ``forecast(level=...)``)."""
    require(importlib.util.find_spec("statsforecast") is not None,
            "statsforecast is not installed (requirements-bench.txt)")
    from statsforecast.models import Naive

    return ["unique_id", "ds", *Naive().forecast(y=np.arange(24.0), h=1, level=list(levels))]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_nixtla_shape_has_statsforecasts_columns_and_the_json_numbers(client, fmt):
    levels = [95, 80.5]  # not sorted, not whole: statsforecast sorts them and names 80.5 as written
    body = {**FORECAST, "level": levels}
    answer = post(client, "/forecast", body).get_json()
    table = read_table(forecast_file(client, fmt, "format", body, "output=nixtla"), fmt, parse_dates=["ds"])
    assert list(table.columns) == statsforecast_columns(levels)
    rows = answer["forecast"]
    expected = pd.DataFrame({
        "unique_id": [r["domain"] for r in rows],
        "ds": pd.to_datetime([r["month"] for r in rows], format="%Y-%m"),  # the month's first day
        "mean": [r["mean"] for r in rows],
        **{f"{side}-{label}": [r[f"{bound}_{label}"] for r in rows]
           for side, bound in (("lo", "lower"), ("hi", "upper")) for label in ("80.5", "95")},
    })
    assert_same(table, expected, fmt)


def test_the_log_in_the_nixtla_shape_is_a_csv_with_the_logged_levels(client):
    response = client.get("/predictions?output=nixtla&limit=5")  # a table: CSV unless xlsx is asked for
    table = read_table(response, "csv")
    assert list(table.columns) == statsforecast_columns([80, 95])
    page = client.get("/predictions?limit=5").get_json()["predictions"]
    assert table["unique_id"].tolist() == [r["domain"] for r in page]
    assert table["hi-95"].tolist() == [r["upper_95"] for r in page]


@pytest.mark.parametrize(("query", "code", "field"), [
    ("format=pdf", "invalid_format", "format"),
    ("format=CSV", "invalid_format", "format"),
    ("output=wide", "invalid_output", "output"),
    ("format=json&output=nixtla", "invalid_output", "output"),  # the nixtla shape is a table
    ("sheet=1", "unknown_field", "sheet"),
])
def test_formats_it_cannot_write_are_refused_in_the_error_shape(client, query, code, field):
    assert_error(client.post(f"/forecast?{query}", json=FORECAST), 422, code, field)
    assert_error(client.get(f"/predictions?{query}"), 422, code, field)


def test_an_accept_header_naming_nothing_it_writes_is_406(client):
    assert_error(client.post("/forecast", json=FORECAST, headers={"Accept": "application/pdf"}),
                 406, "not_acceptable", None)
    assert_error(client.get("/predictions?output=nixtla", headers={"Accept": "application/json"}),
                 406, "not_acceptable", None)
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert client.get("/predictions", headers={"Accept": browser}).mimetype == "application/json"
