"""Frequency from the timestamps: detection, the UTC rule, and the refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.frequency import (
    FrequencyError,
    detect_frequency,
    format_period,
    future_stamps,
    max_horizon,
    parse_timestamps,
    seasonal_periods,
)


def _range(start: str, n: int, freq: str) -> np.ndarray:
    return pd.date_range(start, periods=n, freq=freq).to_numpy()


@pytest.mark.parametrize("freq, name", [
    ("MS", "monthly"), ("ME", "monthly"), ("W-MON", "weekly"), ("D", "daily"), ("h", "hourly"),
    ("30min", "half-hourly"),
])
def test_detects_each_frequency(freq, name):
    assert detect_frequency({"a": _range("2020-01-01", 60, freq), "b": _range("2020-03-01", 30, freq)}) == name


@pytest.mark.parametrize("name, periods", [
    ("monthly", (12,)), ("weekly", (365.25 / 7,)), ("daily", (7, 365.25)), ("hourly", (24, 168)),
    ("half-hourly", (48, 336)),
])
def test_seasonal_periods_follow_from_the_frequency(name, periods):
    assert seasonal_periods(name) == pytest.approx(periods)


def test_horizon_limits_follow_and_months_keep_the_services():
    from service.schemas import MAX_HORIZON

    assert max_horizon("monthly") == MAX_HORIZON
    assert [max_horizon(f) for f in ("weekly", "daily", "hourly", "half-hourly")] == [104, 366, 336, 672]
    with pytest.raises(FrequencyError, match="frequency must be one of"):
        max_horizon("yearly")


def test_rows_in_any_order_are_sorted_first():
    stamps = _range("2021-01-01", 48, "h")
    assert detect_frequency({"a": stamps[::-1]}) == "hourly"


def test_irregular_timestamps_are_refused_naming_the_first_gap():
    stamps = np.delete(_range("2021-06-01", 48, "h"), 10)
    with pytest.raises(FrequencyError, match=r"series 'a': irregular hourly timestamps: 2021-06-01T09:00:00Z "
                                             r"is followed by 2021-06-01T11:00:00Z, not 2021-06-01T10:00:00Z$"):
        detect_frequency({"a": stamps})


def test_a_step_that_is_no_frequency_is_refused():
    with pytest.raises(FrequencyError, match="0 days 00:15:00 apart, which is none of the frequencies"):
        detect_frequency({"a": _range("2021-06-01", 20, "15min")})


def test_mixed_frequencies_across_series_are_refused():
    with pytest.raises(FrequencyError, match="mixed frequencies: series 'days' is daily, series 'hours' is hourly"):
        detect_frequency({"hours": _range("2021-01-01", 50, "h"), "days": _range("2021-01-01", 50, "D")})


def test_an_expected_frequency_is_checked_not_inferred():
    with pytest.raises(FrequencyError, match="irregular hourly timestamps"):
        detect_frequency({"a": _range("2021-01-01", 50, "D")}, expected="hourly")
    with pytest.raises(FrequencyError, match="frequency must be one of"):
        detect_frequency({"a": _range("2021-01-01", 50, "D")}, expected="fortnightly")


def test_a_single_timestamp_cannot_tell():
    with pytest.raises(FrequencyError, match="pass --freq"):
        detect_frequency({"a": _range("2021-01-01", 1, "h")})
    assert detect_frequency({"a": _range("2021-01-01", 1, "h")}, expected="hourly") == "hourly"


# --- daylight-saving days: timestamps are UTC --------------------------------------------------------

def _local_wall_clock(start: str, end: str) -> list[str]:
    """Naive local times of Europe/London, as a wall-clock export writes them."""
    instants = pd.date_range(start, end, freq="h", tz="UTC").tz_convert("Europe/London")
    return [t.strftime("%Y-%m-%d %H:%M") for t in instants]


def test_utc_hourly_data_across_a_dst_change_is_regular():
    stamps = parse_timestamps([t.isoformat() for t in pd.date_range("2021-03-27", "2021-03-29", freq="h", tz="UTC")])
    assert detect_frequency({"a": stamps}) == "hourly"


def test_offsets_are_converted_to_utc():
    local = pd.date_range("2021-10-30", "2021-11-01", freq="h", tz="UTC").tz_convert("Europe/London")
    stamps = parse_timestamps([t.isoformat() for t in local])  # 2021-10-31T01:00:00+01:00, then +00:00
    assert detect_frequency({"a": stamps}) == "hourly"
    assert format_period("hourly", stamps[0]) == "2021-10-30T00:00:00Z"


def test_spring_forward_in_wall_clock_time_is_refused_with_the_rule():
    stamps = parse_timestamps(_local_wall_clock("2021-03-27", "2021-03-29"))  # 01:00 jumps to 03:00
    with pytest.raises(FrequencyError, match=r"2021-03-28T00:00:00Z is followed by 2021-03-28T02:00:00Z.*"
                                             r"daylight-saving change: timestamps are read as UTC"):
        detect_frequency({"a": stamps})


def test_fall_back_in_wall_clock_time_is_refused_as_a_repeated_hour():
    stamps = parse_timestamps(_local_wall_clock("2021-10-30", "2021-11-01"))  # 01:00 twice
    with pytest.raises(FrequencyError, match=r"timestamp 2021-10-31T01:00:00Z appears twice.*daylight-saving"):
        detect_frequency({"a": stamps})


def test_an_unreadable_timestamp_names_its_position():
    with pytest.raises(FrequencyError, match=r"value 2 \('soon'\) is not a timestamp"):
        parse_timestamps(["2021-01-01 00:00", "soon"])


def test_the_wire_format_is_yyyy_mm_for_months_and_iso_8601_otherwise():
    assert format_period("monthly", "2021-03-01") == "2021-03"
    assert format_period("hourly", "2021-03-01 05:00") == "2021-03-01T05:00:00Z"
    assert [format_period("half-hourly", t) for t in future_stamps("half-hourly", "2021-03-01 23:30", 2)] == [
        "2021-03-02T00:00:00Z", "2021-03-02T00:30:00Z"]
    assert [format_period("monthly", t) for t in future_stamps("monthly", "2021-11-30", 2)] == ["2021-12", "2022-01"]


# --- the data layer and Engine.py -----------------------------------------------------------------

def _write_long(path, rows) -> str:
    pd.DataFrame(rows, columns=["unique_id", "ds", "y"]).to_csv(path, index=False)
    return str(path)


def _hourly_rows(sid: str, start: str, n: int):
    return [(sid, t.strftime("%Y-%m-%d %H:%M"), 100 + i % 24) for i, t in enumerate(pd.date_range(start, periods=n, freq="h"))]


def test_hourly_data_loads_on_an_hourly_calendar(tmp_path):
    from MLPipeline.data import load_panel

    path = _write_long(tmp_path / "h.csv", _hourly_rows("a", "2021-01-01", 100))
    panel = load_panel(path)
    s = panel["a"]
    assert panel.frequency == "hourly" and panel.calendar.phase == 0
    assert panel.calendar.label(s.start) == "2021-01-01T00:00:00Z" and panel.calendar.label(s.end) == "2021-01-05T03:00:00Z"
    assert s.y.tolist() == [100 + i % 24 for i in range(100)]
    assert list(panel.long_frame().columns) == ["unique_id", "period", "y"]


def test_weekly_data_off_the_epoch_counts_in_whole_weeks(tmp_path):
    from MLPipeline.data import load_panel

    mondays = pd.date_range("2021-01-04", periods=120, freq="W-MON")  # 1970-01-01 was a Thursday
    path = _write_long(tmp_path / "w.csv", [("a", t.strftime("%Y-%m-%d"), 50 + i) for i, t in enumerate(mondays)])
    panel = load_panel(path)
    assert panel.frequency == "weekly" and panel.calendar.phase == pd.Timedelta(days=4).value
    s = panel["a"]
    assert panel.calendar.labels([s.start, s.end]) == ["2021-01-04T00:00:00Z", mondays[-1].strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert len(s) == 120


def test_a_short_sub_monthly_series_is_left_out_naming_its_unit(tmp_path):
    from MLPipeline.data import load_panel

    path = _write_long(tmp_path / "h.csv", _hourly_rows("a", "2021-01-01", 100) + _hourly_rows("b", "2021-01-01", 30))
    panel = load_panel(path)
    assert panel.ids == ("a",) and panel.skipped == {"b": "30 hours; need at least 48 (two full seasons)"}


def test_mixed_frequencies_in_a_long_file_are_refused(tmp_path):
    from MLPipeline.data import DataError, load_panel

    daily = [("b", t.strftime("%Y-%m-%d"), 5) for t in pd.date_range("2021-01-01", periods=60, freq="D")]
    path = _write_long(tmp_path / "m.csv", _hourly_rows("a", "2021-01-01", 100) + daily)
    with pytest.raises(DataError, match="mixed frequencies: series 'b' is daily, series 'a' is hourly"):
        load_panel(path)


@pytest.mark.parametrize("freq, message", [
    ("daily", "holds hourly data, but --freq says daily"),
    ("monthly", "holds hourly data, but --freq says monthly"),
    ("hourly", "holdout of 168 hours leaves -68 training hours for the longest series; need at least 48"),
])
def test_engine_checks_freq_and_exits_2_with_one_line(tmp_path, capsys, freq, message):
    import Engine

    path = _write_long(tmp_path / "h.csv", _hourly_rows("a", "2021-01-01", 100))
    code = Engine.main(["--data", path, "--output", str(tmp_path / "out"), "--freq", freq, "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_engine_freq_monthly_on_monthly_data_is_todays_path(tmp_path):
    from MLPipeline.data import load_panel

    rows = [("a", f"{2015 + i // 12}-{i % 12 + 1:02d}", 100 + i) for i in range(36)]
    path = _write_long(tmp_path / "mo.csv", rows)
    assert load_panel(path, frequency="monthly").frequency == "monthly"
    assert len(load_panel(path, frequency="monthly")["a"]) == 36
