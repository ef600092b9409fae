"""Property tests (hypothesis, bounded): whatever the input, the loader returns a tidy frame or
raises DataError, and the forecaster refuses bad input with ValueError, never another exception.

Inputs start from a valid sample workbook and are damaged at random (cells replaced by odd values,
rows dropped or repeated, headers renamed), so the checks run deep into validation instead of
stopping at the first missing column. Bounded: 50 examples each, no deadline.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from MLPipeline.config import MIN_MONTHS, MONTH_FREQ
from MLPipeline.data import DataError, load_panel, panel_from_table
from MLPipeline.forecaster import GPForecaster
from MLPipeline.models import make_model
from MLPipeline.readers import RawTable
from MLPipeline.sample_data import DEFAULT_QUEUES, REGRESSORS, generate, to_workbook_frame

BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = to_workbook_frame(generate(n_months=MIN_MONTHS + 6))

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    # no control characters: Excel cannot store them, so the test's own workbook writer would fail
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=12),
    st.sampled_from(["2020-13", "2021-02-30", "2020-01", "1e3", " ", "NaN", "-0", "12,5", "2019-12-31"]),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
)


@st.composite
def damaged_frames(draw) -> pd.DataFrame:
    frame = BASE.copy().astype(object)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["cell", "cell", "drop", "repeat", "rename", "shuffle"]))
        row = draw(st.integers(0, len(frame) - 1)) if len(frame) else 0
        if action == "cell" and len(frame):
            frame.iat[row, draw(st.integers(0, frame.shape[1] - 1))] = draw(odd_values)
        elif action == "drop" and len(frame):
            frame = frame.drop(frame.index[draw(st.integers(0, len(frame) - 1))])
        elif action == "repeat" and len(frame):
            frame = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
        elif action == "rename":
            column = draw(st.sampled_from(list(frame.columns)))
            frame = frame.rename(columns={column: draw(st.sampled_from(["", "Month", " Banking ", "x", 3]))})
        elif action == "shuffle":
            frame = frame.sample(frac=1, random_state=draw(st.integers(0, 9))).reset_index(drop=True)
    if draw(st.booleans()):  # sometimes cut short, maybe below the minimum
        frame = frame.head(draw(st.integers(0, len(frame))))
    return frame


def assert_tidy(panel) -> None:
    assert len(panel) >= 1 and len(set(panel.ids)) == len(panel)
    for s in panel:
        assert len(s) >= MIN_MONTHS and np.isfinite(s.y).all() and (s.y >= 0).all()
        if panel.regressors:
            assert s.x.shape == (len(s), len(panel.regressors)) and np.isfinite(s.x).all()


def _table(frame: pd.DataFrame) -> RawTable:
    cells = frame.reset_index(drop=True).astype(object)
    headers = list(cells.columns)
    cells.columns = range(len(headers))
    return RawTable("fuzz", headers, cells, np.arange(2, len(cells) + 2))


@BOUNDED
@given(damaged_frames())
def test_panel_from_table_gives_a_tidy_panel_or_data_error(raw):
    try:
        panel = panel_from_table(_table(raw))
    except DataError:
        return
    assert_tidy(panel)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@BOUNDED
@given(raw=damaged_frames(), garbage=st.binary(max_size=64))
def test_load_workbook_gives_a_tidy_frame_or_data_error(tmp_path_factory, suffix, raw, garbage):
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    if garbage and garbage[0] % 4 == 0:  # now and then not a workbook at all
        path.write_bytes(garbage)
    elif suffix == ".csv":
        raw.to_csv(path, index=False)
    else:
        raw.to_excel(path, index=False, engine="openpyxl")
    try:
        panel = load_panel(path)
    except DataError:
        return
    assert_tidy(panel)


def monthly(n: int, start: str = "2015-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=MONTH_FREQ, name="month")


bad_series = st.one_of(
    st.integers(0, MIN_MONTHS - 1).map(lambda n: pd.Series(np.arange(n, dtype=float), index=monthly(n))),
    st.lists(st.floats(allow_nan=True), max_size=40),  # a list, not a Series
    st.integers(MIN_MONTHS, 40).map(lambda n: pd.Series(["x"] * n, index=monthly(n))),
    st.integers(MIN_MONTHS, 40).map(lambda n: pd.Series(np.ones(n), index=pd.RangeIndex(n))),
    st.integers(MIN_MONTHS, 40).map(
        lambda n: pd.Series(np.ones(n), index=pd.date_range("2015-01-01", periods=n, freq="W"))
    ),
    st.integers(MIN_MONTHS, 40).map(
        lambda n: pd.Series(
            np.ones(n), index=monthly(n).delete(n // 2).append(pd.DatetimeIndex([pd.Timestamp("2030-01-01")]))
        )
    ),  # fmt: skip
)


@BOUNDED
@given(y=bad_series, kind=st.sampled_from(["level", "difference", "levels", ""]))
def test_fit_refuses_bad_series_with_value_error_only(y, kind):
    with pytest.raises(ValueError):
        make_model(kind).fit(y)


@pytest.fixture(scope="module")
def fitted() -> GPForecaster:
    frame = generate(n_months=MIN_MONTHS + 12)
    return GPForecaster(kind="difference").fit(frame[DEFAULT_QUEUES[0]], frame[list(REGRESSORS)])


months_arg = st.one_of(
    st.lists(st.sampled_from(["2016-03", "2019-07", "2024-01", "1999-01", "2016-13", "", "x"]), max_size=4),
    st.just([]),
    st.integers(),
    st.none(),
)
levels_arg = st.one_of(
    st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-5, 200), st.text(max_size=3)), max_size=3),
    st.just((80, 95)),
)


@BOUNDED
@given(months=months_arg, level=levels_arg, with_x=st.booleans(), x_value=st.floats(allow_nan=True))
def test_predict_at_refuses_bad_input_with_value_error_only(fitted, months, level, with_x, x_value):
    x = None
    if with_x and isinstance(months, list):
        index = pd.DatetimeIndex([pd.Timestamp(m) for m in months if _parses(m)], name="month")
        x = pd.DataFrame({r: x_value for r in REGRESSORS}, index=index)
    try:
        out = fitted.predict_at(months, X=x, level=level)
    except ValueError:
        return
    assert len(out) == len(months) and np.isfinite(out["mean"].to_numpy()).all()


def _parses(value: str) -> bool:
    try:
        pd.Timestamp(value)
    except ValueError:
        return False
    return True
