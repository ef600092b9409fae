"""A Gaussian process whose cost grows linearly with the series length: celerite2's state-space GP.

The exact GP (:mod:`MLPipeline.gp`) factorises an n x n covariance, O(n^3): right for 20 years of
months, hopeless for a year of half-hours. celerite2 (Foreman-Mackey et al., AJ 154, 2017) factorises
covariances that are sums of exponentials and damped cosines in O(n J^2), J the number of terms, so
the model below is written in those terms:

    y(t) = F(t) beta + level(t) + seasonal_p(t) for each period p + irregular(t) + noise

* ``F(t) beta`` is the mean: an intercept, a linear trend, Fourier harmonics of every seasonal period
  and the regressors. ``beta`` is integrated out under a flat prior (Rasmussen & Williams, *Gaussian
  Processes for Machine Learning*, section 2.7), so its uncertainty widens the intervals instead of
  being ignored; the marginal likelihood is the one of that model (``- 1/2 log |F' K^-1 F|``).
* ``level`` is a long Matern-3/2 (the smooth drift a linear trend misses; ``level_kernel`` offers an
  exponential, Matern-1/2, level instead or beside it: a level that wanders as exponential smoothing's
  does, forecast from its last value rather than with its slope), ``seasonal_p`` a
  quasi-periodic simple-harmonic-oscillator term at period ``p`` (the seasonal shape changing from one
  cycle to the next), ``irregular`` a short Matern-3/2, ``noise`` white.

Hyperparameters are fitted by MAP, as in :mod:`MLPipeline.gp`: log marginal likelihood plus a
log-normal prior on each, optimised on the log scale. Time is measured in steps of the series'
frequency, so the priors are written in steps and in seasonal periods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import celerite2
import numpy as np
from celerite2 import terms
from scipy import linalg, optimize
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from MLPipeline.config import DEFAULT_LEVELS, MAX_STATESPACE_POINTS
from MLPipeline.gp import LogNormalPrior
from MLPipeline.intervals import check_levels, level_label

log = logging.getLogger(__name__)

_MIN_POINTS = 8
_MIN_HARMONICS = 10  # per period: enough for a daily load shape, few enough to stay cheap
_PREDICT_CHUNK = 16  # forecast steps per variance computation
_LOG_BOUND = 12.0  # theta within +-12 of its prior median: priors, not bounds, keep it sensible
LEVEL_KERNELS = ("matern32", "exponential", "both")


def default_harmonics(period: float) -> int:
    """Fourier pairs used for a period: ten, or enough to draw the seven days of a week-long period
    apart (the weekend's shape is not the weekdays'), never past the Nyquist frequency of the steps."""
    return max(1, min(int(period // 2), max(_MIN_HARMONICS, round(period / 7))))


def fourier_columns(t: np.ndarray, periods: Sequence[float], harmonics: Sequence[int]) -> np.ndarray:
    """cos/sin columns for ``harmonics[i]`` multiples of each period's frequency at times ``t``.

    A harmonic whose frequency an earlier period already contributes (the week's 7th harmonic is the
    day's first) is skipped: a repeated column would make the mean's normal equations singular.
    """
    columns, seen = [], set()
    for period, count in zip(periods, harmonics, strict=True):
        for k in range(1, count + 1):
            frequency = round(k / period, 12)
            if frequency in seen or frequency >= 0.5:
                continue
            seen.add(frequency)
            angle = 2 * np.pi * frequency * t
            columns += [np.cos(angle), np.sin(angle)]
    return np.column_stack(columns) if columns else np.empty((len(t), 0))


class StateSpaceGP:
    """MAP Gaussian process on one series, in time linear in its length (celerite2).

    Parameters
    ----------
    periods : seasonal periods in steps, e.g. ``(24, 168)`` for hourly data (day and week).
    harmonics : Fourier pairs on the mean per period (default :func:`default_harmonics`).
    covariance_harmonics : harmonics of the shortest period's quasi-periodic term (the others have one).
    level_kernel : the level term: ``"matern32"`` (the default), ``"exponential"``, or ``"both"`` (their
        sum, each variance fitted).
    max_points : longest series fitted; a longer one is fitted on its most recent ``max_points``
        values, and one log line says so.
    priors : overrides of the default priors, by hyperparameter name (see ``hyperparameter_names_``).
    optimize : ``False`` keeps the hyperparameters at their prior medians (tests, warm starts).

    Attributes (after ``fit``)
    --------------------------
    hyperparameters_ : dict name -> fitted value (standardised units, time in steps).
    beta_ : the mean's coefficients (posterior mean); ``beta_cov_`` their posterior covariance.
    log_posterior_value_ : log marginal likelihood + log prior at the fit.
    n_train_, n_dropped_ : points fitted and points left out by ``max_points``.

    Example
    -------
    >>> model = StateSpaceGP(periods=(24, 168)).fit(y)          # doctest: +SKIP
    >>> fc = model.predict(24, level=(80, 95))                  # doctest: +SKIP
    >>> fc["mean"], fc["lower_95"], fc["upper_95"]              # doctest: +SKIP
    """

    kind = "statespace"

    def __init__(self, periods: Sequence[float] = (), *, harmonics: Sequence[int] | None = None,
                 covariance_harmonics: int = 3, level_kernel: str = "matern32", max_points: int = MAX_STATESPACE_POINTS,
                 priors: dict | None = None, optimize: bool = True):
        self.periods = periods
        self.harmonics = harmonics
        self.covariance_harmonics = covariance_harmonics
        self.level_kernel = level_kernel
        self.max_points = max_points
        self.priors = priors
        self.optimize = optimize

    # --- the model -------------------------------------------------------------------------------
    def _default_priors(self) -> dict[str, LogNormalPrior]:
        periods = tuple(float(p) for p in self.periods_)
        longest = max(periods, default=24.0)
        shortest = min(periods, default=24.0)
        priors = {
            "level_sigma": LogNormalPrior(0.3, 1.0),
            # a level that drifts over several of the longest cycles, not within one
            "level_rho": LogNormalPrior(2 * longest, 1.0),
            **({"smooth_sigma": LogNormalPrior(0.3, 1.0), "smooth_rho": LogNormalPrior(2 * longest, 1.0)}
               if self._level_choice == "both" else {}),
            "irregular_sigma": LogNormalPrior(0.1, 1.0),
            "irregular_rho": LogNormalPrior(max(2.0, shortest / 8), 1.0),
            "noise_sigma": LogNormalPrior(0.05, 1.0),
        }
        for i, _ in enumerate(periods):
            priors[f"seasonal{i}_sigma"] = LogNormalPrior(0.1, 1.0)
            # Q ~ 10: the seasonal deviation persists for about three cycles (tau = Q p / pi)
            priors[f"seasonal{i}_quality"] = LogNormalPrior(10.0, 1.0)
        priors.update(self.priors or {})
        return priors

    @property
    def _level_choice(self) -> str:
        # a model pickled before the level had a choice has a Matern-3/2 level
        return getattr(self, "level_kernel", "matern32")

    def _kernel(self, values: dict[str, float]):
        # Matern32Term approximates Matern-3/2 to O(eps^2); 1e-4 keeps it within 1e-8 of the exact one.
        choice = self._level_choice
        if choice == "matern32":
            kernel = terms.Matern32Term(sigma=values["level_sigma"], rho=values["level_rho"], eps=1e-4)
        else:  # exponential, alone or with the smooth Matern-3/2
            kernel = terms.RealTerm(a=values["level_sigma"] ** 2, c=1.0 / values["level_rho"])
            if choice == "both":
                kernel += terms.Matern32Term(sigma=values["smooth_sigma"], rho=values["smooth_rho"], eps=1e-4)
        for i, period in enumerate(self.periods_):
            # The shortest period's shape (a day's) changes from cycle to cycle in more than its
            # fundamental, so its term has harmonics too: harmonic k at period p/k with quality k Q
            # decays as fast as the fundamental, and the variance is shared between them.
            count = self.covariance_harmonics if i == self.shortest_ else 1
            for k in range(1, count + 1):
                kernel += terms.SHOTerm(sigma=values[f"seasonal{i}_sigma"] / math.sqrt(count), rho=period / k,
                                        Q=k * max(values[f"seasonal{i}_quality"], 0.51))
        kernel += terms.Matern32Term(sigma=values["irregular_sigma"], rho=values["irregular_rho"], eps=1e-4)
        return kernel

    def _design(self, t: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        trend = (t - self.t_origin_) / self.t_scale_
        parts = [np.ones((len(t), 1)), trend[:, None], fourier_columns(t, self.periods_, self.harmonics_)]
        if X is not None:
            parts.append((X - self.x_loc_) / self.x_scale_)
        return np.hstack(parts)

    def _solve(self, values: dict[str, float], y: np.ndarray):
        """Factorise K and integrate beta out: (gp, log marginal likelihood, beta, Cholesky of F' K^-1 F, residual)."""
        gp = celerite2.GaussianProcess(self._kernel(values))
        gp.compute(self.t_, diag=np.full(len(y), values["noise_sigma"] ** 2), check_sorted=False)
        F = self.F_
        KinvF = gp.apply_inverse(F)
        A = F.T @ KinvF
        A[np.diag_indices_from(A)] += 1e-9 * max(1.0, float(np.trace(A)) / len(A))
        chol = linalg.cho_factor(A, lower=True)
        beta = linalg.cho_solve(chol, KinvF.T @ y)
        resid = y - F @ beta
        loglike = float(gp.log_likelihood(resid)) - float(np.sum(np.log(np.diag(chol[0]))))
        return gp, loglike, beta, chol, resid

    def _objective(self, theta: np.ndarray, y: np.ndarray) -> float:
        values = dict(zip(self.hyperparameter_names_, np.exp(theta), strict=True))
        try:
            _, loglike, *_ = self._solve(values, y)
        except (linalg.LinAlgError, celerite2.backprop.LinAlgError, ValueError):
            return 1e25
        if not np.isfinite(loglike):
            return 1e25
        logprior = sum(self.priors_[name].logpdf_theta(np.array([th]))[0]
                       for name, th in zip(self.hyperparameter_names_, theta, strict=True))
        return -(loglike + logprior)

    # --- estimator interface -----------------------------------------------------------------------
    def fit(self, y, X=None) -> StateSpaceGP:
        """Fit on ``y`` (1-D, equally spaced) and optional regressors ``X`` (n x k)."""
        # The products here are n x (a few dozen): a threaded BLAS only adds contention on a busy
        # machine, so the fit runs on one BLAS thread.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(y, X)

    def _fit(self, y, X) -> StateSpaceGP:
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or not np.all(np.isfinite(y)):
            raise ValueError("y must be a 1-D array of finite numbers")
        if X is not None:
            X = np.asarray(X, dtype=float)
            X = X.reshape(len(X), -1) if X.ndim else X
            if X.ndim != 2 or len(X) != len(y) or not np.all(np.isfinite(X)):
                raise ValueError("X must hold finite numbers, one row per value of y")
        if len(y) > self.max_points:
            log.warning("series has %d points: fitting its most recent %d (max_points)", len(y), self.max_points)
            self.n_dropped_ = len(y) - self.max_points
            y = y[-self.max_points:]
            X = None if X is None else X[-self.max_points:]
        else:
            self.n_dropped_ = 0
        if len(y) < _MIN_POINTS:
            raise ValueError(f"y has {len(y)} values; StateSpaceGP needs at least {_MIN_POINTS}")
        self.n_train_ = n = len(y)
        self.periods_ = _check_periods(self.periods)
        self.shortest_ = int(np.argmin(self.periods_)) if self.periods_ else -1
        if isinstance(self.covariance_harmonics, bool) or not isinstance(self.covariance_harmonics, int) \
                or self.covariance_harmonics < 1:
            raise ValueError(f"covariance_harmonics must be a whole number >= 1, got {self.covariance_harmonics!r}")
        if self._level_choice not in LEVEL_KERNELS:
            raise ValueError(f"level_kernel must be one of {', '.join(LEVEL_KERNELS)}, got {self._level_choice!r}")
        self.harmonics_ = tuple(self.harmonics) if self.harmonics is not None else tuple(
            default_harmonics(p) for p in self.periods_)
        # Standardise, so the priors are in units of the series' spread.
        self.y_loc_ = float(np.mean(y))
        self.y_scale_ = float(np.std(y)) or 1.0
        z = (y - self.y_loc_) / self.y_scale_
        self.n_regressors_ = 0 if X is None else X.shape[1]
        if X is not None:
            self.x_loc_ = X.mean(axis=0)
            self.x_scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        # Time in steps; the trend's origin at the last point, where forecasts start.
        self.t_ = np.arange(n, dtype=float)
        self.t_origin_, self.t_scale_ = float(n - 1), float(max(n, 1))
        self.F_ = self._design(self.t_, X)
        self.priors_ = self._default_priors()
        self.hyperparameter_names_ = tuple(self.priors_)
        theta0 = np.array([self.priors_[name].mu for name in self.hyperparameter_names_])
        theta = theta0
        if self.optimize:
            bounds = [(m - _LOG_BOUND, m + _LOG_BOUND) for m in theta0]
            result = optimize.minimize(self._objective, theta0, args=(z,), method="L-BFGS-B", bounds=bounds)
            theta = result.x if np.isfinite(result.fun) and result.fun < 1e24 else theta0
        self.hyperparameters_ = dict(zip(self.hyperparameter_names_, map(float, np.exp(theta)), strict=True))
        gp, loglike, beta, chol, resid = self._solve(self.hyperparameters_, z)
        self.log_posterior_value_ = -self._objective(theta, z)
        self.log_marginal_likelihood_value_ = loglike
        self.beta_ = beta
        self.beta_cov_ = linalg.cho_solve(chol, np.eye(len(beta)))
        self._gp, self._resid, self._z = gp, resid, z
        self.residual_ = resid * self.y_scale_
        return self

    def predict(self, steps: int, X=None, level=DEFAULT_LEVELS) -> dict[str, np.ndarray]:
        """Forecast ``steps`` ahead: ``mean``, ``std`` and ``lower_<level>``/``upper_<level>`` arrays.

        ``X`` holds the regressors' future values (``steps`` x k) when the model was fitted with them.
        """
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
            raise ValueError(f"steps must be a positive whole number, got {steps!r}")
        self._check_fitted()
        return self.predict_times(self.t_[-1] + np.arange(1, steps + 1, dtype=float), X, level)

    def _check_fitted(self) -> None:
        if not hasattr(self, "beta_"):
            raise ValueError("call fit before predict")

    def predict_times(self, t, X=None, level=DEFAULT_LEVELS) -> dict[str, np.ndarray]:
        """As :meth:`predict`, at any times ``t`` in steps (0 = the first point fitted, any order,
        repeats allowed): inside the training span, the fitted values with the interval of a new
        observation there; after it, the forecast."""
        self._check_fitted()
        levels = check_levels(level)
        t = np.asarray(t, dtype=float).reshape(-1)
        if not len(t) or not np.all(np.isfinite(t)):
            raise ValueError("t must hold at least one finite time")
        if self.n_regressors_:
            if X is None:
                raise ValueError(f"the model uses {self.n_regressors_} regressors: pass their values as X")
            X = np.asarray(X, dtype=float)
            X = X.reshape(len(X), -1) if X.ndim else X
            if X.shape != (len(t), self.n_regressors_) or not np.all(np.isfinite(X)):
                raise ValueError(f"X must be {len(t)} x {self.n_regressors_} finite numbers")
        # celerite2 predicts at sorted times; answers go back in the order asked.
        order = np.argsort(t, kind="stable")
        t_star = t[order]
        F_star = self._design(t_star, X[order] if self.n_regressors_ else None)
        gp = self._gp
        # Algorithm (R&W eq. 2.41): the GP's conditional mean and variance given the residuals,
        # then the mean function with beta's posterior uncertainty carried through R.
        # celerite2's predictive variance holds an n x steps matrix: in chunks, memory stays O(n).
        chunks = [gp.predict(self._resid, t=part, return_var=True)
                  for part in np.array_split(t_star, max(1, len(t_star) // _PREDICT_CHUNK))]
        f_mean, f_var = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        KsKinvF = np.column_stack([gp.predict(col, t=t_star) for col in self.F_.T])
        R = F_star - KsKinvF
        mean = F_star @ self.beta_ + f_mean
        var = f_var + np.einsum("ij,jk,ik->i", R, self.beta_cov_, R) + self.hyperparameters_["noise_sigma"] ** 2
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        mean = (self.y_loc_ + self.y_scale_ * mean)[back]
        std = (self.y_scale_ * np.sqrt(np.maximum(var, 0.0)))[back]
        out = {"mean": mean, "std": std}
        for lv in levels:
            z = norm.ppf(0.5 + lv / 200)
            out[f"lower_{level_label(lv)}"] = mean - z * std
            out[f"upper_{level_label(lv)}"] = mean + z * std
        return out

    def describe(self) -> dict:
        """What was fitted, for logs and reports."""
        return {"periods": [float(p) for p in self.periods_], "harmonics": list(self.harmonics_),
                "n_train": self.n_train_, "n_dropped": self.n_dropped_,
                "hyperparameters": {k: round(v, 6) for k, v in self.hyperparameters_.items()},
                "log_posterior": self.log_posterior_value_}


def _check_periods(periods) -> tuple[float, ...]:
    out = tuple(float(p) for p in periods)
    if any(not math.isfinite(p) or p < 2 for p in out):
        raise ValueError(f"seasonal periods must be at least 2 steps, got {list(periods)}")
    return out
