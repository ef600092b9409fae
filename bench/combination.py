"""Combination rules replayed on the development set (M3, 300 series) from one set of member fits.

Per series: the ensemble's members fitted on the training window and their forecasts of the test
months, and every member's backtest inside the training window (MLPipeline.combination), are
computed once and cached (``--cache``); each rule of MLPipeline.combination then combines the same
numbers, so the rows differ only by the rule. Fit time of a row = the members' fit + predict, plus
the backtest's refits for rules that need it. Scored exactly as bench/accuracy.py scores a model.

Run: ``python bench/combination.py [--m3-limit 300] [--slice 100] [--cache FILE] [--output DIR]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from MLPipeline.combination import BACKTEST_RULES, RULES, combine, fit_rule, member_backtests  # noqa: E402
from MLPipeline.ensemble import MEMBERS, make_member  # noqa: E402
from MLPipeline.intervals import conformal_quantile  # noqa: E402
from MLPipeline.months import ordinals_of  # noqa: E402


def member_fits(task) -> dict:
    """The members' test forecasts (members, steps, columns) and their backtest, with CPU times."""
    horizon = len(task.test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = time.process_time()
        parts, calibration = [], []
        for kind, transform, calibrate in MEMBERS:
            member = make_member(kind, transform, calibrate).fit(task.y)
            months = ordinals_of(member.predict(horizon, level=(80,)).index)
            parts.append(member._values(months, None, None, accuracy.PREDICT_LEVELS))
            # the conformal scores, so interval rules can be replayed on the same fits
            calibration.append(getattr(member, "calibration_", {}).get("abs_z"))
        fit_cpu = time.process_time() - cpu
        cpu = time.process_time()
        backtest = member_backtests(lambda: [make_member(k, t, False) for k, t, _ in MEMBERS], task.y,
                                    levels=accuracy.PREDICT_LEVELS)
        backtest_cpu = time.process_time() - cpu
    return {"parts": np.array(parts), "backtest": backtest, "fit_cpu": fit_cpu, "backtest_cpu": backtest_cpu,
            "calibration": calibration}


def columns_of(values: np.ndarray) -> dict:
    """interval_columns arrays (mean, std, lower/upper per level) -> the bench's forecast dict."""
    out, col = {"mean": values[:, 0]}, 2
    for lv in accuracy.PREDICT_LEVELS:
        out[f"lower_{lv}"], out[f"upper_{lv}"] = values[:, col], values[:, col + 1]
        col += 2
    return out


def _z(level: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 200.0))


def _scale_bounds(values: np.ndarray, factors: dict) -> np.ndarray:
    """Each level's bounds moved away from (or towards) the mean by its factor."""
    out = values.copy()
    for k, lv in enumerate(accuracy.PREDICT_LEVELS):
        for col in (2 + 2 * k, 3 + 2 * k):
            out[..., col] = values[..., 0] + factors[lv] * (values[..., col] - values[..., 0])
    return out


def recalibrated(parts: np.ndarray, calibration: list) -> np.ndarray:
    """The calibrated members' bounds with the split-conformal (n + 1) factor instead of the plain
    empirical quantile (both never below 1), rescaled around the mean (exact for a member on the
    original scale, as the calibrated level GP is)."""
    out = parts.copy()
    for i, abs_z in enumerate(calibration):
        if abs_z is None or not len(abs_z):
            continue
        factors = {lv: max(1.0, conformal_quantile(abs_z, lv) / _z(lv)) / max(1.0, np.quantile(abs_z, lv / 100) / _z(lv))
                   for lv in accuracy.PREDICT_LEVELS}
        out[i] = _scale_bounds(parts[i], factors)
    return out


def ensemble_conformal(values: np.ndarray, backtest: dict, state: dict, *, widen_only: bool) -> np.ndarray:
    """Scale the combined forecast's bounds by split-conformal factors from the combined backtest:
    per level, the (n + 1)-corrected quantile of |actual - mean| / (half-width on the actual's side)."""
    if not len(backtest["actual"]):
        return values
    combined = combine(backtest["values"], state)
    actual, mean = backtest["actual"], combined[:, 0]
    factors = {}
    for k, lv in enumerate(accuracy.PREDICT_LEVELS):
        half = np.where(actual >= mean, combined[:, 3 + 2 * k] - mean, mean - combined[:, 2 + 2 * k])
        scores = np.abs(actual - mean) / np.maximum(half, 1e-12 * (np.abs(mean) + 1))
        factors[lv] = conformal_quantile(scores, lv)
        factors[lv] = max(1.0, factors[lv]) if widen_only else factors[lv]
    return _scale_bounds(values, factors)


def options() -> list[tuple[str, str, dict]]:
    """(row name, rule, fit_rule keywords): every rule, shrink towards each GP member."""
    gps = [i for i, (kind, _, _) in enumerate(MEMBERS) if kind in ("level", "difference")]
    out = [(rule, rule, {}) for rule in RULES if rule != "shrink"]
    for i in gps:
        kind, transform, calibrate = MEMBERS[i]
        label = f"GP-{kind}{' Box-Cox' if transform else ''}{' calibrated' if calibrate else ''}"
        out.append((f"shrink towards {label}", "shrink", {"lead": i}))
        out.append((f"member alone: {label}", "member", {"member": i}))
    return out


def _save(cache: dict, path: Path) -> None:
    """Write the cache atomically, so a replay reading it meanwhile sees a whole file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(cache))
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="m3", choices=("m3", "m3all", "m1"),
                   help="m3 = the development set; m3all and m1 are benchmarks (replay only the chosen rule there)")
    p.add_argument("--m3-limit", type=int, default=accuracy.M3_DEV_SIZE)
    p.add_argument("--slice", type=int, default=None, help="the first N series of the data set")
    p.add_argument("--no-build", action="store_true", help="replay the cached series only; fit nothing")
    p.add_argument("--options", default=None, help="comma list of row names to replay (default all)")
    p.add_argument("--cache", type=Path, default=Path("Output/bench/combination-cache.pkl"))
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    dev = accuracy.competition_tasks("m3", args.m3_limit, accuracy.M3_DEV_SEED)
    if args.dataset == "m3":
        tasks = dev
    else:  # the M3 development series first, so a cache built for all of M3 answers them early
        tasks = accuracy.competition_tasks(args.dataset, None, accuracy.M3_DEV_SEED)
        if args.dataset == "m3all":
            first = {t.name for t in dev}
            tasks = sorted(tasks, key=lambda t: t.name not in first)
    tasks = tasks[:args.slice]
    cache = pickle.loads(args.cache.read_bytes()) if args.cache.exists() else {}
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    if args.no_build:
        tasks = [t for t in tasks if t.name in cache]
    for i, task in enumerate(tasks):
        if task.name not in cache:
            cache[task.name] = member_fits(task)
            if i % 10 == 9:
                _save(cache, args.cache)
                print(f"{i + 1}/{len(tasks)} series", flush=True)
    _save(cache, args.cache)
    rows = []
    intervals = ("", " + (n+1) member calibration", " + ensemble conformal, widen only", " + ensemble conformal")
    wanted = None if args.options is None else {o.strip() for o in args.options.split(",")}
    for name, rule, keywords in options():
        for interval in intervals if rule != "member" else ("",):
            if wanted is not None and name + interval not in wanted:
                continue
            for task in tasks:
                fits = cache[task.name]
                parts = fits["parts"] if interval != intervals[1] else recalibrated(fits["parts"], fits["calibration"])
                if rule == "member":
                    values, seconds = parts[keywords["member"]], fits["fit_cpu"]
                else:
                    state = fit_rule(rule, fits["backtest"], **keywords)
                    values = combine(parts, state)
                    backtested = rule in BACKTEST_RULES or interval in intervals[2:]
                    seconds = fits["fit_cpu"] + (fits["backtest_cpu"] if backtested else 0.0)
                    if interval in intervals[2:]:
                        values = ensemble_conformal(values, fits["backtest"], state,
                                                    widen_only=interval == intervals[2])
                rows.append(accuracy.score(task, name + interval, columns_of(values), seconds, seconds))
    summary = accuracy.summarise(rows)
    meta = {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(), "jobs": 1,
            "load": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "note": f"Combination rules on the first {len(tasks)} series of the M3 development set."}
    text = accuracy.markdown(summary, meta)
    print(text)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "combination.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
