"""Short-series widening: learn MLPipeline.intervals.SHORT_SERIES_WIDENING on the M3 development subset.

The default ensemble calibrates its level GP on yearly origins inside the training window
(``CALIBRATION_FOLDS``, each leaving ``MIN_MONTHS`` to fit on). A series shorter than 48 months has
one such origin or none, and its intervals undercover. The development subset has no series that
short, so each of its 300 series is cut: the first L months for training (L from 30 to 47, fixed per
series by a hash of its name, and at most its length minus 18), the next 18 for scoring. The
ensemble is fitted on them unwidened (``Ensemble(widen_short=False)``).

For every origin count and level, the factor is the level's quantile of |actual - mean| /
half-width over that group's series and steps (the ratio by which the interval would have had to
be scaled to cover that point), floored at 1. An honest estimate of what it does is a two-fold
cross-fit: factors learned on one half of the series, scored on the other half. The table
printed at the end is the Python literal of SHORT_SERIES_WIDENING.

The benchmark sets (M1, M3 all, the call-centre workbook) are not read here.

Run: ``python bench/short_series.py [--limit N] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import zlib
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from MLPipeline.evaluation import coverage, msis  # noqa: E402
from MLPipeline.intervals import SHORT_SERIES_LEVELS, widen_interval  # noqa: E402

HORIZON = 18
SHORTEST, LONGEST = 30, 47  # training lengths: none, then one calibration origin


def _cut(task):
    """The task's series cut to its short training window and the 18 months after it."""
    n = len(task.y)
    length = min(SHORTEST + zlib.crc32(task.name.encode()) % (LONGEST - SHORTEST + 1), n - HORIZON)
    return task.y.iloc[:length], task.y.iloc[length:length + HORIZON].to_numpy(dtype=float)


def fit_one(task) -> dict:
    import warnings

    from MLPipeline.ensemble import Ensemble

    warnings.filterwarnings("ignore")
    y, test = _cut(task)
    model = Ensemble(widen_short=False).fit(y)
    forecast = model.predict(HORIZON, level=SHORT_SERIES_LEVELS)
    origins = model.members_[0].calibration_.get("origins", 0)
    return {"y": y.to_numpy(dtype=float), "test": test, "origins": int(origins),
            "forecast": {c: forecast[c].to_numpy(dtype=float) for c in forecast.columns}}


def ratios(result: dict, level: float) -> np.ndarray:
    """|actual - mean| / half-width on the actual's side, per step."""
    fc, actual = result["forecast"], result["test"]
    mean, label = fc["mean"], f"{level:g}"
    upper = np.maximum(fc[f"upper_{label}"] - mean, 1e-12)
    lower = np.maximum(mean - fc[f"lower_{label}"], 1e-12)
    return np.where(actual >= mean, (actual - mean) / upper, (mean - actual) / lower)


def learn(results: list[dict]) -> dict[int, tuple[float, ...]]:
    table = {}
    for origins in sorted({r["origins"] for r in results}):
        group = [r for r in results if r["origins"] == origins]
        table[origins] = tuple(round(max(1.0, float(np.quantile(np.concatenate([ratios(r, lv) for r in group]), lv / 100))), 3)
                               for lv in SHORT_SERIES_LEVELS)
    return table


def widened(result: dict, table: dict) -> dict:
    factors = table.get(result["origins"])
    fc = dict(result["forecast"])
    if factors is None:
        return fc
    for lv, factor in zip(SHORT_SERIES_LEVELS, factors, strict=True):
        label = f"{lv:g}"
        fc[f"lower_{label}"], fc[f"upper_{label}"] = widen_interval(
            fc["mean"], fc[f"lower_{label}"], fc[f"upper_{label}"], factor, floor=0.0)  # M3's volumes are positive
    return fc


def scores(results: list[dict], tables: list[dict]) -> dict:
    cov, score = [], []
    for result, table in zip(results, tables, strict=True):
        fc = widened(result, table)
        cov.append(coverage(result["test"], fc["lower_95"], fc["upper_95"]))
        score.append(msis(result["test"], fc["lower_95"], fc["upper_95"], result["y"], alpha=0.05))
    return {"series": len(results), "cov95": float(np.mean(cov)), "msis": float(np.mean(score))}


def main(argv=None) -> int:
    from accuracy import M3_DEV_SEED, M3_DEV_SIZE, competition_tasks

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="the first N development series only (smoke runs)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    tasks = competition_tasks("m3", M3_DEV_SIZE, M3_DEV_SEED)[:args.limit]
    if args.jobs == 1:
        results = [fit_one(task) for task in tasks]
    else:
        with mp.Pool(args.jobs) as pool:
            results = pool.map(fit_one, tasks, chunksize=4)
    table = learn(results)
    from_odd, from_even = learn(results[1::2]), learn(results[0::2])  # each half scored with the other's
    crossed = [from_odd if i % 2 == 0 else from_even for i in range(len(results))]
    rows = [("unwidened", scores(results, [{}] * len(results))), ("widened, cross-fit", scores(results, crossed))]
    print(f"M3 development series cut to {SHORTEST}-{LONGEST} months, {HORIZON} months scored:\n")
    print("| origins | series | " + " | ".join(f"factor {lv:g}%" for lv in SHORT_SERIES_LEVELS) + " |")
    print("|---:|---:|" + "---:|" * len(SHORT_SERIES_LEVELS))
    for origins, factors in table.items():
        count = sum(r["origins"] == origins for r in results)
        print(f"| {origins} | {count} | " + " | ".join(f"{f:.3f}" for f in factors) + " |")
    print("\n| intervals | series | cov95 | MSIS |\n|---|---:|---:|---:|")
    for name, row in rows:
        print(f"| {name} | {row['series']} | {row['cov95']:.3f} | {row['msis']:.3f} |")
    print(f"\nSHORT_SERIES_WIDENING = {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
