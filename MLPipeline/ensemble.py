"""Ensemble: a meta-estimator over forecasting members that share one declared interface.

The default model is the median, for the mean and for each interval bound, of four members: the
level GP (calibrated), the level GP on a Box–Cox scale, damped-trend exponential smoothing
(ETS(M,Ad,M)) and the Theta method (:mod:`MLPipeline.smoothing`; both univariate, so they ignore
regressors): quantile combination. The members were chosen on a development subset of 300 M3 monthly
series (not one of the benchmark sets; the README's benchmark section has the comparison).

Every member implements :class:`Member`; the ensemble calls nothing else, so a new member is one
class and one entry in ``MEMBERS``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from MLPipeline import combination
from MLPipeline.config import MIN_MONTHS, SEASON_LENGTH
from MLPipeline.forecaster import GPForecaster
from MLPipeline.intervals import (
    SHORT_SERIES_WIDENING,
    check_levels,
    interval_columns,
    short_series_factor,
    widen_interval,
)
from MLPipeline.months import format_month, months_after, ordinal_index, ordinals_of
from MLPipeline.smoothing import DampedETS, Theta


class Member(Protocol):
    """What the ensemble needs of a member (GPForecaster and the smoothing models implement it)."""

    kind: str
    regressors_: tuple[str, ...]

    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> Member: ...

    def _values(self, months: np.ndarray, x: np.ndarray | None, X: pd.DataFrame | None, levels) -> np.ndarray:
        """(n, 2 + 2 levels) array of :func:`interval_columns` for month ordinals ``months``; ``x`` holds
        the regressor rows of those months, ``X`` the caller's frame (a path's months)."""

    def sums_path(self) -> bool: ...

    def first_month(self) -> pd.Timestamp: ...

    def describe(self) -> dict: ...


#: The members: (kind, transform, calibrate); kinds not in SMOOTHING are GPForecaster kinds.
MEMBERS: tuple[tuple[str, str | None, bool], ...] = (
    ("level", None, True),
    ("level", "boxcox", False),
    (DampedETS.kind, None, False),
    (Theta.kind, None, False),
)
#: Members that are not GPs, by kind.
SMOOTHING = {cls.kind: cls for cls in (DampedETS, Theta)}


def make_member(kind: str, transform: str | None = None, calibrate: bool | None = None, *,
                random_state: int = 0, clip_negative: bool = True) -> Member:
    """An unfitted member: a smoothing model for its kind, else a GPForecaster."""
    if kind in SMOOTHING:
        return SMOOTHING[kind](random_state=random_state, clip_negative=clip_negative)
    return GPForecaster(kind, transform=transform, calibrate=calibrate, random_state=random_state,
                        clip_negative=clip_negative)


def combine_members(values) -> np.ndarray:
    """The ensemble's value from its members' (means or bounds; members on axis 0): the median.

    With four members that is the mean of the middle two, so one member far off cannot drag the
    forecast; the median is monotone, so ordered members give ordered bounds.
    """
    return np.median(np.asarray(values, dtype=float), axis=0)


class Ensemble:
    """A combination of its members' forecasts, with the GPForecaster prediction API.

    Parameters
    ----------
    members : tuple of (kind, transform, calibrate)
        The members (default :data:`MEMBERS`).
    combine : str
        The combination rule (:data:`MLPipeline.combination.RULES`; default the median). Rules other
        than ``median`` and ``mean`` learn from each member's backtest inside the training window.
    lead : int
        For ``combine="shrink"``: the member (index into ``members``) the median is moved towards.
    backtest_folds : int
        Yearly origins of that backtest.
    random_state : int
        Passed to every member (fits and simulated intervals are deterministic for a fixed seed).
    clip_negative : bool
        For a non-negative training series, clip lower interval bounds at 0.
    widen_short : bool
        With the default members, widen the intervals of a series too short for its calibration's
        yearly origins by :data:`MLPipeline.intervals.SHORT_SERIES_WIDENING` (``False``: as fitted;
        bench/short_series.py learns the factors from those).

    Attributes (after ``fit``)
    --------------------------
    members_ : the fitted members, in the order of ``members``.
    combination_ : the rule's learned state (:func:`MLPipeline.combination.fit_rule`: weights, the
        member selected or dropped, or the share towards the lead), from training data only.
    regressors_ : the regressors the GP members use (the smoothing members ignore them).
    short_origins_ : the calibration origins of a series that had fewer than it needs (its intervals are
        widened), else None.
    y_, train_start_, train_end_ : the training series and its first and last month.
    kernel_, log_marginal_likelihood_, log_posterior_ : those of the first GP member.

    Example
    -------
    >>> model = Ensemble().fit(y)                      # doctest: +SKIP
    >>> model.predict(12, level=(80, 95))              # doctest: +SKIP
    """

    kind = "ensemble"

    def __init__(self, members: tuple[tuple[str, str | None, bool], ...] = MEMBERS, *, combine: str = "median",
                 lead: int = 1, backtest_folds: int = 3, random_state: int = 0, clip_negative: bool = True,
                 widen_short: bool = True):
        self.members = members
        self.combine = combine
        self.lead = lead
        self.backtest_folds = backtest_folds
        self.random_state = random_state
        self.clip_negative = clip_negative
        self.widen_short = widen_short

    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> Ensemble:
        """Fit every member to ``y`` (and ``X``, for those that use regressors). Returns self."""
        rule = combination.check_rule(self.combine)
        backtest = None
        if rule in combination.BACKTEST_RULES:
            def fresh():  # uncalibrated: calibration moves bounds, and the rule reads point errors
                return [make_member(kind, transform, False, random_state=self.random_state,
                                    clip_negative=self.clip_negative) for kind, transform, _ in self.members]
            backtest = combination.member_backtests(fresh, y, X, folds=self.backtest_folds, horizon=SEASON_LENGTH,
                                                    min_train=MIN_MONTHS)
        self.combination_ = combination.fit_rule(rule, backtest, lead=self.lead)
        self.members_ = [make_member(kind, transform, calibrate, random_state=self.random_state,
                                     clip_negative=self.clip_negative).fit(y, X)
                         for kind, transform, calibrate in self.members]
        gps = [m for m in self.members_ if isinstance(m, GPForecaster)]
        lead = gps[0] if gps else self.members_[0]
        self.y_, self.train_start_, self.train_end_ = lead.y_, lead.train_start_, lead.train_end_
        self.regressors_ = lead.regressors_
        self.kernel_ = getattr(lead, "kernel_", None)
        self.log_marginal_likelihood_ = getattr(lead, "log_marginal_likelihood_", None)
        self.log_posterior_ = getattr(lead, "log_posterior_", None)
        self._lead = lead
        # The factors were learned for the default members, whose first is the calibrated level GP.
        self.short_origins_ = None
        if self.widen_short and tuple(self.members) == MEMBERS:
            origins = self.members_[0].calibration_.get("origins", 0)
            self.short_origins_ = int(origins) if origins in SHORT_SERIES_WIDENING else None
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise ValueError("this Ensemble is not fitted yet; call fit(y, X) first")

    def predict(self, horizon: int = 12, X_future: pd.DataFrame | None = None, level=(80, 95)) -> pd.DataFrame:
        """Forecast the ``horizon`` months after the training window (as GPForecaster.predict)."""
        self._check_fitted()
        months = months_after(self.train_end_, horizon)
        if self.regressors_ and X_future is None:
            raise ValueError(
                f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X_future "
                f"with their values for the {horizon} forecast month(s)")
        return self.predict_at(months, X_future, level=level)

    def predict_at(self, months, X: pd.DataFrame | None = None, level=(95,)) -> pd.DataFrame:
        """Predict any months, past or future (as GPForecaster.predict_at); rows in the order asked."""
        self._check_fitted()
        levels = check_levels(level)
        months = ordinals_of(months)
        x = None
        if self.regressors_:
            if X is None:
                raise ValueError(
                    f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X with their values")
            x = self._lead._check_X(X, months, what="X")
        return pd.DataFrame(self._values(months, x, X, levels), index=ordinal_index(months),
                            columns=interval_columns(levels))

    def _values(self, months, x, X, levels) -> np.ndarray:
        parts = np.array([m._values(months, x, X, levels) for m in self.members_])
        # Models fitted before combination_ existed combine by the median, as they did then.
        state = self.__dict__.get("combination_", {"rule": "median"})
        out = combination.combine(parts, state)
        # std of the mixture of the members' predictive distributions, weighted as they are combined
        w = combination.mixture_weights(state, len(parts))
        mixture_mean = np.tensordot(w, parts[:, :, 0], axes=1)
        second = np.tensordot(w, parts[:, :, 1] ** 2 + parts[:, :, 0] ** 2, axes=1)
        out[:, 1] = np.sqrt(np.maximum(second - mixture_mean**2, 0.0))
        origins = self.__dict__.get("short_origins_")  # models fitted before it existed: not widened
        if origins is not None:
            self._widen(out, levels, origins)
        return out

    def _widen(self, out: np.ndarray, levels, origins: int) -> None:
        """Scale the half-widths around the mean in place (and the std, as a 68% interval's)."""
        out[:, 1] *= short_series_factor(origins, 68.27)
        floor = 0.0 if self.clip_negative and self._lead.nonnegative_ else -np.inf
        for i, lv in enumerate(levels):
            lower, upper = 2 + 2 * i, 3 + 2 * i
            out[:, lower], out[:, upper] = widen_interval(out[:, 0], out[:, lower], out[:, upper],
                                                          short_series_factor(origins, lv), floor)

    def sums_path(self) -> bool:
        """Whether a member sums monthly steps from the last observed value (a difference GP)."""
        return any(m.sums_path() for m in self.members_)

    def first_month(self) -> pd.Timestamp:
        """The earliest month every member answers."""
        self._check_fitted()
        return max(m.first_month() for m in self.members_)

    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted ensemble and its members."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "train_start": format_month(self.train_start_),
            "train_end": format_month(self.train_end_),
            "regressors": list(self.regressors_),
            "members": [m.describe() for m in self.members_],
            "combination": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                            for k, v in self.__dict__.get("combination_", {"rule": "median"}).items()},
            "short_series_widening": self.__dict__.get("short_origins_"),
            "kernel": None if self.kernel_ is None else str(self.kernel_),
            "log_marginal_likelihood": self.log_marginal_likelihood_,
            "log_posterior": self.log_posterior_,
        }
