"""The training run, step by step: load -> EDA/normality -> train every series -> save.

Training a series (:func:`train_series`) is one independent unit of work, handed to an executor:
a backtest inside its training split decides whether it uses the regressors, every kind is
fitted on the training split and scored on its held-out months, and the served models are refitted
on all its months. Nothing a series chooses looks at its held-out months. A series whose models
cannot be fitted gets a seasonal-naive fallback, and the manifest and report say so: one queue
never fails a run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline import eda, gate, served_tables, tracking
from MLPipeline.actuals import merge_actuals, public_url, read_actuals
from MLPipeline.actuals import report_section as actuals_section
from MLPipeline.artifacts import (
    KEEP_RUNS,
    ArtifactError,
    RunLock,
    RunWriter,
    holdout_records,
    load_bundle,
    series_key,
    sha256_file,
)
from MLPipeline.calendars import MONTHLY, Calendar
from MLPipeline.config import DEFAULT_LEVELS, KINDS, MAX_STATESPACE_POINTS, MAX_TRAIN_MONTHS, MIN_MONTHS
from MLPipeline.data import DataError, load_panel
from MLPipeline.evaluation import forecast_metrics
from MLPipeline.executor import map_series
from MLPipeline.forecaster import GPForecaster, default_calibration
from MLPipeline.logs import timed_step
from MLPipeline.models import ANY_FREQUENCY_KINDS, MODEL_KINDS, make_model
from MLPipeline.normality import normality_table
from MLPipeline.panel import Panel, Series
from MLPipeline.preprocess import check_holdout, split
from MLPipeline.report import render_report
from MLPipeline.selection import REGRESSOR_MARGIN, choose_kind
from MLPipeline.smoothing import SeasonalNaive
from MLPipeline.statespace_forecaster import StateSpaceForecaster

log = logging.getLogger("MLPipeline.pipeline")

REGRESSOR_MODES = ("auto", "always", "never")
#: Figures are drawn for this many series at most (the dashboard's dozen); the report says so.
MAX_FIGURE_SERIES = 12


@dataclass
class RunConfig:
    data_path: Path
    output_dir: Path
    #: periods held out per series (None: the frequency's default, Calendar.holdout: 12 months)
    holdout: int | None = None
    plots: bool = True
    #: "auto": per series, use the regressors only where the training backtest says they help;
    #: "always" / "never": for every series.
    use_regressors: str = "auto"
    levels: tuple[float, ...] = DEFAULT_LEVELS
    n_jobs: int = 2
    #: how the file is read (MLPipeline.data.load_panel): layout, declared regressors, series kept, sheet
    load: dict = field(default_factory=dict)
    #: longest training window per series; longer series train on their most recent months
    max_months: int = MAX_TRAIN_MONTHS
    #: kinds trained and served per series (TRAINABLE_KINDS); the preferred one is the ensemble if trained.
    #: None: config.KINDS for monthly data, the state-space GP for any other frequency
    kinds: tuple[str, ...] | None = None
    #: the selection backtest inside each training split (it decides regressor use under "auto")
    backtest: bool = True
    #: SQLAlchemy URL of the prediction log whose actuals are appended after the data's last month
    actuals_url: str | None = None
    #: the champion/challenger gate (MLPipeline.gate): margin, and --force to publish whatever it says
    gate_margin: float = gate.GATE_MARGIN
    force: bool = False
    #: runs kept in runs/ (the served one is never removed)
    keep: int = KEEP_RUNS
    #: address of a dask.distributed scheduler to train on (None: local processes, ``n_jobs`` of them)
    scheduler: str | None = None

    def __post_init__(self):
        if self.use_regressors not in REGRESSOR_MODES:
            raise ValueError(f"use_regressors must be one of {', '.join(REGRESSOR_MODES)}, got {self.use_regressors!r}")
        if self.kinds is not None:
            self.kinds = tuple(dict.fromkeys(self.kinds))
            unknown = [k for k in self.kinds if k not in TRAINABLE_KINDS]
            if unknown or not self.kinds:
                raise DataError(f"kinds must be some of {', '.join(TRAINABLE_KINDS)}, got "
                                f"{', '.join(self.kinds) or 'none'}")

    def for_calendar(self, calendar: Calendar) -> RunConfig:
        """This configuration with the frequency's defaults filled in (holdout, kinds, longest window);
        DataError for kinds that cannot train on it."""
        kinds = self.kinds or (KINDS if calendar.monthly else ANY_FREQUENCY_KINDS)
        if not calendar.monthly:
            other = [k for k in kinds if k not in ANY_FREQUENCY_KINDS]
            if other:
                raise DataError(f"{', '.join(other)} model(s) are monthly; {calendar.frequency} data trains "
                                f"{', '.join(ANY_FREQUENCY_KINDS)} (--kinds)")
        longest = self.max_months if calendar.monthly else MAX_STATESPACE_POINTS
        return dataclasses.replace(self, holdout=calendar.holdout if self.holdout is None else self.holdout,
                                   kinds=kinds, max_months=longest)


#: Kinds Engine.py can train: the GP kinds, the ensemble, and the seasonal-naive baseline (fast: a quick
#: first model for a very large panel, and what a series whose models fail falls back to).
TRAINABLE_KINDS: tuple[str, ...] = MODEL_KINDS


def _model(kind: str, calendar: Calendar):
    """An unfitted model of ``kind`` for series of ``calendar``'s frequency."""
    return make_model(kind, frequency=calendar.frequency) if kind in ANY_FREQUENCY_KINDS else make_model(kind)


def fit_kinds(y: pd.Series, X: pd.DataFrame | None = None, kinds: tuple[str, ...] = KINDS,
              calendar: Calendar = MONTHLY) -> dict[str, object]:
    """One fitted model per kind in ``kinds``, each GP fitted once.

    An ensemble member that is a plain model of a served kind (no transform, the kind's default
    calibration: the calibrated level GP) is served as that kind instead of being fitted again.
    """
    ensemble = make_model("ensemble").fit(y, X) if "ensemble" in kinds else None
    members = ensemble.members_ if ensemble is not None else []
    models = {}
    for kind in kinds:
        if kind == "ensemble":
            models[kind] = ensemble
            continue
        same = [m for m in members if isinstance(m, GPForecaster) and m.kind == kind and m.transform is None
                and bool(m.calibrate) == default_calibration(kind)]
        models[kind] = same[0] if same else _model(kind, calendar).fit(y, X)
    return models


@dataclass
class SeriesJob:
    series: Series
    regressors: tuple[str, ...]
    holdout: int
    levels: tuple[float, ...]
    use_regressors: str
    kinds: tuple[str, ...] = KINDS
    backtest: bool = True
    calendar: Calendar = MONTHLY


@dataclass
class SeriesResult:
    id: str
    models: dict[str, object]
    preferred: str
    uses_regressors: bool
    selection: dict
    metrics: dict[str, dict]
    holdout: dict[str, pd.DataFrame]
    notes: list[str]
    holdout_start: int | None
    #: True when the series' models could not be fitted and the seasonal-naive fallback serves
    fallback: bool = False
    #: the preferred model's month table (MLPipeline.served_tables): computed where it was fitted
    table: tuple[int, np.ndarray | None] = (0, None)


def _best_score(details: dict) -> float | None:
    scores = details["backtest"].get(details["preferred"])
    return None if scores is None else scores[details["metric"]]


def _unselected(kinds: tuple[str, ...], why: str, use_x: bool, regressor_reason: str) -> dict:
    preferred = "ensemble" if "ensemble" in kinds else kinds[0]
    return {"preferred": preferred, "metric": "mase", "margin": None, "origins": [], "backtest": {},
            "reason": f"{preferred} served: {why}", "uses_regressors": use_x, "regressor_reason": regressor_reason}


def select(y: pd.Series, X: pd.DataFrame | None, mode: str, kinds: tuple[str, ...] = KINDS,
           backtest: bool = True) -> dict:
    """Kind and regressor use for one series, from backtests inside ``y`` (its training split) only.

    With ``mode="auto"`` the univariate models are kept unless the regressors improve the preferred
    kind's backtest score by more than ``REGRESSOR_MARGIN`` (simpler model wins ties). Without a
    backtest (``backtest=False``, or no GP kind to compare), ``auto`` means univariate.
    """
    gp_kinds = tuple(k for k in kinds if k in KINDS)
    if not backtest or not gp_kinds:
        use_x = X is not None and mode == "always" and bool(gp_kinds)
        why = "no backtest (--no-backtest)" if not backtest else "no monthly GP kind to compare"
        return _unselected(kinds, why, use_x, f"regressors={mode}, {why}" if X is not None
                           else "no regressors in the data")
    if X is None or mode != "auto":
        use_x = X is not None and mode == "always"
        details = choose_kind(y, X if use_x else None, kinds=gp_kinds)[1]
        reason = f"regressors={mode}" if X is not None else "no regressors in the data"
        return {**details, "uses_regressors": use_x, "regressor_reason": reason}
    plain = choose_kind(y, None, kinds=gp_kinds)[1]
    with_x = choose_kind(y, X, kinds=gp_kinds)[1]
    without, within = _best_score(plain), _best_score(with_x)
    if without is None or within is None:
        return {**plain, "uses_regressors": False, "regressor_reason": "no backtest origin: univariate models"}
    use_x = within < without * (1 - REGRESSOR_MARGIN)
    metric = plain["metric"].upper()
    reason = (f"training-backtest {metric} with regressors {within:.3f} ({with_x['preferred']}) vs without "
              f"{without:.3f} ({plain['preferred']}): "
              + ("regressors used" if use_x else f"univariate (regressors do not help by more than {REGRESSOR_MARGIN:.0%})"))
    chosen = with_x if use_x else plain
    return {**chosen, "uses_regressors": use_x, "regressor_reason": reason,
            "backtest_other": (plain if use_x else with_x)["backtest"]}


def _holdout_forecasts(models: dict, test_y: np.ndarray, test_x, train_y: np.ndarray, levels, season: int):
    forecasts, metrics = {}, {}
    for kind, model in models.items():
        forecast = model.predict(len(test_y), test_x if model.regressors_ else None, level=levels)
        metrics[kind] = forecast_metrics(test_y, forecast, train_y, levels, season=season)
        forecasts[kind] = forecast.assign(actual=test_y)
    return forecasts, metrics


def _constant_note(series: Series, calendar: Calendar) -> list[str]:
    if np.ptp(series.y) == 0:
        return [f"constant at {series.y[0]:g} over its {len(series)} {calendar.unit}s: forecast to stay there"]
    return []


def train_series(job: SeriesJob) -> SeriesResult:
    """Everything one series needs: selection, holdout scores, served models (see the module docstring)."""
    series = job.series
    names = job.regressors
    notes = _constant_note(series, job.calendar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optimiser chatter on degenerate series; outcomes are checked
        try:
            return _with_table(_train(series, names, job, notes), series, job.calendar)
        except Exception as exc:  # one queue must not fail the run: serve a fallback and say why
            return _with_table(_fallback(series, job, notes + [f"models could not be fitted ({type(exc).__name__}: "
                                                               f"{exc}); serving {_fallback_name(job.calendar)}"]),
                               series, job.calendar)


def _fallback_name(calendar: Calendar) -> str:
    return "a seasonal-naive fallback" if calendar.monthly else "a fallback: the state-space GP at its prior medians"


def _with_table(result: SeriesResult, series: Series, calendar: Calendar) -> SeriesResult:
    result.table = served_tables.preferred_rows(result.models, result.preferred, series.end, calendar)
    return result


def _train(series: Series, names, job: SeriesJob, notes: list[str]) -> SeriesResult:
    calendar = job.calendar
    train, test = split(series, job.holdout, calendar.min_length)
    y_train, x_train = train.to_pandas(names, calendar)
    selection = select(y_train, x_train, job.use_regressors, job.kinds, job.backtest)
    use_x = selection["uses_regressors"]
    forecasts, metrics, holdout_start = {}, {}, None
    if test is not None:
        models = fit_kinds(y_train, x_train if use_x else None, job.kinds, calendar)
        _, x_test = test.to_pandas(names, calendar)
        forecasts, metrics = _holdout_forecasts(models, test.y, x_test, train.y, job.levels, calendar.season)
        holdout_start = test.start
    else:
        unit = calendar.unit
        notes.append(f"{len(series)} {unit}s leave no holdout of {job.holdout} with {calendar.min_length} training "
                     f"{unit}s: served, not evaluated")
    y_all, x_all = series.to_pandas(names, calendar)
    finals = fit_kinds(y_all, x_all if use_x else None, job.kinds, calendar)
    for kind, model in finals.items():
        check = model.predict(1, _future_x(series, names, calendar) if model.regressors_ else None, level=(95,))
        if not np.isfinite(check.to_numpy()).all():
            raise ValueError(f"the {kind} model forecasts non-finite values")
    return SeriesResult(series.id, finals, selection["preferred"], use_x, selection, metrics, forecasts, notes,
                        holdout_start)


def _future_x(series: Series, names, calendar: Calendar) -> pd.DataFrame:
    return pd.DataFrame([series.x[-1]], columns=list(names), index=calendar.index([series.end + 1]))


def _fallback(series: Series, job: SeriesJob, notes: list[str]) -> SeriesResult:
    metrics, forecasts, holdout_start = {}, {}, None
    calendar = job.calendar
    # Monthly: the seasonal-naive model. Other frequencies: the state-space GP at its prior medians,
    # which needs no optimiser (the step that fails on a degenerate series).
    kind = SeasonalNaive.kind if calendar.monthly else StateSpaceForecaster.kind

    def fallback_model():
        if calendar.monthly:
            return SeasonalNaive()
        return StateSpaceForecaster(calendar.frequency, optimize=False)

    train, test = split(series, job.holdout, calendar.min_length)
    if test is not None:
        model = fallback_model().fit(train.to_pandas(calendar=calendar)[0])
        forecasts, metrics = _holdout_forecasts({kind: model}, test.y, None, train.y, job.levels, calendar.season)
        holdout_start = test.start
    final = fallback_model().fit(series.to_pandas(calendar=calendar)[0])
    selection = {"preferred": kind, "metric": "mase", "backtest": {}, "origins": [], "margin": None,
                 "reason": notes[-1], "uses_regressors": False, "regressor_reason": "fallback model: univariate"}
    return SeriesResult(series.id, {kind: final}, kind, False, selection, metrics, forecasts, notes, holdout_start,
                        fallback=True)


def _lost(job: SeriesJob, exc: BaseException) -> SeriesResult:
    """The result of a series whose training never completed on the cluster (its workers kept dying)."""
    return _with_table(_fallback(job.series, job, _constant_note(job.series, job.calendar) + [
        f"training did not complete on the cluster ({type(exc).__name__}: {exc}); serving "
        f"{_fallback_name(job.calendar)}"]), job.series, job.calendar)


def _trim(panel: Panel, max_months: int) -> Panel:
    """Series longer than ``max_months`` periods keep their most recent ones (the exact GP's cost grows
    with the cube of the length, the state-space GP's linearly); each trimmed series is logged."""
    kept = []
    calendar = panel.calendar
    flag = "raise --max-months to use more" if calendar.monthly else "the state-space GP's limit"
    for s in panel:
        if len(s) > max_months:
            log.warning("%s: %d %ss; training on the most recent %d (from %s); %s", s.id, len(s), calendar.unit,
                        max_months, calendar.label(s.end - max_months + 1), flag)
            s = s.tail_from(len(s) - max_months)
        kept.append(s)
    return dataclasses.replace(panel, series=tuple(kept), skipped=dict(panel.skipped))


def _series_entry(s: Series, result: SeriesResult, holdout: int, calendar: Calendar) -> dict:
    count = calendar.field + "s"  # "months", as always, or "periods"
    entry = {
        "id": s.id,
        "key": series_key(s.id),
        "first": calendar.label(s.start),
        "last": calendar.label(s.end),
        count: len(s),
        "preferred": result.preferred,
        "kinds": list(result.models),
        "uses_regressors": result.uses_regressors,
        "holdout": None if result.holdout_start is None else
        {"start": calendar.label(result.holdout_start), "end": calendar.label(s.end), count: holdout},
        "mean_volume": float(np.mean(s.y[-calendar.season:])),
    }
    if result.notes:
        entry["notes"] = result.notes
    return entry


def run(cfg: RunConfig) -> dict:
    """Train, evaluate and save. Returns the committed manifest. Raises DataError on bad input."""
    started = dt.datetime.now(dt.UTC)
    if cfg.holdout is not None:
        check_holdout(cfg.holdout)
    if cfg.max_months < MIN_MONTHS:
        raise DataError(f"max-months must be at least {MIN_MONTHS}, got {cfg.max_months}")
    with timed_step(log, "load", path=str(cfg.data_path)):
        panel = load_panel(cfg.data_path, **cfg.load)
    for sid, why in panel.skipped.items():
        log.warning("%s: left out: %s", sid, why)
    merge = None
    if cfg.actuals_url:
        with timed_step(log, "actuals"):
            logged = read_actuals(cfg.actuals_url, panel.calendar)
            panel, merge = merge_actuals(panel, logged, public_url(cfg.actuals_url))
        log.info("actuals: %d row(s) in the log; %d period(s) appended to %d series; %d disagreement(s) with the "
                 "data (the data's values kept); %d row(s) not used", merge.rows,
                 sum(map(len, merge.appended.values())), len(merge.appended), len(merge.disagreements),
                 len(merge.unused))
        for d in merge.disagreements:
            log.warning("%s %s: the data has %g, the log %g; the data's value is used", d["series"], d["month"],
                        d["data"], d["log"])
    calendar = panel.calendar
    cfg = cfg.for_calendar(calendar)
    panel = _trim(panel, cfg.max_months)
    unit, least = calendar.unit, calendar.min_length
    if not any(len(s) - cfg.holdout >= least for s in panel):
        longest = max(len(s) for s in panel)
        raise DataError(f"holdout of {cfg.holdout} {unit}s leaves {longest - cfg.holdout} training {unit}s for the "
                        f"longest series; need at least {least} (the data has {longest})")
    log.info("data: %d %s series (%s layout), %s..%s, regressors: %s; holdout %d %ss per series", len(panel),
             calendar.describe(), panel.layout, calendar.label(panel.start), calendar.label(panel.end),
             ", ".join(panel.regressors) or "none", cfg.holdout, unit)

    if cfg.scheduler:  # an unreachable scheduler is said before any work is done
        from MLPipeline.dask_executor import connect

        connect(cfg.scheduler).close()
    data_hash = panel.sha256()
    version = f"{started:%Y%m%dT%H%M%S%fZ}-{data_hash[:8]}"
    with RunLock(cfg.output_dir):
        manifest = _train_and_save(cfg, panel, started, version, data_hash, merge)
    if tracking.enabled():
        with timed_step(log, "tracking"):
            tracking.log_training_run(cfg.output_dir, manifest, _settings(cfg))
    return manifest


def _settings(cfg: RunConfig) -> dict:
    """The run's own choices, as tracked parameters."""
    return {"use_regressors": cfg.use_regressors, "backtest": cfg.backtest, "max_months": cfg.max_months,
            "levels": ",".join(f"{lv:g}" for lv in cfg.levels), "actuals": cfg.actuals_url is not None,
            "gate_margin": cfg.gate_margin, "force": cfg.force}


def _serving_bundle(output_dir: Path):
    """(the served run's bundle, None) or (None, why there is none to compare with)."""
    if not (Path(output_dir) / "manifest.json").exists():
        return None, "no model is being served"
    try:
        return load_bundle(output_dir), None
    except ArtifactError as exc:
        return None, f"the served model cannot be loaded ({exc})"


def _gate(cfg: RunConfig, panel: Panel, results: list[SeriesResult]) -> dict:
    challenger = {r.id: r.holdout[r.preferred] for r in results if r.preferred in r.holdout}
    champion, problem = _serving_bundle(cfg.output_dir)
    decision = gate.compare(panel, challenger, champion, cfg.gate_margin, problem)
    if cfg.force and not decision["published"]:
        decision = {**decision, "published": True, "reason": "published with --force, although "
                    + decision["reason"].removeprefix("kept as a candidate: ")}
    return decision


def _train_and_save(cfg: RunConfig, panel: Panel, started: dt.datetime, version: str, data_hash: str,
                    merge=None) -> dict:
    writer = RunWriter(cfg.output_dir, version)
    try:
        drawn = panel.series[:MAX_FIGURE_SERIES] if cfg.plots else ()
        with timed_step(log, "normality"):
            normality = normality_table(panel)
            writer.write_json("normality.json", normality)
        if drawn:
            with timed_step(log, "eda figures", series=len(drawn)):
                for path in eda.write_eda_figures(panel, writer.run_dir / "figures", [s.id for s in drawn]):
                    writer.add_file(path)

        jobs = [SeriesJob(s, panel.regressors, cfg.holdout, cfg.levels, cfg.use_regressors, cfg.kinds, cfg.backtest,
                          panel.calendar) for s in panel]
        with timed_step(log, "training", series=len(jobs), models=len(jobs) * len(cfg.kinds)):
            results = map_series(train_series, jobs, n_jobs=cfg.n_jobs, what="training", scheduler=cfg.scheduler,
                                 on_error=_lost)
        for s, r in zip(panel, results, strict=True):
            scores = " / ".join(f"{k} {m['smape']:.2f}" for k, m in r.metrics.items() if m.get("smape") is not None)
            log.info("%s: serves %s; %s; holdout sMAPE %s%s", s.id, r.preferred, r.selection["regressor_reason"],
                     scores or "not evaluated", "".join(f"; note: {n}" for n in r.notes))

        if drawn:
            with timed_step(log, "forecast figures"):
                for s, r in zip(panel.series[:len(drawn)], results, strict=False):
                    for kind, fc in r.holdout.items():
                        n_train = len(s) - len(fc)
                        y, _ = s.to_pandas(calendar=panel.calendar)
                        path = eda.write_forecast_figure(
                            y.iloc[:n_train], y.iloc[n_train:], fc, f"{s.id}: {kind} model, holdout forecast",
                            writer.run_dir / "figures" / f"holdout_{series_key(s.id)}_{kind}.png",
                            calendar=panel.calendar)
                        writer.add_file(path)

        with timed_step(log, "save"):
            for r in results:
                for kind, model in r.models.items():
                    writer.write_model(r.id, kind, model)
            writer.write_tables([r.table for r in results])
            writer.write_bytes("data.csv", panel.long_frame().to_csv(index=False, float_format="%.10g").encode())
            metrics = {r.id: r.metrics for r in results}
            writer.write_json("metrics.json", metrics)
            holdout = {(r.id, k): fc for r in results for k, fc in r.holdout.items()}
            writer.write_json("holdout.json", holdout_records(holdout, panel.calendar))
            entries = [_series_entry(s, r, cfg.holdout, panel.calendar) for s, r in zip(panel, results, strict=True)]
        with timed_step(log, "gate"):
            decision = _gate(cfg, panel, results)
        log.info("gate: %s", decision["reason"])
        with timed_step(log, "commit"):
            manifest_body = {
                "trained_at": started.isoformat(timespec="seconds"),
                "training_seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2),
                "data": {
                    "source": Path(cfg.data_path).name,
                    "file_sha256": sha256_file(Path(cfg.data_path)),
                    "data_sha256": data_hash,
                    "layout": panel.layout,
                    "n_series": len(panel),
                    "n_months": panel.end - panel.start + 1,
                    "skipped": panel.skipped,
                },
                "frequency": panel.frequency,
                "train_window": {"start": panel.calendar.label(panel.start), "end": panel.calendar.label(panel.end)},
                "holdout_months": cfg.holdout,
                "kinds": list(cfg.kinds),
                "regressors": list(panel.regressors),
                "levels": list(cfg.levels),
                "figures": [s.id for s in drawn],
                "series": entries,
                "fallbacks": [r.id for r in results if r.fallback],
                "selection": {r.id: r.selection for r in results},
                "metrics": metrics,
                "gate": decision,
            }
            if merge is not None:
                manifest_body["actuals"] = merge.as_dict()
            report = render_report(manifest_body, normality, version, plots=bool(drawn))
            if merge is not None:
                report += actuals_section(merge, panel.regressors)
            report += gate.report_section(decision)
            writer.write_bytes("report.md", report.encode())
            manifest = writer.commit(manifest_body, publish=decision["published"], keep=cfg.keep)
    except BaseException:
        writer.abort()
        raise
    log.info("saved model version %s to %s%s", version, cfg.output_dir,
             "" if decision["published"] else " as a candidate (not served)")
    return manifest

