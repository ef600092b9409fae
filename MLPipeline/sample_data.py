"""Seeded generator for the sample workbook shipped in ``Input/``.

The sample has the real workbook's schema (original headers, month-end dates) and a
realistic structure: per-domain growth curves (some saturating, one declining), a yearly
seasonal shape, multiplicative noise (so the spread grows with the level) and two
regressors of small integer counts. Run ``python -m MLPipeline.sample_data`` to rewrite it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline.config import DEFAULT_DATA_PATH, DOMAINS, ORIGINAL_HEADERS, REGRESSORS

#: Per domain: start level, end level, curve shape, seasonal amplitude, noise CV.
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


def generate(n_months: int = 132, start: str = "2011-01", seed: int = 2024) -> pd.DataFrame:
    """Return a sample frame with clean column names, indexed by month start (freq MS)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n_months, freq="MS", name="month")
    u = np.linspace(0.0, 1.0, n_months)
    month_of_year = index.month.to_numpy()
    # One shared seasonal shape (peaks in late autumn), scaled per domain.
    season_shape = np.sin(2 * np.pi * (month_of_year - 8) / 12) + 0.4 * np.cos(4 * np.pi * month_of_year / 12)
    phone_lines = rng.integers(0, 8, n_months).astype(float)
    channels = rng.integers(1, 5, n_months).astype(float)
    data = {}
    for domain in DOMAINS:
        p = _PROFILES[domain]
        level = _curve(p["shape"], u, p["start"], p["end"])
        seasonal = 1.0 + p["season"] * season_shape
        # AR(1) multiplicative noise: month-to-month persistence as in real call volumes.
        eps = np.zeros(n_months)
        for t in range(n_months):
            eps[t] = (0.4 * eps[t - 1] if t else 0.0) + rng.normal(0.0, p["cv"])
        data[domain] = np.maximum(np.round(level * seasonal * np.exp(eps)), 1.0)
    frame = pd.DataFrame(data, index=index)
    frame[REGRESSORS[0]] = phone_lines
    frame[REGRESSORS[1]] = channels
    return frame


def to_workbook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> the workbook layout: original headers, month-end dates, integer counts."""
    out = frame.astype("int64").reset_index()
    out["month"] = out["month"] + pd.offsets.MonthEnd(0)
    return out.rename(columns=ORIGINAL_HEADERS)


def write_workbook(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy frame as a workbook (.xlsx) or CSV with the original headers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = to_workbook_frame(frame)
    if path.suffix.lower() == ".csv":
        book.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        book.to_excel(path, index=False, sheet_name="Sheet1", engine="openpyxl")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the seeded sample call-centre workbook.")
    parser.add_argument("--output", default=str(DEFAULT_DATA_PATH), help="where to write (.xlsx or .csv)")
    parser.add_argument("--months", type=int, default=132)
    parser.add_argument("--start", default="2011-01", help="first month, YYYY-MM")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    path = write_workbook(generate(args.months, args.start, args.seed), args.output)
    print(f"wrote {path} ({args.months} months from {args.start}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
