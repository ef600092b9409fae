"""The work behind the views, as plain functions (no Flask): predict, forecast, anomalies, describe.

Each takes a :class:`service.registry.LoadedModel` and already-validated inputs and returns plain
dicts ready for JSON. Batches are vectorised: one ``predict_at`` call per (domain, kind) group
(more only when a batch repeats a month, since the forecaster looks regressors up by month).
Problems that depend on the loaded model (a month outside the served range, a prediction that is
not finite) raise :class:`service.errors.ApiError` with status 422.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from MLPipeline.config import DOMAINS, KINDS, MONTH_FREQ, REGRESSORS, SEASON_LENGTH
from MLPipeline.forecaster import interval_columns
from MLPipeline.months import format_month
from service.errors import ApiError
from service.schemas import MAX_HORIZON
from service.tables import build_tables

#: How often one request may repeat a month with different regressors (what-if scenarios). The
#: forecaster looks regressors up by month, so each repeat costs another predict_at call per
#: domain (a few ms); this bound keeps the worst 1,000-instance batch well under a second.
MAX_REPEATS = 50


def _unprocessable(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(422, code, message, field)


def _field(prefix: str | None, index: int, name: str) -> str:
    return f"{prefix}[{index}].{name}" if prefix else name


# ------------------------------------------------------------------- loading


def prepare(bundle) -> Any:
    """Check a freshly loaded bundle can serve, and precompute what requests need."""
    from service.registry import LoadedModel

    missing = [
        d for d in DOMAINS if d not in bundle.preferred or (d, bundle.preferred[d]) not in bundle.models
    ]
    if missing:
        raise ValueError(f"no preferred model for domain(s) {', '.join(missing)}")
    history = bundle.history[list(REGRESSORS)].astype(float)
    assumed = {name: float(history[name].iloc[-SEASON_LENGTH:].median()) for name in REGRESSORS}
    train_end = pd.Timestamp(bundle.train_end)
    for (domain, kind), forecaster in bundle.models.items():  # every model must predict, finitely
        check = forecaster.predict_at([train_end], X=history.loc[[train_end]], level=(95,))
        if not np.isfinite(check.to_numpy(dtype=float)).all():
            raise ValueError(f"model {domain}/{kind} predicts non-finite values")
    last_month = train_end + pd.DateOffset(months=MAX_HORIZON)
    # The preferred models answer most requests: their whole range, precomputed (service.tables).
    preferred = {(d, bundle.preferred[d]): bundle.models[(d, bundle.preferred[d])] for d in DOMAINS}
    tables = build_tables(preferred, lambda forecaster: forecaster.first_month(), last_month)
    loaded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return LoadedModel(
        bundle=bundle,
        version=str(bundle.version),
        loaded_at=loaded_at,
        history=history,
        assumed=assumed,
        first_month=pd.Timestamp(bundle.train_start),
        last_month=last_month,
        info=describe(bundle, loaded_at),
        tables=tables,
    )


def describe(bundle, loaded_at: str) -> dict[str, Any]:
    """The body of GET /model."""
    manifest = bundle.manifest or {}
    versions = manifest.get("libraries") or {}
    holdout = manifest.get("metrics") or {}  # domain -> kind -> holdout metrics, from Engine.py
    models = []
    for (domain, kind), forecaster in sorted(bundle.models.items(), key=lambda item: _order(item[0])):
        lml = getattr(forecaster, "log_marginal_likelihood_", None)
        models.append(
            {
                "domain": domain,
                "kind": kind,
                "preferred": bundle.preferred.get(domain) == kind,
                "kernel": str(forecaster.kernel_),
                "regressors": list(forecaster.regressors_),
                "log_marginal_likelihood": None if lml is None or not np.isfinite(lml) else float(lml),
                "holdout": (holdout.get(domain) or {}).get(kind),
            }
        )
    return {
        "model_version": str(bundle.version),
        "trained_at": str(bundle.trained_at),
        "train_start": format_month(bundle.train_start),
        "train_end": format_month(bundle.train_end),
        "loaded_at": loaded_at,
        "domains": list(DOMAINS),
        "kinds": list(KINDS),
        "regressors": list(REGRESSORS),
        "preferred": {d: bundle.preferred[d] for d in DOMAINS},
        "models": models,
        "library_versions": {str(k): str(v) for k, v in versions.items()},
    }


def _order(key: tuple[str, str]) -> tuple[int, int]:
    domain, kind = key
    return (
        DOMAINS.index(domain) if domain in DOMAINS else len(DOMAINS),
        KINDS.index(kind) if kind in KINDS else 0,
    )


# ---------------------------------------------------------------- regressors


def _regressors(
    model, months: pd.DatetimeIndex, given: dict[str, Sequence[float | None]]
) -> tuple[pd.DataFrame, str | None]:
    """Regressor values per requested month: given ones, else the training data's, else assumed.

    Returns a frame indexed by ``months`` (duplicates allowed) and the assumption text (None
    when nothing had to be assumed for a month after the training window).
    """
    columns, assumed_any, from_history = {}, False, False
    for name in REGRESSORS:
        values = np.array([np.nan if v is None else v for v in given[name]], dtype=float)
        missing = np.isnan(values)
        if missing.any():
            known = model.history[name].reindex(months).to_numpy()
            from_history |= bool((missing & ~np.isnan(known)).any())
            values = np.where(missing, known, values)
            still = np.isnan(values)
            if still.any():
                assumed_any = True
                values[still] = model.assumed[name]
        columns[name] = values
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(months, name="month"))
    notes = []
    if from_history:
        notes.append(
            "omitted regressors for months inside the training window were taken from the training data"
        )
    if assumed_any:
        values = ", ".join(f"{name}={model.assumed[name]:g}" for name in REGRESSORS)
        notes.append(
            f"omitted regressors for months after the training window were set to the median of the "
            f"last {SEASON_LENGTH} training months ({values})"
        )
    return frame, ("; ".join(notes) or None)


def _check_range(model, months: pd.DatetimeIndex, prefix: str | None, kind_first: pd.Timestamp) -> None:
    bad = (months < kind_first) | (months > model.last_month)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _unprocessable(
            "month_out_of_range",
            f"month {format_month(months[i])} is outside the range this model serves: "
            f"{format_month(kind_first)} to {format_month(model.last_month)} "
            f"(the training window plus {MAX_HORIZON} months)",
            _field(prefix, i, "month"),
        )


def _first_month(model, domain: str, kind: str) -> pd.Timestamp:
    # A model with a difference part needs the previous observed month, so it starts one month later.
    return model.forecaster(domain, kind).first_month()


def _occurrences(keys: list[Any]) -> np.ndarray:
    """For each key, how many times it appeared before (0 for a first occurrence)."""
    seen: dict[Any, int] = {}
    out = np.empty(len(keys), dtype=int)
    for i, key in enumerate(keys):
        out[i] = seen.get(key, 0)
        seen[key] = out[i] + 1
    return out


class _Inputs:
    """One request's months and regressor values, prepared once for every domain it asks for.

    Holds the cache key and, per kind of forecaster, the forecaster calls (months and X frames),
    so the work per domain is one forecaster call per distinct call, or a cache look-up.
    """

    def __init__(self, model, regressors: pd.DataFrame, field: str | None = None) -> None:
        self.months = pd.DatetimeIndex(regressors.index, name="month")
        self.x = regressors[list(REGRESSORS)].to_numpy(dtype=float)
        self.ordinals = self.months.to_numpy().astype("datetime64[M]").astype(np.int64) + _EPOCH
        self.key = (self.months.asi8.tobytes(), self.x.tobytes())
        self.field = field
        self._assumed = np.array([model.assumed[name] for name in REGRESSORS], dtype=float)
        self._train_end = _ordinal(pd.Timestamp(model.bundle.train_end))
        self._plans: dict[tuple[bool, bool], tuple] = {}

    def path_gaps(self) -> np.ndarray:
        """Months after the training window, up to the last one asked for, that the request lacks:
        a difference model's path runs through them with the assumed regressors."""
        path = np.arange(self._train_end + 1, self.ordinals.max() + 1)
        return path[~np.isin(path, self.ordinals)]

    def plan(self, use_x: bool, path: bool) -> tuple[np.ndarray | None, int, list]:
        """(rows back to request order or None, distinct rows, [(rows, months, X), ...]).

        Identical (month, regressors) rows are predicted once. The forecaster looks regressors up
        by month, so a month repeated with different regressors goes to a separate call (the k-th
        occurrence of every month in call k); a request without repeats is one call.
        """
        key = (use_x, use_x and path)
        if key not in self._plans:
            self._plans[key] = self._plan(*key)
        return self._plans[key]

    def _plan(self, use_x: bool, path: bool) -> tuple[np.ndarray | None, int, list]:
        ordinals = self.ordinals.tolist()
        keys = list(zip(ordinals, *self.x.T.tolist(), strict=True)) if use_x else ordinals
        first: dict[Any, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        back = None
        distinct = np.arange(len(keys))
        if len(first) < len(keys):  # repeated rows: predict the distinct ones, then map back
            position = {key: j for j, key in enumerate(first)}
            back = np.array([position[key] for key in keys])
            distinct = np.fromiter(first.values(), dtype=int, count=len(first))
        occurrence = _occurrences(self.ordinals[distinct].tolist())
        if occurrence.max() >= MAX_REPEATS:
            raise _unprocessable(
                "too_many_repeats",
                f"a request may give one month at most {MAX_REPEATS} times with different regressors; "
                "split larger what-if sets over several requests",
                self.field,
            )
        calls = []
        for k in range(int(occurrence.max()) + 1):
            rows = np.flatnonzero(occurrence == k)
            taken = distinct[rows]
            months = self.months[taken]
            x = self._frame(taken, path) if use_x else None
            calls.append((rows, months, x))
        return back, len(distinct), calls

    def _frame(self, taken: np.ndarray, path: bool) -> pd.DataFrame:
        """The regressors of rows ``taken``; with ``path``, also one row for every month on the way
        there that the call lacks: the request's value for that month if it gives one, else the
        assumed value (the same median the response's assumption text states)."""
        ordinals, x = self.ordinals[taken], self.x[taken]
        if path and ordinals.max() > self._train_end:
            steps = np.arange(self._train_end + 1, ordinals.max() + 1)
            missing = steps[~np.isin(steps, ordinals)]
            if len(missing):
                given = {}
                for month, row in zip(self.ordinals.tolist(), self.x, strict=True):
                    given.setdefault(month, row)
                fill = np.array([given.get(month, self._assumed) for month in missing.tolist()])
                ordinals, x = np.concatenate([ordinals, missing]), np.vstack([x, fill])
        index = pd.DatetimeIndex(
            (ordinals - _EPOCH).astype("datetime64[M]").astype("datetime64[ns]"), name="month"
        )
        return pd.DataFrame(x, index=index, columns=list(REGRESSORS))


_EPOCH = 1970 * 12


def _ordinal(month: pd.Timestamp) -> int:
    return month.year * 12 + month.month - 1


def _from_table(model, domain: str, kind: str, ordinals: np.ndarray, levels: Sequence[float]) -> np.ndarray | None:
    """The precomputed rows for these months (range already checked), or None without a table."""
    table = model.tables.get((domain, kind))
    if table is None or not table.covers(levels):
        return None
    return _finite(table.lookup(ordinals, levels))


def _finite(values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all():
        raise _unprocessable("unpredictable_input", "the model gave non-finite values for these inputs")
    return values


def _predict_at(model, domain: str, kind: str, inputs: _Inputs, levels: Sequence[float]) -> np.ndarray:
    """The month table's rows, else :func:`_compute_at` through the loaded model's cache (the key
    is the whole call)."""
    found = _from_table(model, domain, kind, inputs.ordinals, levels)
    if found is not None:
        return found
    forecaster = model.forecaster(domain, kind)
    months, x = inputs.key
    key = (domain, kind, "at", tuple(map(float, levels)), months, x if forecaster.regressors_ else b"")
    return model.cache.get_or_compute(key, lambda: _compute_at(forecaster, inputs, levels))


def _compute_at(forecaster, inputs: _Inputs, levels: Sequence[float]) -> np.ndarray:
    """``predict_at`` for the request's rows (repeats allowed), in request order, as one array."""
    use_x = bool(forecaster.regressors_)
    back, distinct, calls = inputs.plan(use_x, forecaster.sums_path())
    columns = interval_columns(levels)
    out = np.empty((distinct, len(columns)))
    for rows, months, x in calls:
        pred = forecaster.predict_at(months, X=x, level=tuple(levels))
        out[rows] = (pred if list(pred.columns) == columns else pred[columns]).to_numpy(dtype=float)
    _finite(out)
    return out if back is None else out[back]


def _rows(
    values: np.ndarray,
    months: Sequence[str],
    x: np.ndarray,
    common: dict[str, Any],
    levels: Sequence[float],
) -> list[dict[str, Any]]:
    names = ("month", *common, *interval_columns(levels), *REGRESSORS)
    fixed = tuple(common.values())
    return [
        dict(zip(names, (month, *fixed, *vals, *regs), strict=True))
        for month, vals, regs in zip(months, values.tolist(), x.tolist(), strict=True)
    ]


def _kind_available(model, domain: str, kind: str, field: str) -> None:
    if (domain, kind) not in model.bundle.models:
        raise _unprocessable("kind_unavailable", f"no {kind!r} model is loaded for {domain}", field)


# ------------------------------------------------------------------ requests


def predict(
    model,
    instances: Sequence[Any],
    *,
    domains: Sequence[str] | None = None,
    levels: Sequence[float] = (80.0, 95.0),
    kind: str | None = None,
    prefix: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows for every instance x domain (instance-major order) and the assumption text.

    ``instances`` have ``month`` ("YYYY-MM") and optional ``phone_lines``/``channels``;
    ``prefix`` names the list in error fields ("instances" -> "instances[3].month").
    A request seen before is answered from the model's cache without any pandas work (its
    rows are copied, so callers may change them).
    """
    key = (
        "request",
        tuple((inst.month, *(getattr(inst, name) for name in REGRESSORS)) for inst in instances),
        tuple(domains or ()),
        tuple(map(float, levels)),
        kind,
    )
    rows, assumption = model.cache.get_or_compute(
        key,
        lambda: _predict(model, instances, domains=domains, levels=levels, kind=kind, prefix=prefix),
        size=lambda value: len(value[0]),
    )
    return [dict(row) for row in rows], assumption


def _predict(model, instances, *, domains, levels, kind, prefix) -> tuple[list[dict[str, Any]], str | None]:
    month_strings = [inst.month for inst in instances]
    months = pd.DatetimeIndex(pd.to_datetime(month_strings, format="%Y-%m"), name="month")
    given = {name: [getattr(inst, name) for inst in instances] for name in REGRESSORS}
    regressors, assumption = _regressors(model, months, given)
    # Prepared once for all domains: the per-domain work is a forecaster call or a cache look-up.
    inputs, checked, paths, unused = _Inputs(model, regressors, prefix), set(), False, []
    per_domain = []
    for domain in domains or DOMAINS:
        chosen = model.kind_for(domain, kind)
        _kind_available(model, domain, chosen, "kind")
        if chosen not in checked:
            _check_range(model, months, prefix, _first_month(model, domain, chosen))
            checked.add(chosen)
        forecaster = model.forecaster(domain, chosen)
        paths |= bool(forecaster.regressors_) and forecaster.sums_path()
        if not forecaster.regressors_:
            unused.append(domain)
        values = _predict_at(model, domain, chosen, inputs, levels)
        common = {"domain": domain, "kind": chosen, "model_version": model.version}
        per_domain.append(_rows(values, month_strings, inputs.x, common, levels))
    rows = [row for group in zip(*per_domain, strict=True) for row in group]
    assumption = _with_path_note(model, assumption, inputs if paths else None)
    return rows, _unused_note(assumption, unused, len(per_domain))


def _unused_note(assumption: str | None, unused: Sequence[str], answered: int) -> str | None:
    """Say which answering models ignore the regressors (Engine.py keeps them only where its
    training backtest found they help). When none uses them, notes about filled-in values are moot."""
    if not unused:
        return assumption
    who = "these models do" if len(unused) == answered else f"the {', '.join(unused)} model(s) do"
    note = (f"{who} not use {' or '.join(REGRESSORS)} (the training backtest found they did not help): "
            "the values shown do not change the forecast")
    if len(unused) == answered or not assumption:
        return note
    return f"{assumption}; {note}"


def _with_path_note(model, assumption: str | None, inputs: _Inputs | None) -> str | None:
    """The assumption text, plus the months a difference model's path assumed regressors for."""
    gaps = inputs.path_gaps() if inputs is not None else ()
    if not len(gaps):
        return assumption
    values = ", ".join(f"{name}={model.assumed[name]:g}" for name in REGRESSORS)
    note = (
        f"the difference model's path ran through {len(gaps)} month(s) the request does not give "
        f"(from {_format_ordinal(int(gaps[0]))}), with regressors set to the median of the last "
        f"{SEASON_LENGTH} training months ({values})"
    )
    return f"{assumption}; {note}" if assumption else note


def _format_ordinal(ordinal: int) -> str:
    return f"{ordinal // 12:04d}-{ordinal % 12 + 1:02d}"


def forecast(
    model,
    domain: str,
    horizon: int,
    *,
    regressors: Sequence[Any] | None = None,
    levels: Sequence[float] = (80.0, 95.0),
    kind: str | None = None,
) -> tuple[str, list[dict[str, Any]], str | None]:
    """The path of the ``horizon`` months after the training window: (kind, rows, assumption).

    Like :func:`predict`, a request seen before comes from the model's cache (rows copied).
    """
    given = (
        None if regressors is None else tuple(tuple(getattr(r, n) for n in REGRESSORS) for r in regressors)
    )
    key = ("forecast", domain, horizon, given, tuple(map(float, levels)), kind)
    chosen, rows, assumption = model.cache.get_or_compute(
        key,
        lambda: _forecast(model, domain, horizon, regressors=regressors, levels=levels, kind=kind),
        size=lambda value: len(value[1]),
    )
    return chosen, [dict(row) for row in rows], assumption


def _forecast(
    model, domain, horizon, *, regressors, levels, kind
) -> tuple[str, list[dict[str, Any]], str | None]:
    chosen = model.kind_for(domain, kind)
    _kind_available(model, domain, chosen, "kind")
    forecaster = model.forecaster(domain, chosen)
    start = pd.Timestamp(model.bundle.train_end) + pd.DateOffset(months=1)
    months = pd.date_range(start, periods=horizon, freq=MONTH_FREQ, name="month")
    if regressors is None:
        given = {name: [None] * horizon for name in REGRESSORS}
    else:
        given = {name: [getattr(r, name) for r in regressors] for name in REGRESSORS}
    x, assumption = _regressors(model, months, given)
    use_x = bool(forecaster.regressors_)

    def compute() -> np.ndarray:
        path = _ordinal(start) + np.arange(horizon)
        found = _from_table(model, domain, chosen, path, levels)
        if found is not None:
            return found
        pred = forecaster.predict(horizon=horizon, X_future=x if use_x else None, level=tuple(levels))
        return _finite(pred[interval_columns(levels)].to_numpy(dtype=float))

    key = (domain, chosen, "path", horizon, tuple(map(float, levels)))
    if use_x:
        key += (x[list(REGRESSORS)].to_numpy(dtype=float).tobytes(),)
    values = model.cache.get_or_compute(key, compute)
    common = {"domain": domain, "kind": chosen, "model_version": model.version}
    x_values = x[list(REGRESSORS)].to_numpy(dtype=float)
    assumption = _unused_note(assumption, () if use_x else [domain], 1)
    return chosen, _rows(values, [format_month(m) for m in months], x_values, common, levels), assumption


def anomalies(
    model,
    domain: str,
    observations: Sequence[Any],
    *,
    level: float = 99.0,
    kind: str | None = None,
) -> tuple[str, list[dict[str, Any]], str | None]:
    """Score observations against the model: (kind, rows in the order given, assumption).

    z = (value - mean) / std; p = two-sided normal tail probability of |z|; an observation is
    an anomaly when it falls outside the ``level`` % prediction interval.
    """
    chosen = model.kind_for(domain, kind)
    _kind_available(model, domain, chosen, "kind")
    month_strings = [obs.month for obs in observations]
    months = pd.DatetimeIndex(pd.to_datetime(month_strings, format="%Y-%m"), name="month")
    _check_range(model, months, "observations", _first_month(model, domain, chosen))
    given = {name: [getattr(obs, name) for obs in observations] for name in REGRESSORS}
    x, assumption = _regressors(model, months, given)
    inputs = _Inputs(model, x, "observations")
    values = _predict_at(model, domain, chosen, inputs, [level])
    forecaster = model.forecaster(domain, chosen)
    paths = bool(forecaster.regressors_) and forecaster.sums_path()
    assumption = _with_path_note(model, assumption, inputs if paths else None)
    assumption = _unused_note(assumption, () if forecaster.regressors_ else [domain], 1)
    mean, std, lower, upper = values.T
    observed = np.array([obs.value for obs in observations], dtype=float)
    z = (observed - mean) / np.maximum(std, np.finfo(float).tiny)
    p = 2.0 * stats.norm.sf(np.abs(z))
    outside = (observed < lower) | (observed > upper)
    rows = []
    for i, month in enumerate(month_strings):
        rows.append(
            {
                "month": month,
                "value": float(observed[i]),
                "mean": float(mean[i]),
                "std": float(std[i]),
                "lower": float(lower[i]),
                "upper": float(upper[i]),
                "z_score": float(np.clip(z[i], -1e300, 1e300)),
                "p_value": float(p[i]),
                "anomaly": bool(outside[i]),
                REGRESSORS[0]: float(x[REGRESSORS[0]].iloc[i]),
                REGRESSORS[1]: float(x[REGRESSORS[1]].iloc[i]),
            }
        )
    return chosen, rows, assumption
