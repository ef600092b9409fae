"""MLPipeline.data: the data decides the series. Wide and long layouts, declared regressors, ragged
starts, European and Excel-native files; every failure names the file, row, column and series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.data import DataError, load_panel, load_workbook
from MLPipeline.months import format_ordinal, month_ordinal, parse_month
from MLPipeline.sample_data import AWKWARD_NAMES, DEFAULT_QUEUES, REGRESSORS, generate, write_data
from tests.conftest import write_frame


def test_sample_loads_as_a_panel(sample_path):
    panel = load_panel(sample_path)
    assert panel.ids == DEFAULT_QUEUES and panel.regressors == REGRESSORS and panel.layout == "wide"
    assert all(len(s) == 132 and s.start == month_ordinal(parse_month("2011-01")) for s in panel)
    assert all(s.x.shape == (132, 2) for s in panel)
    frame = load_workbook(sample_path)
    assert list(frame.columns) == list(DEFAULT_QUEUES + REGRESSORS) and frame.index.freqstr == "MS"
    assert frame.dtypes.eq(np.float64).all() and len(frame) == 132


def test_real_workbook_loads(real_path):
    panel = load_panel(real_path)
    assert panel.ids == ("Healthcare", "Telecom", "Banking", "Technology", "Insurance")
    assert panel.regressors == ("phone_lines", "channels")
    healthcare = panel["Healthcare"]
    assert format_ordinal(healthcare.start) == "2010-01" and format_ordinal(healthcare.end) == "2020-12"
    assert healthcare.y[0] == 631 and panel["Insurance"].x[-1, 1] == 2


def test_any_queue_names_and_count(tmp_path):
    """The first user's report: five queues under other names, and three of them, both train."""
    names = ["Retail", "Travel", "Utilities", "Gaming", "Logistics"]
    frame = generate(n_months=36, names=names)
    panel = load_panel(write_data(frame, tmp_path / "other.xlsx"))
    assert panel.ids == tuple(names)
    three = load_panel(write_data(frame[names[:3] + list(REGRESSORS)], tmp_path / "three.csv"))
    assert three.ids == tuple(names[:3])
    one = load_panel(write_data(frame[["Gaming"]], tmp_path / "one.csv"))
    assert one.ids == ("Gaming",) and one.regressors == ()


def test_awkward_names_are_kept_exactly(tmp_path):
    frame = generate(n_months=30, names=list(AWKWARD_NAMES))
    for suffix in (".xlsx", ".csv", ".parquet"):
        panel = load_panel(write_data(frame, tmp_path / f"awkward{suffix}"))
        assert panel.ids == AWKWARD_NAMES, suffix


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_long_layout_gives_the_same_panel_as_wide(tmp_path, suffix):
    frame = generate(n_months=40, queues=4, ragged=True)
    wide = load_panel(write_data(frame, tmp_path / f"wide{suffix}"))
    long = load_panel(write_data(frame, tmp_path / f"long{suffix}", layout="long"))
    assert long.layout == "long" and wide.layout == "wide"
    assert wide.ids == long.ids and wide.regressors == long.regressors
    assert wide.sha256() == long.sha256()


def test_long_layout_readable_headers_and_shuffled_rows(tmp_path):
    frame = generate(n_months=30, queues=2)
    long = pd.read_csv(write_data(frame, tmp_path / "a.csv", layout="long"))
    readable = long.rename(columns={"unique_id": "Domain", "ds": "Month", "y": "Calls"}).sample(frac=1, random_state=3)
    panel = load_panel(write_frame(readable, tmp_path / "readable.csv"))
    assert panel.ids == ("queue 2", "queue 1") or panel.ids == ("queue 1", "queue 2")
    assert panel.sha256() == load_panel(tmp_path / "a.csv", series=list(panel.ids)).sha256()


def test_ragged_starts_each_series_from_its_first_value(tmp_path):
    frame = generate(n_months=48, queues=3)
    frame.iloc[:10, 1] = np.nan  # queue 2 starts ten months later
    frame.iloc[-5:, 2] = np.nan  # queue 3 stops five months early
    panel = load_panel(write_data(frame, tmp_path / "ragged.xlsx"))
    q1, q2, q3 = panel
    assert len(q1) == 48 and len(q2) == 38 and q2.start == q1.start + 10 and q3.end == q1.end - 5
    np.testing.assert_array_equal(q2.x, q1.x[10:])


def test_a_gap_inside_a_series_is_still_an_error(tmp_path):
    frame = generate(n_months=48, queues=2)
    frame.iloc[20, 1] = np.nan
    message = _message(write_data(frame, tmp_path / "gap.csv"))
    assert "missing value in column 'queue 2' at row 22" in message and "gap.csv" in message


def test_declared_regressors_and_the_rest_are_queues(tmp_path):
    frame = generate(n_months=30, queues=2).rename(columns={"phone_lines": "Staff On Duty"})
    path = write_data(frame, tmp_path / "declared.csv")
    panel = load_panel(path, regressors=["Staff On Duty"])
    assert panel.regressors == ("staff_on_duty",) and panel.ids == ("queue 1", "queue 2")
    # undeclared, an unknown header is a queue (never guessed to be a regressor)
    assert load_panel(path).ids == ("queue 1", "queue 2", "Staff On Duty")
    assert load_panel(path, regressors=[]).regressors == ()
    with pytest.raises(DataError, match="no regressor column 'staff'"):
        load_panel(path, regressors=["staff"])


def test_reserved_regressor_names_are_refused(tmp_path):
    frame = generate(n_months=30, queues=1).rename(columns={"phone_lines": "Level"})
    with pytest.raises(DataError, match="would be called 'level' in the API, which is reserved"):
        load_panel(write_data(frame, tmp_path / "reserved.csv"), regressors=["Level"])


def test_layout_forced_and_long_without_its_columns(tmp_path):
    frame = generate(n_months=30, queues=2)
    path = write_data(frame, tmp_path / "wide.csv")
    with pytest.raises(DataError, match="the long layout needs a series-id column"):
        load_panel(path, layout="long")
    long = write_data(frame, tmp_path / "long.csv", layout="long")
    assert load_panel(long, layout="long").ids == ("queue 1", "queue 2")


def test_too_short_series_are_left_out_and_listed(tmp_path):
    frame = generate(n_months=40, queues=2)
    frame.iloc[:25, 1] = np.nan  # 15 months left
    panel = load_panel(write_data(frame, tmp_path / "short.csv"))
    assert panel.ids == ("queue 1",) and "15 months; need at least 24" in panel.skipped["queue 2"]


# --------------------------------------------------------- European and Excel-native files


def _european(frame: pd.DataFrame) -> str:
    lines = [";".join(["Month", *frame.columns])]
    for month, row in frame.iterrows():
        values = [f"{v:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in row]
        lines.append(";".join([month.strftime("%d/%m/%Y"), *values]))
    return "\n".join(lines) + "\n"


def test_semicolon_csv_with_decimal_commas_and_a_bom(tmp_path):
    frame = generate(n_months=30, queues=2)[["queue 1", "queue 2"]] * 1.5
    path = tmp_path / "european.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _european(frame).encode())
    panel = load_panel(path)
    assert panel.ids == ("queue 1", "queue 2")  # the BOM is not part of the first header
    np.testing.assert_allclose(panel["queue 1"].y, frame["queue 1"].round(1).to_numpy())
    assert format_ordinal(panel["queue 1"].start) == "2011-01"


def test_semicolon_csv_with_a_point_decimal_is_refused_with_the_fix(tmp_path):
    frame = generate(n_months=30, queues=1)[["queue 1"]]
    text = _european(frame).replace(";1", ";1.5", 1) if ";1" in _european(frame) else _european(frame)
    lines = text.splitlines()
    lines[3] = lines[3].split(";")[0] + ";12.5"
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    message = _message(path)
    assert "'12.5'" in message and "row 4" in message and "decimal commas" in message


def test_non_utf8_csv_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("month,Zürich\n2020-01,1\n".encode("latin-1"))
    assert "not UTF-8" in _message(path) and "CSV UTF-8" in _message(path)


def test_excel_serial_dates(tmp_path):
    frame = generate(n_months=30, queues=1)
    serial = (frame.index + pd.offsets.MonthEnd(0) - pd.Timestamp("1899-12-30")).days
    book = pd.DataFrame({"month": serial, "queue 1": frame["queue 1"].to_numpy()})
    for suffix in (".csv", ".xlsx"):
        panel = load_panel(write_frame(book, tmp_path / f"serial{suffix}"))
        assert format_ordinal(panel["queue 1"].start) == "2011-01" and len(panel["queue 1"]) == 30


@pytest.mark.parametrize("fmt,expected_first", [
    ("%d/%m/%Y", "2011-01"), ("%m/%d/%Y", "2011-01"), ("%b-%Y", "2011-01"), ("%B %Y", "2011-01"),
    ("%b-%y", "2011-01"), ("%Y-%m", "2011-01"), ("%Y/%m/%d", "2011-01"),
])
def test_month_labels(tmp_path, fmt, expected_first):
    frame = generate(n_months=30, queues=1)
    dates = frame.index + pd.offsets.MonthEnd(0) if "%d" in fmt else frame.index
    book = pd.DataFrame({"Month": dates.strftime(fmt), "Calls A": frame["queue 1"].to_numpy()})
    panel = load_panel(write_frame(book, tmp_path / "labels.csv"))
    assert format_ordinal(panel["Calls A"].start) == expected_first and len(panel["Calls A"]) == 30


def test_daily_dates_are_read_as_daily_data(tmp_path):
    days = pd.date_range("2020-01-01", periods=60, freq="D")
    book = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "calls": np.arange(60)})
    panel = load_panel(write_frame(book, tmp_path / "d.csv"))
    assert panel.frequency == "daily" and panel["calls"].y.tolist() == list(range(60))


def test_daily_dates_with_a_gap_name_the_missing_day(tmp_path):
    days = pd.date_range("2020-01-01", periods=60, freq="D").delete(30)
    book = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "calls": np.arange(59)})
    assert ("irregular daily timestamps: 2020-01-30T00:00:00Z is followed by 2020-02-01T00:00:00Z"
            in _message(write_frame(book, tmp_path / "d.csv")))


# ------------------------------------------------------------------------ errors


def _message(path, **options) -> str:
    with pytest.raises(DataError) as info:
        load_panel(path, **options)
    return str(info.value)


def _expect(tmp_path, frame, *fragments, suffix=".xlsx"):
    message = _message(write_frame(frame, tmp_path / f"bad{suffix}"))
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_headers_tolerate_case_and_spaces_and_order(tmp_path, workbook_frame, suffix):
    renamed = workbook_frame.rename(columns={"#ofphonelines": " #Of Phone Lines ", "month": "Month"})
    shuffled = renamed[list(reversed(renamed.columns))].iloc[::-1]
    panel = load_panel(write_frame(shuffled, tmp_path / f"book{suffix}"))
    assert set(panel.ids) == set(DEFAULT_QUEUES) and panel.regressors == ("channels", "phone_lines")
    assert panel["Banking"].x[0, 1] == workbook_frame["#ofphonelines"].iloc[0]


def test_missing_period_column(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.drop(columns=["month"]), "no period column", "--period-column")


def test_duplicate_header(tmp_path, workbook_frame):
    frame = workbook_frame.copy()
    frame.columns = [*frame.columns[:-1], "Banking"]
    _expect(tmp_path, frame, "column 'Banking' appears more than once", suffix=".csv")


def test_unparseable_month(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"month": object})
    frame.loc[4, "month"] = "March 2099?"
    _expect(tmp_path, frame, "row 6", "month", "March 2099?", "bad.xlsx")


def test_duplicate_month(tmp_path, workbook_frame):
    frame = workbook_frame.copy()
    frame.loc[5, "month"] = frame.loc[4, "month"]
    _expect(tmp_path, frame, "duplicate month", "rows 6, 7")


def test_gap_in_months(tmp_path, workbook_frame):
    _expect(tmp_path, workbook_frame.drop(index=[10, 11]), "gap in the monthly sequence", "2 month(s) missing")


def test_long_layout_errors_name_the_series(tmp_path):
    long = pd.read_csv(write_data(generate(n_months=30, queues=2), tmp_path / "l.csv", layout="long"))
    dup = pd.concat([long, long.iloc[[3]]], ignore_index=True)
    assert "duplicate month" in (m := _message(write_frame(dup, tmp_path / "dup.csv"))) and "'queue 1'" in m
    gap = long.drop(index=[35])
    assert "series 'queue 2': gap in the monthly sequence" in _message(write_frame(gap, tmp_path / "gap.csv"))
    bad = long.astype({"y": object})
    bad.loc[40, "y"] = "lots"
    message = _message(write_frame(bad, tmp_path / "bad.csv"))
    assert "non-numeric value 'lots' in column 'y' at row 42 (series 'queue 2')" in message


def test_non_numeric_volume(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"Banking": object})
    frame.loc[3, "Banking"] = "lots"
    _expect(tmp_path, frame, "non-numeric", "'Banking'", "row 5", "lots")


@pytest.mark.parametrize("column,clean", [("Insurance", "Insurance"), ("#ofphonelines", "phone_lines")])
def test_negative_value(tmp_path, workbook_frame, column, clean):
    frame = workbook_frame.copy()
    frame.loc[7, column] = -3
    _expect(tmp_path, frame, "negative value -3", f"'{clean}'", "row 9")


def test_absurd_value(tmp_path, workbook_frame):
    frame = workbook_frame.astype({"Telecom": float})
    frame.loc[7, "Telecom"] = 1e300
    _expect(tmp_path, frame, "value 1e+300 in column 'Telecom' at row 9", "largest accepted")


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
    assert fragment in _message(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_panel(tmp_path / "nope.xlsx")


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
