"""Choose a forecaster kind for one series by a backtest inside its training data.

The Engine calls :func:`choose_kind` per domain with the training split only; the returned
details (backtest figures per kind, origins, reason) go into the manifest and the report.

The ensemble is the default and, unless a ``margin`` is given, it is kept: the backtest is
recorded (and decides whether the regressors help), but not used to switch kinds: replayed on the
accuracy benchmark's development set, switching by two yearly origins lost at every margin tried
(docs/benchmarks.md has the table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from MLPipeline.config import MIN_MONTHS, SEASON_LENGTH
from MLPipeline.ensemble import MEMBERS, combine_members, make_member
from MLPipeline.evaluation import backtest_origins, mase, smape
from MLPipeline.forecaster import GP_KINDS

#: Kinds a backtest compares.
FORECASTER_KINDS: tuple[str, ...] = (*GP_KINDS, "ensemble")

DEFAULT_KIND = "ensemble"
SELECTION_METRIC = "mase"
#: None: keep the default kind whatever the backtest says (see the module docstring); a number:
#: another kind must beat the default's backtest MASE by that fraction to be chosen.
DEFAULT_MARGIN: float | None = None
#: Regressors are used only where they improve the chosen kind's backtest MASE by this fraction
#: (MLPipeline.pipeline); on the call-centre data they never did.
REGRESSOR_MARGIN = 0.25


def _point_forecasts(y_train, x_train, horizon, x_future, random_state) -> dict[str, np.ndarray]:
    """Point forecasts per kind at one origin; the ensemble's is the combination of its members'.

    Members are fitted uncalibrated (calibration moves bounds, not means); the level kind is the
    ensemble's level member, the difference kind is fitted on its own.
    """
    def mean(model):
        return model.fit(y_train, x_train).predict(horizon, x_future)["mean"].to_numpy()

    members = {(kind, transform): mean(make_member(kind, transform, calibrate=False, random_state=random_state))
               for kind, transform, _ in MEMBERS}
    forecasts = {"ensemble": combine_members(list(members.values()))}
    for kind in ("level", "difference"):
        forecasts[kind] = members.get((kind, None))
        if forecasts[kind] is None:
            forecasts[kind] = mean(make_member(kind, None, calibrate=False, random_state=random_state))
    return forecasts


def backtest_kinds(y: pd.Series, X: pd.DataFrame | None = None, *, folds: int = 2,
                   horizon: int = SEASON_LENGTH, random_state: int = 0) -> dict:
    """Mean backtest sMAPE and MASE per kind over the last ``folds`` yearly origins of ``y``.

    The level kind and the ensemble share fits: the ensemble's forecast is the combination
    (median) of its members' forecasts at the same origin.
    """
    origins = backtest_origins(len(y), horizon=horizon, folds=folds, min_train=MIN_MONTHS)
    rows: dict[str, list[dict]] = {k: [] for k in FORECASTER_KINDS}
    for origin in origins:
        y_train, actual = y.iloc[:origin], y.iloc[origin:origin + horizon].to_numpy()
        x_train = None if X is None else X.iloc[:origin]
        x_future = None if X is None else X.iloc[origin:origin + horizon]
        for kind, mean in _point_forecasts(y_train, x_train, horizon, x_future, random_state).items():
            rows[kind].append({"smape": smape(actual, mean), "mase": mase(actual, mean, y_train.to_numpy())})
    scores = {k: {m: float(np.mean([r[m] for r in v])) for m in ("smape", "mase")} for k, v in rows.items() if v}
    return {"origins": [str(y.index[o].date()) for o in origins], "scores": scores}


def choose_kind(y: pd.Series, X: pd.DataFrame | None = None, *, kinds=FORECASTER_KINDS,
                margin: float | None = DEFAULT_MARGIN, folds: int = 2, random_state: int = 0) -> tuple[str, dict]:
    """Pick a kind for ``y`` (training data only) and say why.

    Returns ``(kind, details)``; details hold ``preferred``, ``metric``, ``margin``, ``backtest``
    (per kind: mean sMAPE and MASE over the origins), ``origins`` (first forecast month of each
    fold) and a one-line ``reason``. ``kinds`` limits the candidates (e.g. config.KINDS); the
    default kind is the ensemble when it is among them, else the first. ``margin=None`` keeps the
    default kind; a number lets another kind win by beating its backtest MASE by that fraction.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in FORECASTER_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {', '.join(FORECASTER_KINDS)}, got {kinds!r}")
    default = DEFAULT_KIND if DEFAULT_KIND in kinds else kinds[0]
    result = backtest_kinds(y, X, folds=folds, random_state=random_state)
    scores = {k: v for k, v in result["scores"].items() if k in kinds}
    details = {"metric": SELECTION_METRIC, "margin": margin, "origins": result["origins"], "backtest": scores}
    if not scores:
        return default, {**details, "preferred": default,
                         "reason": f"{len(y)} months leave no backtest origin; default {default}"}
    base = scores[default][SELECTION_METRIC]
    best = min(scores, key=lambda k: scores[k][SELECTION_METRIC])
    if best != default and (margin is None or scores[best][SELECTION_METRIC] > base * (1 - margin)):
        best = default
    others = ", ".join(f"{k} {s[SELECTION_METRIC]:.3f}" for k, s in scores.items() if k != best)
    if margin is None:
        why = f"{default} kept: the backtest is recorded, not used to switch kinds"
    elif best == default:
        why = f"{default} kept: no kind beats it by more than {margin:.0%}"
    else:
        why = f"beats {default} by more than {margin:.0%}"
    reason = (f"training-backtest {SELECTION_METRIC.upper()} ({len(result['origins'])} origins): {best} "
              f"{scores[best][SELECTION_METRIC]:.3f} vs {others or '-'} ({why})")
    return best, {**details, "preferred": best, "reason": reason}
