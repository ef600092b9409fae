"""Seeded generator for the sample data: the workbook shipped in ``Input/`` and any panel tests need.

The default sample has the real workbook's schema (five queues, original headers, month-end dates)
and a realistic structure: per-queue growth curves (some saturating, one declining), a yearly
seasonal shape, multiplicative noise (so the spread grows with the level) and two regressors of small
integer counts. ``queues=N`` (or ``names=[...]``) makes N queues with drawn profiles, ``ragged=True``
starts them at different months, and :func:`write_data` writes the wide or the long layout.
:func:`generate_steps` makes queues of another frequency (weekly, daily, hourly, half-hourly: the
working day's shape, quieter weekends, a slow drift, count noise), written long with ISO 8601 UTC
timestamps by :func:`write_steps`. Run ``python -m MLPipeline.sample_data`` to rewrite ``Input/``
(``--help`` for the options; ``--freq hourly --periods 2000`` for intraday queues).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline.config import DEFAULT_DATA_PATH, KNOWN_REGRESSORS
from MLPipeline.frequency import FREQUENCIES, ISO_FORMAT, STEPS

#: The sample's regressors (clean names) and their headers in the workbook layout.
REGRESSORS: tuple[str, ...] = ("phone_lines", "channels")
HEADERS: dict[str, str] = {clean: header for header, clean in KNOWN_REGRESSORS.items()}
#: Names that have broken naive code: spaces, unicode, path parts, quotes, a 100-character name and
#: two that differ only in case. Tests and benchmarks draw from these.
AWKWARD_NAMES: tuple[str, ...] = (
    "Retail Banking", "Zürich – Süd", "../x", "a/b", 'quote "q" \'s', "x" * 100, "Travel", "TRAVEL",
    "客服中心", "phone 📞 line", "#1 queue", "0", "<b>bold</b> & co",
)

#: Per queue: start level, end level, curve shape, seasonal amplitude, noise CV.
_PROFILES = {
    "Healthcare": dict(start=600.0, end=21000.0, shape="logistic", season=0.10, cv=0.05),
    "Telecom": dict(start=10.0, end=4600.0, shape="logistic", season=0.08, cv=0.07),
    "Banking": dict(start=8.0, end=1150.0, shape="linear", season=0.09, cv=0.08),
    "Technology": dict(start=3.0, end=190.0, shape="logistic", season=0.12, cv=0.14),
    "Insurance": dict(start=20.0, end=380.0, shape="hump", season=0.10, cv=0.09),
}


def _curve(shape: str, u: np.ndarray, start: float, end: float) -> np.ndarray:
    """A growth curve on u in [0, 1] from ``start`` to about ``end``."""
    if shape == "linear":
        return start + (end - start) * u
    if shape == "logistic":
        s = 1.0 / (1.0 + np.exp(-8.0 * (u - 0.35)))
        s = (s - s[0]) / (s[-1] - s[0])
        return start + (end - start) * s
    if shape == "hump":  # grows to a peak at 40% of the span, then declines towards `end`
        peak = 3.0 * end
        up = start + (peak - start) * np.clip(u / 0.4, 0, 1) ** 1.5
        down = peak + (end - peak) * np.clip((u - 0.4) / 0.6, 0, 1)
        return np.where(u <= 0.4, up, down)
    raise ValueError(f"unknown shape {shape!r}")


#: The five default queues (the real workbook's shape).
DEFAULT_QUEUES: tuple[str, ...] = tuple(_PROFILES)


def _drawn_profile(rng: np.random.Generator) -> dict:
    start = float(np.exp(rng.uniform(np.log(5), np.log(5000))))
    return dict(start=start, end=start * float(np.exp(rng.uniform(-0.7, 2.5))),
                shape=str(rng.choice(["linear", "logistic", "hump"])), season=float(rng.uniform(0.03, 0.3)),
                cv=float(rng.uniform(0.03, 0.15)))


def generate(n_months: int = 132, start: str = "2011-01", seed: int = 2024, *, queues: int | None = None,
             names: list[str] | None = None, ragged: bool = False) -> pd.DataFrame:
    """Return a sample frame with clean column names, indexed by month start (freq MS).

    The default is the five queues of :data:`DEFAULT_QUEUES`; ``queues=N`` gives ``queue 1..N`` and
    ``names`` gives those names, each with a drawn profile. ``ragged=True``: after the first, each queue
    starts at a drawn month in the first half of the window (NaN before it).
    """
    if names is None and queues is not None:
        names = [f"queue {i}" for i in range(1, queues + 1)]
    profiles = dict(_PROFILES) if names is None else {}
    rng = np.random.default_rng(seed)
    if names is not None:
        drawn = np.random.default_rng(seed + 1)
        profiles = {name: _PROFILES.get(name) or _drawn_profile(drawn) for name in names}
    index = pd.date_range(start, periods=n_months, freq="MS", name="month")
    u = np.linspace(0.0, 1.0, n_months)
    month_of_year = index.month.to_numpy()
    # One shared seasonal shape (peaks in late autumn), scaled per domain.
    season_shape = np.sin(2 * np.pi * (month_of_year - 8) / 12) + 0.4 * np.cos(4 * np.pi * month_of_year / 12)
    phone_lines = rng.integers(0, 8, n_months).astype(float)
    channels = rng.integers(1, 5, n_months).astype(float)
    data = {}
    starts = np.random.default_rng(seed + 2)
    for position, (queue, p) in enumerate(profiles.items()):
        level = _curve(p["shape"], u, p["start"], p["end"])
        seasonal = 1.0 + p["season"] * season_shape
        # AR(1) multiplicative noise: month-to-month persistence as in real call volumes.
        eps = np.zeros(n_months)
        for t in range(n_months):
            eps[t] = (0.4 * eps[t - 1] if t else 0.0) + rng.normal(0.0, p["cv"])
        values = np.maximum(np.round(level * seasonal * np.exp(eps)), 1.0)
        if ragged and position:
            values[:int(starts.integers(0, n_months // 2))] = np.nan
        data[queue] = values
    frame = pd.DataFrame(data, index=index)
    frame[REGRESSORS[0]] = phone_lines
    frame[REGRESSORS[1]] = channels
    return frame


def generate_steps(frequency: str = "hourly", periods: int = 24 * 7 * 8, start: str = "2024-01-01",
                   seed: int = 2024, *, queues: int = 2) -> pd.DataFrame:
    """Queues of a fixed-step ``frequency``: columns ``queue 1..N`` on a naive UTC index named ``period``.

    Volume per step = level x daily shape (busy 09:00-17:00, quiet at night) x weekday factor (weekends
    at 40-70%) x a slow drift, with Poisson noise; weekly and daily data keep the weekday and a yearly
    swing. Seeded: the same arguments give the same frame.
    """
    if frequency not in STEPS:
        raise ValueError(f"frequency must be one of {', '.join(f for f in FREQUENCIES if f in STEPS)}, "
                         f"got {frequency!r}")
    index = pd.date_range(start, periods=periods, freq=STEPS[frequency], name="period")
    rng = np.random.default_rng(seed)
    hours = index.hour.to_numpy() + index.minute.to_numpy() / 60
    day = np.exp(-0.5 * ((hours - 12.5) / 3.2) ** 2) + 0.08  # one working-day hump
    if frequency in ("weekly", "daily"):
        day = np.ones(periods)
    years = (index - index[0]).total_seconds().to_numpy() / (365.25 * 86400)
    data = {}
    for q in range(1, queues + 1):
        level = float(np.exp(rng.uniform(np.log(5), np.log(400))))
        weekend = rng.uniform(0.4, 0.7)
        week = np.where(index.dayofweek.to_numpy() >= 5, weekend, 1.0) if frequency != "weekly" else 1.0
        year = 1 + rng.uniform(0.03, 0.15) * np.sin(2 * np.pi * (years - rng.uniform()))
        drift = np.exp(rng.uniform(-0.1, 0.3) * years)
        data[f"queue {q}"] = rng.poisson(level * day * week * year * drift).astype(float)
    return pd.DataFrame(data, index=index)


def write_steps(frame: pd.DataFrame, path: str | Path) -> Path:
    """A :func:`generate_steps` frame in the long layout (``unique_id, ds, y``; ISO 8601 UTC ``ds``),
    as .csv or .parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    long = frame.reset_index().melt(id_vars="period", var_name="unique_id", value_name="y")
    long["ds"] = long.pop("period").dt.strftime(ISO_FORMAT)
    long = long[["unique_id", "ds", "y"]].dropna(subset=["y"]).astype({"y": "int64"})  # a late start: no rows
    if path.suffix.lower() == ".parquet":
        long.to_parquet(path, index=False)
    else:
        long.to_csv(path, index=False)
    return path


def to_workbook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> the workbook layout: original headers, month-end dates, integer counts
    (empty cells where a ragged queue has not started)."""
    out = frame.astype("Int64").reset_index()
    out["month"] = out["month"] + pd.offsets.MonthEnd(0)
    return out.rename(columns=HEADERS)


def to_long_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> the long layout: ``unique_id, ds, y`` and the regressors, one row per queue-month."""
    queues = [c for c in frame.columns if c not in REGRESSORS]
    long = frame.reset_index().melt(id_vars=["month", *REGRESSORS], value_vars=queues, var_name="unique_id",
                                    value_name="y").dropna(subset=["y"])
    long = long.rename(columns={"month": "ds"})[["unique_id", "ds", "y", *REGRESSORS]]
    long["ds"] = long["ds"].dt.strftime("%Y-%m")
    return long.astype({"y": "int64", **{r: "int64" for r in REGRESSORS}}).reset_index(drop=True)


def write_data(frame: pd.DataFrame, path: str | Path, layout: str = "wide") -> Path:
    """Write a tidy frame as .xlsx, .csv or .parquet, in the wide (original headers) or long layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = to_workbook_frame(frame) if layout == "wide" else to_long_frame(frame)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        book.to_csv(path, index=False, date_format="%Y-%m-%d")
    elif suffix == ".parquet":
        book.to_parquet(path, index=False)
    else:
        book.to_excel(path, index=False, sheet_name="Sheet1", engine="openpyxl")
    return path


def write_workbook(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy frame in the wide layout (see :func:`write_data`)."""
    return write_data(frame, path, "wide")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the seeded sample call-centre workbook.")
    parser.add_argument("--output", default=str(DEFAULT_DATA_PATH), help="where to write (.xlsx or .csv)")
    parser.add_argument("--months", type=int, default=132)
    parser.add_argument("--start", default="2011-01", help="first month, YYYY-MM")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--queues", type=int, help="this many queues with drawn profiles (default: the five)")
    parser.add_argument("--awkward-names", action="store_true", help="name the queues from AWKWARD_NAMES")
    parser.add_argument("--ragged", action="store_true", help="queues start at different months")
    parser.add_argument("--layout", choices=("wide", "long"), default="wide")
    parser.add_argument("--freq", choices=FREQUENCIES, default="monthly",
                        help="frequency (other than monthly: long layout, ISO 8601 UTC timestamps, no regressors)")
    parser.add_argument("--periods", type=int, default=24 * 7 * 8, help="periods per queue, for --freq other than "
                        "monthly (default: eight weeks of hours)")
    parser.add_argument("--first", default="2024-01-01", help="first timestamp, for --freq other than monthly")
    args = parser.parse_args(argv)
    if args.freq != "monthly":
        frame = generate_steps(args.freq, args.periods, args.first, args.seed, queues=args.queues or 2)
        path = write_steps(frame, args.output)
        print(f"wrote {path} ({frame.shape[1]} {args.freq} queues, {args.periods} periods from {args.first}, "
              f"seed {args.seed}, long layout)")
        return 0
    names = None
    if args.awkward_names:
        count = args.queues or len(AWKWARD_NAMES)
        names = [AWKWARD_NAMES[i] if i < len(AWKWARD_NAMES) else f"{AWKWARD_NAMES[i % len(AWKWARD_NAMES)]} {i}"
                 for i in range(count)]
    frame = generate(args.months, args.start, args.seed, queues=args.queues, names=names, ragged=args.ragged)
    path = write_data(frame, args.output, args.layout)
    print(f"wrote {path} ({frame.shape[1] - len(REGRESSORS)} queues, {args.months} months from {args.start}, "
          f"seed {args.seed}, {args.layout} layout)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
