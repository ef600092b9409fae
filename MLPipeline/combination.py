"""How an ensemble combines its members, decided per series from that series' training data only.

A rule maps the members' backtest errors inside the training window to the numbers that combine
their forecasts; :func:`combine` applies them to the members' forecast columns (means and bounds
alike, so each quantile is combined the way the mean is). Rules:

* ``median`` — the plain median of the members (no backtest needed);
* ``mean`` — equal weights;
* ``inverse`` — weights proportional to 1 / backtest MAE;
* ``softmax`` — weights proportional to exp(-(MAE / best MAE - 1) / temperature);
* ``select`` — the member with the lowest backtest MAE alone;
* ``weighted-median`` — the weighted median of the members with the ``inverse`` weights;
* ``trim`` — the median of the members without the one with the highest backtest MAE;
* ``shrink`` — the median moved towards one lead member (a GP) by the share in ``SHRINK_GRID`` whose
  combined forecast had the lowest backtest MAE: the lead leads where it was right, the median
  protects elsewhere.

The backtest (:func:`member_backtests`) refits every member at yearly origins inside the training
window and keeps its forecasts of the following months; nothing after the training window is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RULES = ("median", "mean", "inverse", "softmax", "select", "weighted-median", "trim", "shrink")
#: Rules that need the members' backtest errors.
BACKTEST_RULES = frozenset(RULES) - {"median", "mean"}
SHRINK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
SOFTMAX_TEMPERATURE = 0.25


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"combination rule must be one of {', '.join(RULES)}, got {rule!r}")
    return rule


def member_backtests(make_members, y: pd.Series, X: pd.DataFrame | None = None, *, folds: int = 3,
                     horizon: int = 12, min_train: int = 24, levels=(80,)) -> dict:
    """Every member refitted at the last ``folds`` yearly origins of ``y`` and its forecasts.

    ``make_members()`` returns fresh unfitted members (uncalibrated: calibration moves bounds, not
    means). Returns ``{"origins": [...], "actual": (points,), "means": (members, points), "values":
    (members, points, columns)}`` (the forecast columns at ``levels``) with every origin's months
    concatenated; empty when the series is too short for one origin.
    """
    n, actual, means, origins = len(y), [], [], []
    for k in range(1, folds + 1):
        origin = n - horizon * k
        if origin < min_train:
            break
        steps = min(horizon, n - origin)
        x_train = None if X is None else X.iloc[:origin]
        x_future = None if X is None else X.iloc[origin:origin + steps]
        fold = []
        for member in make_members():
            member.fit(y.iloc[:origin], x_train)
            future = member.predict(steps, x_future if member.regressors_ else None, level=levels)
            fold.append(future.to_numpy(dtype=float))
        origins.append(origin)
        actual.append(y.iloc[origin:origin + steps].to_numpy(dtype=float))
        means.append(np.array(fold))
    if not origins:
        return {"origins": [], "actual": np.empty(0), "means": np.empty((0, 0)), "values": np.empty((0, 0, 0))}
    values = np.concatenate(means, axis=1)
    return {"origins": origins, "actual": np.concatenate(actual), "means": values[:, :, 0], "values": values}


def _mae(means: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Backtest MAE per member (rows of ``means``); a tiny floor keeps a perfect member finite."""
    mae = np.mean(np.abs(means - actual[None, :]), axis=1)
    return np.maximum(mae, 1e-9 * (np.mean(np.abs(actual)) + 1e-12))


def inverse_weights(mae: np.ndarray) -> np.ndarray:
    w = 1.0 / np.asarray(mae, dtype=float)
    return w / w.sum()


def softmax_weights(mae: np.ndarray, temperature: float = SOFTMAX_TEMPERATURE) -> np.ndarray:
    # Relative to the best member, so the temperature means the same on every scale.
    relative = np.asarray(mae, dtype=float) / np.min(mae) - 1.0
    w = np.exp(-relative / temperature)
    return w / w.sum()


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median over axis 0 of ``values`` (members first), elementwise.

    The lower weighted median, averaged with the next value where the cumulative weight hits one
    half exactly (so equal weights give the plain median).
    """
    values = np.asarray(values, dtype=float)
    flat = values.reshape(len(values), -1)
    order = np.argsort(flat, axis=0, kind="stable")
    ordered = np.take_along_axis(flat, order, axis=0)
    cum = np.cumsum(np.asarray(weights, dtype=float)[order], axis=0)
    half = 0.5 * cum[-1]
    first = np.argmax(cum >= half * (1 - 1e-12), axis=0)
    lower = np.take_along_axis(ordered, first[None], axis=0)[0]
    upper = np.take_along_axis(ordered, np.minimum(first + 1, len(flat) - 1)[None], axis=0)[0]
    exact = np.isclose(np.take_along_axis(cum, first[None], axis=0)[0], half)
    return np.where(exact, 0.5 * (lower + upper), lower).reshape(values.shape[1:])


def fit_rule(rule: str, backtest: dict | None, *, lead: int = 0) -> dict:
    """The learned state of ``rule`` from a :func:`member_backtests` result (training data only).

    Returns ``{"rule", "weights"}`` for weighting rules, ``{"rule", "member"}`` for ``select`` /
    ``trim`` (the member chosen / dropped), ``{"rule", "lead", "share"}`` for ``shrink``. Without a
    backtest (a series too short for one origin) every rule falls back to the median.
    """
    check_rule(rule)
    if rule == "median" or backtest is None or not len(backtest["actual"]):
        return {"rule": "median"}
    means, actual = backtest["means"], backtest["actual"]
    if rule == "mean":
        return {"rule": rule, "weights": np.full(len(means), 1.0 / len(means))}
    mae = _mae(means, actual)
    if rule in ("inverse", "weighted-median"):
        return {"rule": rule, "weights": inverse_weights(mae), "mae": mae}
    if rule == "softmax":
        return {"rule": rule, "weights": softmax_weights(mae), "mae": mae}
    if rule == "select":
        return {"rule": rule, "member": int(np.argmin(mae)), "mae": mae}
    if rule == "trim":
        return {"rule": rule, "member": int(np.argmax(mae)), "mae": mae}
    # shrink: the share of the way from the median to the lead member with the lowest backtest MAE
    median = np.median(means, axis=0)
    errors = [np.mean(np.abs(median + s * (means[lead] - median) - actual)) for s in SHRINK_GRID]
    return {"rule": rule, "lead": lead, "share": float(SHRINK_GRID[int(np.argmin(errors))])}


def combine(parts, state: dict) -> np.ndarray:
    """Combine the members' forecast arrays ``parts`` (members on axis 0) by a :func:`fit_rule` state."""
    parts = np.asarray(parts, dtype=float)
    rule = state["rule"]
    if rule == "median":
        return np.median(parts, axis=0)
    if rule in ("mean", "inverse", "softmax"):
        return np.tensordot(state["weights"], parts, axes=1)
    if rule == "weighted-median":
        return weighted_median(parts, state["weights"])
    if rule == "select":
        return parts[state["member"]].copy()
    if rule == "trim":
        return np.median(np.delete(parts, state["member"], axis=0), axis=0)
    median = np.median(parts, axis=0)
    return median + state["share"] * (parts[state["lead"]] - median)


def mixture_weights(state: dict, n_members: int) -> np.ndarray:
    """The members' weights in the combined predictive mixture (for its std): the rule's weights, the
    selected member alone, the kept members equally, or equal weights for the median rules."""
    if "weights" in state:
        return np.asarray(state["weights"], dtype=float)
    w = np.full(n_members, 1.0)
    if state["rule"] == "select":
        w = np.zeros(n_members)
        w[state["member"]] = 1.0
    elif state["rule"] == "trim":
        w[state["member"]] = 0.0
    return w / w.sum()
