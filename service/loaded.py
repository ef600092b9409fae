"""The model a worker serves: one verified bundle plus what requests need, computed once at load.

:func:`prepare` builds a :class:`LoadedModel` from a verified bundle (every file's sha256 checked)
without unpickling or running a model: per series its served range, its regressor history and the
values assumed for months after its window, the month tables of the univariate preferred models
(computed and checked finite at training; :mod:`service.tables`), each model's facts from its
manifest entry, the orders the dashboard and ``GET /series`` page through, and the body of
``GET /model``. Nothing here is per request, and nothing a request does costs O(series).
"""

from __future__ import annotations

import bisect
import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from MLPipeline.artifacts import ArtifactError, ModelBundle, SeriesInfo
from MLPipeline.calendars import MONTHLY, Calendar
from MLPipeline.served_tables import served_last
from service.cache import PredictionCache
from service.errors import ApiError
from service.metrics import series_labels
from service.tables import MonthTables

#: GET /model lists the models of this many series (GET /series pages through all of them).
MODEL_INFO_SERIES = 50


@dataclass(frozen=True)
class ServedSeries:
    """One series as the service sees it (periods are ordinals of the model's calendar)."""

    info: SeriesInfo
    last_served: int
    #: the series' regressor rows over its training window (None without regressors)
    x: np.ndarray | None
    #: regressor values assumed for periods after the window: the median of the last season of training data
    assumed: np.ndarray | None

    @property
    def id(self) -> str:
        return self.info.id

    def regressors_at(self, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, from_history) for months: the training data's rows inside the window, else the
        assumed values; ``from_history`` marks the rows taken from the data."""
        inside = (ordinals >= self.info.first) & (ordinals <= self.info.last)
        rows = np.tile(self.assumed, (len(ordinals), 1))
        rows[inside] = self.x[ordinals[inside] - self.info.first]
        return rows, inside


@dataclass(frozen=True)
class ModelFacts:
    """What requests ask of a model before (or instead of) calling it, read once at load time, so
    the common path needs no model object in memory (:mod:`service.model_store` loads them lazily)."""

    first: int  # the first period it serves (ordinal)
    regressors: tuple[str, ...]
    sums_path: bool
    kernel: str | None = None
    log_marginal_likelihood: float | None = None


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    version: str
    loaded_at: str
    regressors: tuple[str, ...]
    series: dict[str, ServedSeries]  # in data order
    info: dict[str, Any] = field(default_factory=dict)
    #: (series, kind) -> MonthTable for the preferred models without regressors (service.tables)
    tables: Mapping[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)
    #: answers already computed for this model (service.cache); a reload starts a new one
    cache: PredictionCache = field(default_factory=PredictionCache, compare=False, repr=False)
    #: series ids sorted for listings: "data", "volume" (recent mean, largest first), "error" (holdout
    #: sMAPE, worst first; series without one last)
    orders: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: series with their own label value in the Prometheus metrics (service.metrics)
    metric_series: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    #: (casefolded id, id), sorted: prefix search in O(log n)
    by_name: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    _folded: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)
    #: (series, kind) -> ModelFacts for every model of the bundle
    facts: dict[tuple[str, str], ModelFacts] = field(default_factory=dict, compare=False, repr=False)
    #: the periods the model counts in (months, or the steps of another frequency)
    calendar: Calendar = MONTHLY

    @property
    def ids(self) -> tuple[str, ...]:
        """Series ids in data order: the tuple built at load (requests read it, never rebuild it)."""
        return self.orders.get("data") or tuple(self.series)

    def forecaster(self, series_id: str, kind: str):
        """The model itself (loaded now if it is not in memory; its file is verified again)."""
        try:
            return self.bundle.models[(series_id, kind)]
        except ArtifactError as exc:  # the file changed under the served manifest: not this model
            raise ApiError(503, "model_not_loaded", f"the {kind!r} model of {series_id!r} cannot be loaded: "
                                                    f"{exc}") from None

    def kind_for(self, series_id: str, requested: str | None) -> str:
        return requested or self.series[series_id].info.preferred

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """Up to ``n`` series ids like ``name``: same letters ignoring case first, then similar ones.

        Only on the error path; the similarity search is bounded to ids of similar length.
        """
        key = name.casefold()
        folded = self._folded.get(key, [])
        if len(folded) >= n:
            return folded[:n]
        width = max(3, len(name) // 3)
        nearby = [k for k in self._folded if abs(len(k) - len(key)) <= width][:20_000]
        similar = [sid for k in difflib.get_close_matches(key, nearby, n=n, cutoff=0.6) for sid in self._folded[k]]
        return list(dict.fromkeys(folded + similar))[:n]


def _assumed(x: np.ndarray | None, calendar: Calendar) -> np.ndarray | None:
    if x is None:
        return None
    return np.median(x[-calendar.season:], axis=0)


def _smape_of(bundle: ModelBundle, series_id: str) -> float:
    metrics = (bundle.manifest.get("metrics") or {}).get(series_id) or {}
    value = (metrics.get(bundle.series[series_id].preferred) or {}).get("smape")
    return float("inf") if value is None else float(value)


def prepare(bundle: ModelBundle) -> LoadedModel:
    """Check a freshly loaded bundle can serve, and precompute what requests need."""
    if not bundle.series:
        raise ValueError("the manifest names no series")
    regressors = tuple(bundle.regressors)
    calendar = bundle.calendar
    served = {}
    for sid, info in bundle.series.items():
        history = bundle.history[sid]
        x = history.x if regressors else None
        if x is not None and (history.start != info.first or len(history) != info.last - info.first + 1):
            raise ValueError(f"the saved data of series {sid!r} does not cover its training window")
        served[sid] = ServedSeries(info, served_last(info.last, calendar), x, _assumed(x, calendar))
    facts = {(art["series"], art["kind"]): _facts(art, calendar) for art in bundle.manifest["artifacts"]}
    if bundle.table_values is None or bundle.table_index is None:
        raise ValueError("the bundle has no month tables")
    tables = MonthTables(bundle.table_values, bundle.table_index, {sid: s.info.preferred for sid, s in served.items()})
    folded: dict[str, list[str]] = {}
    for sid in served:
        folded.setdefault(sid.casefold(), []).append(sid)
    volume = tuple(sorted(served, key=lambda sid: -served[sid].info.mean_volume))
    scored = {sid: _smape_of(bundle, sid) for sid in served}
    error = tuple(sorted(served, key=lambda sid: (scored[sid] == float("inf"), -scored[sid])))
    loaded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return LoadedModel(bundle=bundle, version=str(bundle.version), loaded_at=loaded_at, regressors=regressors,
                       series=served, info=describe(bundle, loaded_at, facts), tables=tables,
                       orders={"data": tuple(served), "volume": volume, "error": error},
                       by_name=tuple(sorted((sid.casefold(), sid) for sid in served)), _folded=folded,
                       metric_series=series_labels(served), facts=facts, calendar=calendar)


def _facts(art: dict, calendar: Calendar) -> ModelFacts:
    """A model's facts from its manifest entry (MLPipeline.artifacts.model_facts wrote them)."""
    lml = art.get("log_marginal_likelihood")
    return ModelFacts(first=calendar.ordinal(art["first"]), regressors=tuple(art["regressors"]),
                      sums_path=bool(art["sums_path"]), kernel=art.get("kernel"),
                      log_marginal_likelihood=None if lml is None else float(lml))


def describe(bundle: ModelBundle, loaded_at: str, facts: dict[tuple[str, str], ModelFacts]) -> dict[str, Any]:
    """The body of GET /model (the models of the first MODEL_INFO_SERIES series)."""
    manifest = bundle.manifest or {}
    versions = manifest.get("libraries") or {}
    holdout = manifest.get("metrics") or {}
    models = []
    for sid in list(bundle.series)[:MODEL_INFO_SERIES]:
        info = bundle.series[sid]
        for kind in info.kinds:
            fact = facts[(sid, kind)]
            models.append({
                "domain": sid,
                "kind": kind,
                "preferred": info.preferred == kind,
                "kernel": fact.kernel,
                "regressors": list(fact.regressors),
                "log_marginal_likelihood": fact.log_marginal_likelihood,
                "holdout": (holdout.get(sid) or {}).get(kind),
            })
    window = manifest.get("train_window") or {}
    return {
        "model_version": str(bundle.version),
        "trained_at": str(bundle.trained_at),
        "train_start": window.get("start"),
        "train_end": window.get("end"),
        "loaded_at": loaded_at,
        "frequency": bundle.frequency,
        "series_count": len(bundle.series),
        "domains": list(bundle.series)[:MODEL_INFO_SERIES],
        "kinds": list(manifest.get("kinds") or []),
        "regressors": list(bundle.regressors),
        "preferred": {sid: bundle.series[sid].preferred for sid in list(bundle.series)[:MODEL_INFO_SERIES]},
        "models": models,
        "library_versions": {str(k): str(v) for k, v in versions.items()},
    }


def starting_with(model: LoadedModel, prefix: str) -> tuple[int, int]:
    """The slice of ``model.by_name`` whose ids start with ``prefix`` ignoring case (binary search)."""
    key = prefix.casefold()
    names = model.by_name
    return bisect.bisect_left(names, (key,)), bisect.bisect_left(names, (key + "\U0010ffff",))


def series_summary(model: LoadedModel, series_id: str) -> dict[str, Any]:
    """One entry of GET /series."""
    s = model.series[series_id]
    info = s.info
    calendar = model.calendar
    metrics = ((model.bundle.manifest.get("metrics") or {}).get(series_id) or {}).get(info.preferred) or {}
    return {
        "id": series_id,
        "first": calendar.label(info.first),
        "last": calendar.label(info.last),
        calendar.field + "s": info.last - info.first + 1,
        "kind": info.preferred,
        "uses_regressors": info.uses_regressors,
        "mean_volume": info.mean_volume,
        "holdout_smape": metrics.get("smape"),
        "holdout_mase": metrics.get("mase"),
        "notes": list(info.notes),
    }
