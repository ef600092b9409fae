"""The training run, step by step: load -> EDA/normality -> fit -> evaluate -> select -> save.

Every model that is evaluated is fitted on the training split only; the models that are
saved for serving are refitted on all months. The kind preferred per domain is chosen by
a backtest inside the training split, never by the held-out months.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from MLPipeline import eda
from MLPipeline.artifacts import RunWriter, holdout_records, sha256_file
from MLPipeline.config import DEFAULT_LEVELS, DOMAINS, HOLDOUT_MONTHS, KINDS, REGRESSORS
from MLPipeline.data import frame_sha256, load_workbook
from MLPipeline.evaluation import forecast_metrics
from MLPipeline.forecaster import GPForecaster, default_calibration
from MLPipeline.logs import timed_step
from MLPipeline.months import format_month
from MLPipeline.normality import normality_table
from MLPipeline.preprocess import train_test_split
from MLPipeline.report import render_report
from MLPipeline.selection import REGRESSOR_MARGIN, choose_kind

log = logging.getLogger("MLPipeline.pipeline")


REGRESSOR_MODES = ("auto", "always", "never")


@dataclass
class RunConfig:
    data_path: Path
    output_dir: Path
    holdout: int = HOLDOUT_MONTHS
    plots: bool = True
    #: "auto": per domain, use the regressors only where the training backtest says they help;
    #: "always" / "never": for every domain.
    regressors: str = "auto"
    levels: tuple[float, ...] = DEFAULT_LEVELS
    n_jobs: int = 2

    def __post_init__(self):
        if self.regressors not in REGRESSOR_MODES:
            raise ValueError(f"regressors must be one of {', '.join(REGRESSOR_MODES)}, got {self.regressors!r}")


def fit_kinds(y: pd.Series, X: pd.DataFrame | None = None) -> dict[str, GPForecaster]:
    """One fitted model per kind in ``KINDS``, each GP fitted once.

    An ensemble member that is a plain model of a served kind (no transform, the kind's default
    calibration: the calibrated level GP) is served as that kind instead of being fitted again.
    """
    ensemble = GPForecaster(kind="ensemble").fit(y, X) if "ensemble" in KINDS else None
    members = ensemble.members_ if ensemble is not None else []
    models = {}
    for kind in KINDS:
        if kind == "ensemble":
            models[kind] = ensemble
            continue
        same = [m for m in members if m.kind == kind and m.transform is None
                and bool(m.calibrate) == default_calibration(kind)]
        models[kind] = same[0] if same else GPForecaster(kind=kind).fit(y, X)
    return models


def _regressors(frame: pd.DataFrame, use: bool) -> pd.DataFrame | None:
    return frame[list(REGRESSORS)] if use else None


def _holdout_task(domain, train, test, use_x: bool, cfg: RunConfig):
    """Fit every kind on the training split and forecast the held-out months."""
    out = []
    for kind, model in fit_kinds(train[domain], _regressors(train, use_x)).items():
        forecast = model.predict(len(test), _regressors(test, use_x), level=cfg.levels)
        metrics = forecast_metrics(test[domain].to_numpy(), forecast, train[domain].to_numpy(), cfg.levels)
        out.append(((domain, kind), model, forecast.assign(actual=test[domain].to_numpy()), metrics))
    return out


def _best_score(details: dict) -> float | None:
    scores = details["backtest"].get(details["preferred"])
    return None if scores is None else scores[details["metric"]]


def _selection_task(domain, train, cfg: RunConfig):
    """Kind and regressor use for ``domain``, from backtests inside the training split only.

    With ``regressors="auto"`` the univariate models are kept unless the regressors improve the
    preferred kind's backtest score by more than ``REGRESSOR_MARGIN`` (simpler model wins ties).
    """
    y = train[domain]
    if cfg.regressors != "auto":
        use_x = cfg.regressors == "always"
        details = choose_kind(y, _regressors(train, use_x), kinds=KINDS)[1]
        return domain, {**details, "uses_regressors": use_x, "regressor_reason": f"regressors={cfg.regressors}"}
    plain = choose_kind(y, None, kinds=KINDS)[1]
    with_x = choose_kind(y, _regressors(train, True), kinds=KINDS)[1]
    without, within = _best_score(plain), _best_score(with_x)
    if without is None or within is None:
        return domain, {**plain, "uses_regressors": False,
                        "regressor_reason": "no backtest origin: univariate models"}
    use_x = within < without * (1 - REGRESSOR_MARGIN)
    metric = plain["metric"].upper()
    reason = (f"training-backtest {metric} with regressors {within:.3f} ({with_x['preferred']}) vs without "
              f"{without:.3f} ({plain['preferred']}): "
              + ("regressors used" if use_x else f"univariate (regressors do not help by more than {REGRESSOR_MARGIN:.0%})"))
    chosen = with_x if use_x else plain
    return domain, {**chosen, "uses_regressors": use_x, "regressor_reason": reason,
                    "backtest_other": (plain if use_x else with_x)["backtest"]}


def _final_task(domain, frame, use_x: bool):
    return [((domain, kind), model) for kind, model in fit_kinds(frame[domain], _regressors(frame, use_x)).items()]


def run(cfg: RunConfig) -> dict:
    """Train, evaluate and save. Returns the committed manifest. Raises DataError on bad input."""
    started = dt.datetime.now(dt.UTC)
    with timed_step(log, "load", path=str(cfg.data_path)):
        frame = load_workbook(cfg.data_path)
        train, test = train_test_split(frame, cfg.holdout)
    log.info("data: %d months %s..%s; training %s..%s; holdout %d months", len(frame),
             format_month(frame.index[0]), format_month(frame.index[-1]), format_month(train.index[0]),
             format_month(train.index[-1]), len(test))

    data_hash = frame_sha256(frame)
    version = f"{started:%Y%m%dT%H%M%SZ}-{data_hash[:8]}"
    writer = RunWriter(cfg.output_dir, version)
    try:
        with timed_step(log, "normality"):
            normality = normality_table(frame)
            writer.write_json("normality.json", normality)
        if cfg.plots:
            with timed_step(log, "eda figures"):
                for path in eda.write_eda_figures(frame, writer.run_dir / "figures"):
                    writer.add_file(path)

        # Selection first: it decides, per domain, whether the evaluated and served models use regressors.
        with timed_step(log, "selection backtest", domains=len(DOMAINS)):
            selection = dict(Parallel(n_jobs=cfg.n_jobs)(delayed(_selection_task)(d, train, cfg) for d in DOMAINS))
        use_x = {d: selection[d]["uses_regressors"] for d in DOMAINS}
        n_models = len(DOMAINS) * len(KINDS)
        with timed_step(log, "holdout fit", models=n_models):
            per_domain = Parallel(n_jobs=cfg.n_jobs)(
                delayed(_holdout_task)(d, train, test, use_x[d], cfg) for d in DOMAINS
            )
        results = [result for domain_results in per_domain for result in domain_results]
        holdout = {key: fc for key, _, fc, _ in results}
        metrics: dict[str, dict] = {d: {} for d in DOMAINS}
        for (d, k), _, _, m in results:
            metrics[d][k] = m
        for d in DOMAINS:
            log.info("%s: prefers %s (%s); %s; holdout sMAPE %s", d, selection[d]["preferred"],
                     selection[d]["reason"], selection[d]["regressor_reason"],
                     " / ".join(f"{k} {metrics[d][k]['smape']:.2f}" for k in KINDS))

        if cfg.plots:
            with timed_step(log, "forecast figures"):
                for (d, k), _, fc, _ in results:
                    path = eda.write_forecast_figure(
                        train[d], test[d], fc, f"{d}: {k} model, holdout forecast",
                        writer.run_dir / "figures" / f"holdout_{d}_{k}.png")
                    writer.add_file(path)

        with timed_step(log, "final fit on all months", models=n_models):
            finals = dict(pair for pairs in Parallel(n_jobs=cfg.n_jobs)(delayed(_final_task)(d, frame, use_x[d])
                                                                    for d in DOMAINS) for pair in pairs)
        with timed_step(log, "save"):
            for (d, k), model in finals.items():
                writer.write_model(d, k, model)
            writer.write_bytes("data.csv", frame.to_csv(float_format="%.10g").encode())
            writer.write_json("metrics.json", metrics)
            writer.write_json("holdout.json", holdout_records(holdout))
            manifest_body = {
                "trained_at": started.isoformat(timespec="seconds"),
                "training_seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2),
                "data": {
                    "source": Path(cfg.data_path).name,
                    "file_sha256": sha256_file(Path(cfg.data_path)),
                    "data_sha256": data_hash,
                    "n_months": len(frame),
                },
                "train_window": {"start": format_month(frame.index[0]), "end": format_month(frame.index[-1])},
                "holdout": {"months": len(test), "start": format_month(test.index[0]),
                            "end": format_month(test.index[-1])},
                "domains": list(DOMAINS),
                "kinds": list(KINDS),
                "regressors": list(REGRESSORS),
                "uses_regressors": use_x,
                "levels": list(cfg.levels),
                "preferred": {d: selection[d]["preferred"] for d in DOMAINS},
                "selection": selection,
                "metrics": metrics,
            }
            report = render_report(manifest_body, normality, version, plots=cfg.plots)
            writer.write_bytes("report.md", report.encode())
            manifest = writer.commit(manifest_body)
    except BaseException:
        writer.abort()
        raise
    log.info("saved model version %s to %s", version, cfg.output_dir)
    return manifest
