"""The request logic behind the views, as plain functions (no Flask): predict, forecast, anomalies.

Each takes a :class:`service.loaded.LoadedModel` and already-validated inputs (instances carry a
``month`` or ``period`` and a ``regressors`` mapping of the values given) and returns plain dicts ready
for JSON. Periods are ordinals of the model's calendar inside; rows name them ``month`` for a monthly
model, as always, and ``period`` (ISO 8601 UTC) for any other.
Where a number comes from (month table, cache, model) is :mod:`service.answers`' business. Problems
that depend on the loaded model (an unknown series or regressor, a month outside the served range)
raise :class:`service.errors.ApiError` with status 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from MLPipeline.intervals import interval_columns
from service.answers import Inputs, answer_at, answer_path, unprocessable

#: /predict without ``domains`` answers every series only up to this many (no unbounded responses).
MAX_SERIES_BY_DEFAULT = 50
#: Rows (instances x series) one response may hold.
MAX_ROWS = 10_000


def _field(prefix: str | None, index: int, name: str) -> str:
    return f"{prefix}[{index}].{name}" if prefix else name


# ------------------------------------------------------------------ checks


def check_series(model, series_id: str, field: str) -> str:
    """``series_id`` if the model has it, else 422 unknown_domain naming up to five close matches."""
    if series_id in model.series:
        return series_id
    close = model.close_matches(series_id)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; GET /series lists them"
    shown = series_id if len(series_id) <= 80 else series_id[:77] + "..."
    raise unprocessable("unknown_domain", f"this model has no series {shown!r}{hint}", field)


def check_regressors(model, given: Mapping[str, Any], field: str | None) -> None:
    unknown = [name for name in given if name not in model.regressors]
    if unknown:
        known = ", ".join(model.regressors) or "none"
        where = f"{field}." if field else ""
        raise unprocessable("unknown_field", f"unknown field {unknown[0]!r}: neither a field of this request nor "
                                             f"one of the model's regressors ({known})", f"{where}{unknown[0]}")


def _kind_available(model, series_id: str, kind: str, field: str) -> None:
    if (series_id, kind) not in model.bundle.models:
        raise unprocessable("kind_unavailable", f"no {kind!r} model is loaded for {series_id!r}", field)


def _check_range(model, series_id: str, kind: str, ordinals: np.ndarray, prefix: str | None,
                 fields: Sequence[str]) -> None:
    first = model.facts[(series_id, kind)].first
    last = model.series[series_id].last_served
    bad = (ordinals < first) | (ordinals > last)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        calendar = model.calendar
        raise unprocessable(
            f"{calendar.field}_out_of_range",
            f"{calendar.field} {calendar.label(ordinals[i])} is outside the range the {series_id!r} model serves: "
            f"{calendar.label(first)} to {calendar.label(last)} (its training window plus {calendar.max_horizon} "
            f"{calendar.unit}s)",
            _field(prefix, i, fields[i]),
        )


def _at(item: Any) -> tuple[str, str]:
    """(field, text) of an item's period: the schemas' ``at``, or a plain object's ``month``."""
    at = getattr(item, "at", None)
    return at if at is not None else ("month", item.month)


def periods_of(model, items: Sequence[Any], prefix: str | None) -> tuple[np.ndarray, list[str], list[str]]:
    """(ordinals, their labels for the rows, the field each item gave)."""
    calendar = model.calendar
    ordinals = np.empty(len(items), dtype=np.int64)
    labels, fields = [], []
    for i, item in enumerate(items):
        name, text = _at(item)
        if name == "month" and not calendar.monthly:
            raise unprocessable("period_required", f"this model is {calendar.frequency}: give 'period' (an ISO "
                                f"8601 timestamp such as {calendar.label(model.series[model.ids[0]].info.last + 1)}), "
                                "not 'month'", _field(prefix, i, "month"))
        try:
            # a period on a monthly model names its month (as a month's YYYY-MM-DD does)
            ordinals[i] = calendar.ordinal(text[:7] if calendar.monthly else text)
        except ValueError as exc:
            raise unprocessable("invalid_period", f"{text!r}: {exc}", _field(prefix, i, name)) from None
        labels.append(text if calendar.monthly and name == "month" else calendar.label(ordinals[i]))
        fields.append(name)
    return ordinals, labels, fields


# -------------------------------------------------------------- regressors


def _given(model, items: Sequence[Any]) -> np.ndarray:
    """(n, k) regressor values the items give (NaN where omitted)."""
    out = np.full((len(items), len(model.regressors)), np.nan)
    for i, item in enumerate(items):
        for j, name in enumerate(model.regressors):
            value = item.regressors.get(name)
            if value is not None:
                out[i, j] = value
    return out


def _filled(model, series_id: str, ordinals: np.ndarray, given: np.ndarray) -> tuple[np.ndarray | None, dict]:
    """The regressor rows for one series: given values, else the training data's (months inside its
    window), else its assumed values. Returns the rows and what had to be filled."""
    if not model.regressors:
        return None, {}
    s = model.series[series_id]
    fill, from_history = s.regressors_at(ordinals)
    missing = np.isnan(given)
    rows = np.where(missing, fill, given)
    return rows, {"history": bool((missing & from_history[:, None]).any()),
                  "assumed": bool((missing & ~from_history[:, None]).any())}


def _values_text(model, series_ids: Sequence[str]) -> str:
    """The assumed values, when every answering series assumes the same."""
    first = model.series[series_ids[0]].assumed
    if all(np.array_equal(model.series[sid].assumed, first) for sid in series_ids[1:]):
        return " (" + ", ".join(f"{n}={v:g}" for n, v in zip(model.regressors, first, strict=True)) + ")"
    return " (each series its own; GET /series/{id} shows them)"


def _assumption(model, filled: list[tuple[str, dict]]) -> str | None:
    notes = []
    unit = model.calendar.unit
    if any(f.get("history") for _, f in filled):
        notes.append(f"omitted regressors for {unit}s inside the training window were taken from the training data")
    assumed = [sid for sid, f in filled if f.get("assumed")]
    if assumed:
        notes.append(f"omitted regressors for {unit}s after the training window were set to the median of the "
                     f"last {model.calendar.season} training {unit}s{_values_text(model, assumed)}")
    return "; ".join(notes) or None


def _unused_note(model, assumption: str | None, unused: Sequence[str], answered: int) -> str | None:
    """Say which answering models ignore the regressors (Engine.py keeps them only where its
    training backtest found they help). When none uses them, notes about filled-in values are moot."""
    if not unused or not model.regressors:
        return assumption
    names = ", ".join(map(repr, unused[:5])) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
    who = "these models do" if len(unused) == answered else f"the {names} model(s) do"
    note = (f"{who} not use {' or '.join(model.regressors)} (the training backtest found they did not help): "
            "the values shown do not change the forecast")
    if len(unused) == answered or not assumption:
        return note
    return f"{assumption}; {note}"


def _path_notes(model, paths: list[tuple[str, Inputs]]) -> str | None:
    """Which months difference models' paths ran through without the request's regressors, one note
    per distinct (months, assumed values), naming the series when not all share it."""
    groups: dict[tuple, list[str]] = {}
    for series_id, inputs in paths:
        gaps = inputs.path_gaps()
        if len(gaps):
            key = (len(gaps), int(gaps[0]), tuple(model.series[series_id].assumed.tolist()))
            groups.setdefault(key, []).append(series_id)
    notes = []
    for (count, first, assumed), ids in groups.items():
        values = ", ".join(f"{n}={v:g}" for n, v in zip(model.regressors, assumed, strict=True))
        who = f" for {', '.join(map(repr, ids[:5]))}{' and more' if len(ids) > 5 else ''}" if len(groups) > 1 else ""
        notes.append(f"the difference model's path ran through {count} month(s) the request does not give "
                     f"(from {model.calendar.label(first)}){who}, with regressors set to the median of the last "
                     f"{model.calendar.season} training months ({values})")
    return "; ".join(notes) or None


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) or None


# ------------------------------------------------------------------ rows


def _rows(model, values: np.ndarray, months: Sequence[str], ordinals: np.ndarray, x: np.ndarray | None,
          common: dict[str, Any], levels: Sequence[float], last: int) -> list[dict[str, Any]]:
    names = model.regressors
    keys = (model.calendar.field, *common, *interval_columns(levels), "fitted", *names)
    fixed = tuple(common.values())
    fitted = (ordinals <= last).tolist()
    regs = x.tolist() if x is not None else [()] * len(months)
    return [dict(zip(keys, (month, *fixed, *vals, inside, *reg), strict=True))
            for month, vals, inside, reg in zip(months, values.tolist(), fitted, regs, strict=True)]


# -------------------------------------------------------------- requests


def predict(model, instances: Sequence[Any], *, domains: Sequence[str] | None = None,
            levels: Sequence[float] = (80.0, 95.0), kind: str | None = None,
            prefix: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Rows for every instance x series (instance-major order) and the assumption text.

    A request seen before is answered from the model's cache (rows copied, so callers may change them).
    """
    key = ("request", tuple((_at(inst), tuple(sorted(inst.regressors.items()))) for inst in instances),
           tuple(domains or ()), tuple(map(float, levels)), kind)
    rows, assumption = model.cache.get_or_compute(
        key, lambda: _predict(model, instances, domains=domains, levels=levels, kind=kind, prefix=prefix),
        size=lambda value: len(value[0]))
    return [dict(row) for row in rows], assumption


def _series_list(model, domains: Sequence[str] | None, instances: int) -> list[str]:
    if domains is None:
        if len(model.series) > MAX_SERIES_BY_DEFAULT:
            raise unprocessable("domains_required", f"this model has {len(model.series)} series: name the ones "
                                f"you want in 'domains' (at most {MAX_SERIES_BY_DEFAULT} are answered without "
                                "it; GET /series lists them)", "domains")
        domains = model.ids
    else:
        domains = [check_series(model, d, f"domains[{i}]") for i, d in enumerate(domains)]
    if len(domains) * instances > MAX_ROWS:
        raise unprocessable("too_many_rows", f"{instances} instance(s) x {len(domains)} series would answer "
                            f"{len(domains) * instances:,} rows; at most {MAX_ROWS:,} per request", "domains")
    return list(domains)


def _predict(model, instances, *, domains, levels, kind, prefix) -> tuple[list[dict[str, Any]], str | None]:
    for i, inst in enumerate(instances):
        check_regressors(model, inst.regressors, _field(prefix, i, "").rstrip(".") if prefix else None)
    series_ids = _series_list(model, domains, len(instances))
    ordinals, month_strings, fields = periods_of(model, instances, prefix)
    given = _given(model, instances)
    per_series, filled, unused, paths = [], [], [], []
    for sid in series_ids:
        chosen = model.kind_for(sid, kind)
        _kind_available(model, sid, chosen, "kind")
        _check_range(model, sid, chosen, ordinals, prefix, fields)
        facts = model.facts[(sid, chosen)]  # the model itself is loaded only if no table answers
        x, what = _filled(model, sid, ordinals, given)
        filled.append((sid, what))
        s = model.series[sid]
        inputs = Inputs(ordinals, x, model.regressors, s.info.last, s.assumed, prefix, model.calendar)
        if not facts.regressors:
            unused.append(sid)
        elif facts.sums_path:
            paths.append((sid, inputs))
        values = answer_at(model, sid, chosen, inputs, levels)
        common = {"domain": sid, "kind": chosen, "model_version": model.version}
        per_series.append(_rows(model, values, month_strings, ordinals, x, common, levels, s.info.last))
    rows = [row for group in zip(*per_series, strict=True) for row in group]
    assumption = _join(_assumption(model, filled), _path_notes(model, paths))
    return rows, _unused_note(model, assumption, unused, len(per_series))


def forecast(model, domain: str, horizon: int, *, regressors: Sequence[Mapping[str, Any]] | None = None,
             levels: Sequence[float] = (80.0, 95.0), kind: str | None = None) -> tuple[str, list[dict[str, Any]], str | None]:
    """The path of the ``horizon`` months after the series' window: (kind, rows, assumption).

    Like :func:`predict`, a request seen before comes from the model's cache (rows copied).
    """
    given = None if regressors is None else tuple(tuple(sorted(r.items())) for r in regressors)
    key = ("forecast", domain, horizon, given, tuple(map(float, levels)), kind)
    chosen, rows, assumption = model.cache.get_or_compute(
        key, lambda: _forecast(model, domain, horizon, regressors=regressors, levels=levels, kind=kind),
        size=lambda value: len(value[1]))
    return chosen, [dict(row) for row in rows], assumption


class _Given:
    def __init__(self, values: Mapping[str, Any] | None):
        self.regressors = dict(values or {})


def _forecast(model, domain, horizon, *, regressors, levels, kind):
    sid = check_series(model, domain, "domain")
    for i, r in enumerate(regressors or ()):
        check_regressors(model, r, f"regressors[{i}]")
    chosen = model.kind_for(sid, kind)
    _kind_available(model, sid, chosen, "kind")
    calendar = model.calendar
    if horizon > calendar.max_horizon:
        raise unprocessable("invalid_horizon", f"horizon {horizon} is longer than this {calendar.frequency} model "
                            f"forecasts: at most {calendar.max_horizon} {calendar.unit}s", "horizon")
    facts = model.facts[(sid, chosen)]
    last = model.series[sid].info.last
    ordinals = last + 1 + np.arange(horizon)
    items = [_Given(r) for r in regressors] if regressors is not None else [_Given(None)] * horizon
    x, what = _filled(model, sid, ordinals, _given(model, items))
    values = answer_path(model, sid, chosen, horizon, x, model.regressors, levels)
    common = {"domain": sid, "kind": chosen, "model_version": model.version}
    months = calendar.labels(ordinals)
    assumption = _unused_note(model, _assumption(model, [(sid, what)]), () if facts.regressors else [sid], 1)
    return chosen, _rows(model, values, months, ordinals, x, common, levels, last), assumption


def anomalies(model, domain: str, observations: Sequence[Any], *, level: float = 99.0,
              kind: str | None = None) -> tuple[str, list[dict[str, Any]], str | None]:
    """Score observations against the model: (kind, rows in the order given, assumption).

    z = (value - mean) / std; p = two-sided normal tail probability of |z|; an observation is
    an anomaly when it falls outside the ``level`` % prediction interval.
    """
    sid = check_series(model, domain, "domain")
    for i, obs in enumerate(observations):
        check_regressors(model, obs.regressors, f"observations[{i}]")
    chosen = model.kind_for(sid, kind)
    _kind_available(model, sid, chosen, "kind")
    ordinals, month_strings, fields = periods_of(model, observations, "observations")
    _check_range(model, sid, chosen, ordinals, "observations", fields)
    x, what = _filled(model, sid, ordinals, _given(model, observations))
    s = model.series[sid]
    inputs = Inputs(ordinals, x, model.regressors, s.info.last, s.assumed, "observations", model.calendar)
    values = answer_at(model, sid, chosen, inputs, [level])
    facts = model.facts[(sid, chosen)]
    path = _path_notes(model, [(sid, inputs)]) if facts.regressors and facts.sums_path else None
    assumption = _unused_note(model, _join(_assumption(model, [(sid, what)]), path),
                              () if facts.regressors else [sid], 1)
    mean, std, lower, upper = values.T
    observed = np.array([obs.value for obs in observations], dtype=float)
    z = (observed - mean) / np.maximum(std, np.finfo(float).tiny)
    p = 2.0 * stats.norm.sf(np.abs(z))
    outside = (observed < lower) | (observed > upper)
    rows = []
    for i, month in enumerate(month_strings):
        row = {model.calendar.field: month, "value": float(observed[i]), "mean": float(mean[i]), "std": float(std[i]),
               "lower": float(lower[i]), "upper": float(upper[i]), "z_score": float(np.clip(z[i], -1e300, 1e300)),
               "p_value": float(p[i]), "anomaly": bool(outside[i])}
        if x is not None:
            row.update(zip(model.regressors, x[i].tolist(), strict=True))
        rows.append(row)
    return chosen, rows, assumption
