"""The loader: every validation failure names the problem; good files load into the tidy frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import DOMAINS, REGRESSORS
from MLPipeline.data import DataError, load_workbook
from MLPipeline.months import parse_month
from tests.conftest import write_frame


def test_sample_loads_as_tidy_frame(sample_path):
    frame = load_workbook(sample_path)
    assert list(frame.columns) == list(DOMAINS + REGRESSORS)
    assert frame.index.freqstr == "MS" and frame.index.name == "month"
    assert frame.index.is_monotonic_increasing and len(frame) == 132
    assert (frame.index.day == 1).all()
    assert frame.dtypes.eq(np.float64).all()


def test_real_workbook_loads(real_path):
    frame = load_workbook(real_path)
    assert len(frame) == 132
    assert frame.index[0] == pd.Timestamp("2010-01-01") and frame.index[-1] == pd.Timestamp("2020-12-01")
    assert frame.loc["2010-01-01", "Healthcare"] == 631 and frame.loc["2020-12-01", "channels"] == 2


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_headers_tolerate_case_and_spaces_and_order(tmp_path, workbook_frame, suffix):
    renamed = workbook_frame.rename(columns={"#ofphonelines": " #Of Phone Lines ", "Healthcare": "HEALTHCARE",
                                             "month": "Month"})
    shuffled = renamed[list(reversed(renamed.columns))].iloc[::-1]  # any column and row order
    frame = load_workbook(write_frame(shuffled, tmp_path / f"book{suffix}"))
    assert frame.index.is_monotonic_increasing
    assert frame["phone_lines"].iloc[0] == workbook_frame["#ofphonelines"].iloc[0]


def _expect(tmp_path, frame, *fragments, suffix=".xlsx"):
    path = write_frame(frame, tmp_path / f"bad{suffix}")
    with pytest.raises(DataError) as info:
        load_workbook(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_column(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.drop(columns=["Telecom", "#noofchannels"]), "missing required column",
            "Telecom", "channels")


def test_unparseable_month(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"month": object})
    frame.loc[4, "month"] = "March 2099?"
    _expect(tmp_path, frame, "row 6", "month", "March 2099?")


def test_duplicate_month(tmp_path, workbook_frame):
    frame = workbook_frame.copy()
    frame.loc[5, "month"] = frame.loc[4, "month"]
    _expect(tmp_path, frame, "duplicate month", "rows 6, 7")


def test_gap_in_months(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.drop(index=[10, 11]), "gap in the monthly sequence", "2 month(s) missing")


def test_non_numeric_volume(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"Banking": object})
    frame.loc[3, "Banking"] = "lots"
    _expect(tmp_path, frame, "non-numeric", "'Banking'", "row 5", "lots")


@pytest.mark.parametrize("column,clean", [("Insurance", "Insurance"), ("#ofphonelines", "phone_lines")])
def test_negative_value(tmp_path, workbook_frame, column, clean):
    frame = workbook_frame.copy()
    frame.loc[7, column] = -3
    _expect(tmp_path, frame, "negative value -3", f"'{clean}'", "row 9")


def test_missing_value(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"Technology": float})
    frame.loc[2, "Technology"] = np.nan
    _expect(tmp_path, frame, "missing value", "'Technology'", "row 4", suffix=".csv")


def test_too_few_months(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.iloc[:23], "at least 24 months", "got 23")


def test_header_only(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.iloc[:0], "no data rows", suffix=".csv")


@pytest.mark.parametrize("content,name,fragment", [
    (b"", "empty.xlsx", "empty"),
    (b"not a zip file", "broken.xlsx", "could not read broken.xlsx"),
    (b"a,b\n1,2\n", "data.json", "unsupported file type '.json'"),
])
def test_bad_files(tmp_path, content, name, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_workbook(path)
    assert fragment in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_workbook(tmp_path / "nope.xlsx")


@pytest.mark.parametrize("value,expected", [
    ("2021-03", "2021-03-01"), ("2021-03-31", "2021-03-01"), (" 2021-3 ", "2021-03-01"),
    (pd.Timestamp("2020-02-29"), "2020-02-01"), ("2021-03-31T00:00:00", "2021-03-01"),
])
def test_parse_month_accepts(value, expected):
    assert parse_month(value) == pd.Timestamp(expected)


@pytest.mark.parametrize("value", ["2021-13", "2021-02-30", "03/2021", "", None, 202103, True, "1800-01"])
def test_parse_month_rejects(value):
    with pytest.raises(ValueError):
        parse_month(value)
