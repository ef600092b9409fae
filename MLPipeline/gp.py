"""A Gaussian-process regressor fitted by MAP: log marginal likelihood + log-normal priors.

scikit-learn maximises the marginal likelihood alone, which on short monthly series lets
length-scales collapse or explode. Following Corani, Benavoli and Zaffalon (ECML-PKDD 2021,
"Time series forecasting with Gaussian Processes needs priors"), we add a log-normal prior
per hyperparameter. Kernel hyperparameters are optimised as ``theta = log(value)``, so a
log-normal prior on a value is a normal prior on its ``theta`` entry.

Inside ``fit`` the optimiser's objective is evaluated from a compiled kernel
(:func:`compile_kernel`): the formulas of scikit-learn's kernel objects over distances computed
once, without the objects' per-call bookkeeping, which on these small series cost more than the
linear algebra.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import cho_solve, cholesky, lapack
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.utils import check_random_state
from sklearn.utils.optimize import _check_optimize_result

try:  # how scikit-learn stores the Cholesky factor (its predict reads L_ that way)
    from sklearn.gaussian_process._gpr import GPR_CHOLESKY_LOWER
except ImportError:  # pragma: no cover - another scikit-learn layout
    GPR_CHOLESKY_LOWER = True

_LOG_2PI = np.log(2 * np.pi)


class LogNormalPrior:
    """Log-normal prior: ``log(value) ~ Normal(log(median), sigma**2)``."""

    def __init__(self, median: float, sigma: float):
        if median <= 0 or sigma <= 0:
            raise ValueError("LogNormalPrior needs median > 0 and sigma > 0")
        self.median = float(median)
        self.sigma = float(sigma)

    @property
    def mu(self) -> float:
        return float(np.log(self.median))

    def logpdf_theta(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density of ``theta = log(value)`` and its gradient, elementwise summed."""
        z = (theta - self.mu) / self.sigma
        logp = float(np.sum(-0.5 * z**2 - np.log(self.sigma) - 0.5 * _LOG_2PI))
        return logp, -z / self.sigma

    def __repr__(self) -> str:
        return f"LogNormalPrior(median={self.median:g}, sigma={self.sigma:g})"


def _free_hyperparameters(kernel: Kernel) -> list[Hyperparameter]:
    return [h for h in kernel.hyperparameters if not h.fixed]


class MAPGaussianProcessRegressor(GaussianProcessRegressor):
    """GaussianProcessRegressor whose optimiser maximises log likelihood + log prior.

    Parameters are those of :class:`~sklearn.gaussian_process.GaussianProcessRegressor` plus
    ``priors``: a mapping from hyperparameter name (as in ``kernel.hyperparameters``, e.g.
    ``"k1__k2__length_scale"``) to a :class:`LogNormalPrior`. Hyperparameters without a prior
    are left flat; ``compiled`` (default True): inside ``fit`` the optimiser's objective evaluates
    the kernel from formulas compiled once for the training inputs (:func:`compile_kernel`), the
    same values as the kernel objects without their per-call overhead; a kernel with a part that
    is not compiled, ``normalize_y`` or a per-sample ``alpha`` use scikit-learn's evaluation. After
    ``fit``: ``log_marginal_likelihood_value_`` is the plain log marginal likelihood and
    ``log_posterior_value_`` adds the log prior, both at the fitted ``kernel_``.
    """

    compiled = True  # models pickled before the parameter existed read it from here

    def __init__(
        self,
        kernel=None,
        *,
        priors=None,
        alpha=1e-10,
        optimizer="fmin_l_bfgs_b",
        n_restarts_optimizer=0,
        normalize_y=False,
        copy_X_train=True,
        random_state=None,
        compiled=True,
    ):
        super().__init__(
            kernel=kernel,
            alpha=alpha,
            optimizer=optimizer,
            n_restarts_optimizer=n_restarts_optimizer,
            normalize_y=normalize_y,
            copy_X_train=copy_X_train,
            random_state=random_state,
        )
        self.priors = priors
        self.compiled = compiled

    def log_prior(self, theta: np.ndarray, kernel: Kernel | None = None) -> tuple[float, np.ndarray]:
        """Log prior density of ``theta`` (free hyperparameters, log scale) and its gradient."""
        kernel = kernel if kernel is not None else getattr(self, "kernel_", self.kernel)
        priors = self.priors or {}
        logp, grad, start = 0.0, np.zeros_like(theta, dtype=float), 0
        for hyper in _free_hyperparameters(kernel):
            stop = start + hyper.n_elements
            prior = priors.get(hyper.name)
            if prior is not None:
                lp, g = prior.logpdf_theta(np.asarray(theta[start:stop], dtype=float))
                logp += lp
                grad[start:stop] = g
            start = stop
        return logp, grad

    def log_marginal_likelihood(self, theta=None, eval_gradient=False, clone_kernel=True):
        """Log posterior (up to a constant) when ``theta`` is given; plain LML when it is None.

        The optimiser inside ``fit`` always passes ``theta``, so it maximises the posterior.
        """
        if theta is None:
            return super().log_marginal_likelihood(None, eval_gradient, clone_kernel)
        kernel = self.kernel_ if hasattr(self, "kernel_") else self.kernel
        result = super().log_marginal_likelihood(theta, eval_gradient, clone_kernel)
        logp, grad = self.log_prior(np.asarray(theta, dtype=float), kernel)
        if eval_gradient:
            lml, lml_grad = result
            return lml + logp, lml_grad + grad
        return result + logp

    def fit(self, X, y):
        objective = None
        if (self.compiled and self.optimizer == "fmin_l_bfgs_b" and not self.normalize_y
                and np.ndim(self.alpha) == 0 and _plain_inputs(X, y)):
            kernel = clone(self.kernel)
            objective = CompiledPosterior.build(kernel, self.priors or {}, np.asarray(X, dtype=float),
                                                np.asarray(y, dtype=float), float(self.alpha))
        if objective is None:
            super().fit(X, y)
            theta = self.kernel_.theta
            self.log_posterior_value_ = float(self.log_marginal_likelihood_value_)
            self.log_marginal_likelihood_value_ = float(
                GaussianProcessRegressor.log_marginal_likelihood(self, theta, clone_kernel=True)
            )
            return self
        return self._fit_compiled(kernel, np.asarray(X, dtype=float), np.asarray(y, dtype=float), objective)

    def _fit_compiled(self, kernel: Kernel, X: np.ndarray, y: np.ndarray, objective: CompiledPosterior):
        """scikit-learn's ``fit`` (the same optimiser and starts, the same fitted state) on the compiled
        objective of ``kernel`` (a clone of ``self.kernel``, which becomes ``kernel_``).

        Its own ``fit`` gets the kernel's theta and bounds and checks them through the kernel objects,
        which on these small series costs more than the optimisation itself; the check that only warns
        when a hyperparameter ends near a bound is not repeated (the priors keep them far inside).
        """
        self.kernel_ = kernel
        self._rng = check_random_state(self.random_state)
        self.n_features_in_ = X.shape[1]
        self._y_train_mean, self._y_train_std = np.zeros(1), np.ones(1)
        self.X_train_ = np.copy(X) if self.copy_X_train else X
        self.y_train_ = np.copy(y) if self.copy_X_train else y

        def negative(theta):
            value, grad = objective(theta, eval_gradient=True)
            return -value, -grad

        bounds = objective.bounds
        starts = [objective.kernel.theta]
        if self.n_restarts_optimizer > 0:
            if not np.isfinite(bounds).all():
                raise ValueError("Multiple optimizer restarts (n_restarts_optimizer>0) requires that all bounds "
                                 "are finite.")
            starts += [self._rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts_optimizer)]
        optima = []
        for start in starts:
            result = minimize(negative, start, method="L-BFGS-B", jac=True, bounds=bounds)
            _check_optimize_result("lbfgs", result)
            optima.append((result.x, result.fun))
        theta, value = min(optima, key=lambda o: o[1])
        objective.kernel.assign(theta)
        self.log_posterior_value_ = float(-value)
        try:
            self.L_, lml = objective.likelihood(theta)
        except np.linalg.LinAlgError as exc:
            exc.args = (f"The kernel, {self.kernel_}, is not returning a positive definite matrix. Try gradually "
                        "increasing the 'alpha' parameter of your GaussianProcessRegressor estimator.", *exc.args)
            raise
        self.log_marginal_likelihood_value_ = float(lml)
        self.alpha_ = cho_solve((self.L_, GPR_CHOLESKY_LOWER), self.y_train_, check_finite=False)
        return self


def _plain_inputs(X, y) -> bool:
    """Whether X is a finite 2-D float array and y a finite 1-D one of its length (else scikit-learn's
    ``fit`` validates, converts or rejects them)."""
    try:
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        return False
    return (X.ndim == 2 and y.ndim == 1 and len(X) == len(y) > 0 and bool(np.isfinite(X).all())
            and bool(np.isfinite(y).all()))


class CompiledPosterior:
    """Log posterior (log marginal likelihood + log prior) of theta and its gradient for one kernel,
    prior and training set: what :meth:`MAPGaussianProcessRegressor.log_marginal_likelihood` returns
    for a theta, computed from a compiled kernel (the same arithmetic as scikit-learn's, Rasmussen &
    Williams Alg. 2.1 and Eq. 5.9)."""

    def __init__(self, kernel: CompiledKernel, y: np.ndarray, alpha: float, priors: dict):
        self.kernel, self.evaluate, self.y, self.alpha = kernel, kernel.evaluate, y, alpha
        found = [priors.get(name) for name in kernel.names]
        self.has_prior = np.array([p is not None for p in found], dtype=bool)
        self.mu = np.array([p.mu for p in found if p is not None], dtype=float)
        self.sigma = np.array([p.sigma for p in found if p is not None], dtype=float)
        self.bounds = kernel.bounds
        self.eye = np.eye(len(y))

    @classmethod
    def build(cls, kernel: Kernel, priors: dict, X: np.ndarray, y: np.ndarray, alpha: float):
        """The objective for ``kernel`` on ``X``, ``y``; None when the kernel cannot be compiled.

        The compiled kernel keeps references to ``kernel``'s parts: ``self.kernel.assign`` sets them.
        """
        if X.ndim != 2:
            return None
        compiled = compile_kernel(kernel, X)
        return None if compiled is None else cls(compiled, y, alpha, priors)

    def likelihood(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """The Cholesky factor of the kernel matrix (``alpha`` on its diagonal; lower or upper as
        scikit-learn stores it) and the plain log marginal likelihood."""
        K, _ = self.evaluate(theta)
        K[np.diag_indices_from(K)] += self.alpha
        L = cholesky(K, lower=GPR_CHOLESKY_LOWER, check_finite=False)
        a = cho_solve((L, GPR_CHOLESKY_LOWER), self.y, check_finite=False)
        return L, -0.5 * float(self.y @ a) - float(np.log(np.diag(L)).sum()) - len(self.y) / 2 * _LOG_2PI

    def __call__(self, theta: np.ndarray, eval_gradient: bool = False):
        K, grads = self.evaluate(theta)
        K[np.diag_indices_from(K)] += self.alpha
        z = (theta[self.has_prior] - self.mu) / self.sigma
        logp = float(np.sum(-0.5 * z**2 - np.log(self.sigma) - 0.5 * _LOG_2PI))
        try:
            if not np.isfinite(K).all():
                raise np.linalg.LinAlgError("non-finite kernel")
            L = cholesky(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return (-np.inf, np.zeros_like(theta)) if eval_gradient else -np.inf
        a = cho_solve((L, True), self.y, check_finite=False)
        lml = -0.5 * float(self.y @ a) - float(np.log(np.diag(L)).sum()) - len(self.y) / 2 * _LOG_2PI
        if not eval_gradient:
            return lml + logp
        # K^-1 from the Cholesky factor (LAPACK potri, half the work of solving against the identity);
        # it fills one triangle
        inverse, info = lapack.dpotri(L, lower=True)
        if info != 0:
            inverse = cho_solve((L, True), self.eye, check_finite=False)
        else:
            inverse = np.tril(inverse) + np.tril(inverse, -1).T
        inner = np.outer(a, a) - inverse
        # 0.5 trace(inner @ dK_j): every dK_j is symmetric, so an elementwise product summed
        grad = np.array([0.5 * np.vdot(g, inner) for g in grads], dtype=float).reshape(len(theta))
        grad[self.has_prior] -= z / self.sigma
        return lml + logp, grad


class ActiveDims(Kernel):
    """Apply ``kernel`` to the columns ``dims`` of X only (scikit-learn has no active dims).

    Lets an additive kernel use time for the trend/seasonal parts and the regressor
    columns, with ARD length-scales, for a separate part.
    """

    def __init__(self, kernel: Kernel, dims: tuple[int, ...]):
        self.kernel = kernel
        self.dims = dims  # stored as given: sklearn.clone checks identity

    def _take(self, X):
        if X is None:
            return None
        return np.asarray(X)[:, list(self.dims)]

    def get_params(self, deep=True):
        params = {"kernel": self.kernel, "dims": self.dims}
        if deep:
            params.update(("kernel__" + k, v) for k, v in self.kernel.get_params().items())
        return params

    @property
    def hyperparameters(self):
        return [
            Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements, h.fixed)
            for h in self.kernel.hyperparameters
        ]

    @property
    def theta(self):
        return self.kernel.theta

    @theta.setter
    def theta(self, theta):
        self.kernel.theta = theta

    @property
    def bounds(self):
        return self.kernel.bounds

    def __call__(self, X, Y=None, eval_gradient=False):
        return self.kernel(self._take(X), self._take(Y), eval_gradient=eval_gradient)

    def diag(self, X):
        return self.kernel.diag(self._take(X))

    def is_stationary(self):
        return self.kernel.is_stationary()

    @property
    def requires_vector_input(self):
        return True

    def __eq__(self, other):
        return type(self) is type(other) and tuple(self.dims) == tuple(other.dims) and self.kernel == other.kernel

    def __repr__(self):
        return f"{self.kernel!r} on dims {list(self.dims)}"


# ------------------------------------------------------------------ compiled kernels
# scikit-learn's kernel objects spend most of an evaluation on bookkeeping (rebuilding the
# hyperparameter lists through dir(), getting and setting theta through the tree) rather than
# arithmetic, and the optimiser evaluates the kernel a few dozen times per fit on the same inputs.
# A compiled kernel is the same formulas as closures over the pairwise distances, computed once.

class _Free(NamedTuple):
    """One free hyperparameter of a leaf kernel: where it lives and its full (prior) name."""

    leaf: Kernel
    attr: str
    name: str
    n_elements: int
    bounds: np.ndarray  # (n_elements, 2), log scale


class CompiledKernel:
    """A kernel's value and gradient on fixed training inputs as a function of theta.

    ``evaluate(theta)`` returns ``(K, [dK/dtheta_j, ...])``, as ``kernel(X, eval_gradient=True)``
    with the gradient as a list of matrices; ``theta``, ``bounds`` and ``names`` are the kernel's
    (free hyperparameters, in scikit-learn's order); ``assign(theta)`` sets the kernel's
    hyperparameters as its ``theta`` setter does.
    """

    def __init__(self, evaluate, free: list[_Free]):
        self.evaluate, self.free = evaluate, free
        self.names = [f.name for f in free for _ in range(f.n_elements)]
        self.bounds = np.vstack([f.bounds for f in free]) if free else np.empty((0, 2))

    @property
    def theta(self) -> np.ndarray:
        if not self.free:
            return np.empty(0)
        return np.concatenate([np.log(np.ravel(getattr(f.leaf, f.attr)).astype(float)) for f in self.free])

    def assign(self, theta: np.ndarray) -> None:
        i = 0
        for f in self.free:
            value = np.exp(theta[i:i + f.n_elements]) if f.n_elements > 1 else np.exp(theta[i])
            setattr(f.leaf, f.attr, value)
            i += f.n_elements


def compile_kernel(kernel: Kernel, X: np.ndarray) -> CompiledKernel | None:
    """``kernel`` compiled for the training inputs ``X`` (2-D), or None when it holds a part this
    does not know (sums and products of constant, white, dot-product, RBF, Matern 1/2, 3/2, 5/2 and
    periodic kernels, and :class:`ActiveDims`), so that the caller uses scikit-learn's evaluation."""
    free: list[_Free] = []
    evaluate = _compile(kernel, np.asarray(X, dtype=float), "", free)
    return None if evaluate is None else CompiledKernel(evaluate, free)


def set_theta(kernel: Kernel, theta: np.ndarray, n_features: int = 1) -> Kernel:
    """``kernel`` (on inputs of ``n_features`` columns) with its free log-hyperparameters set to
    ``theta`` in place, as its ``theta`` setter does without rebuilding the hyperparameter lists at
    every node; returns ``kernel``."""
    compiled = compile_kernel(kernel, np.zeros((1, n_features)))
    theta = np.asarray(theta, dtype=float)
    if compiled is None or sum(f.n_elements for f in compiled.free) != len(theta):
        kernel.theta = theta
    else:
        compiled.assign(theta)
    return kernel


def _add_free(free: list[_Free], leaf: Kernel, attr: str, prefix: str) -> bool:
    """Record ``leaf.attr`` when it is a free hyperparameter; whether it is."""
    hyper = getattr(leaf, f"hyperparameter_{attr}")
    if hyper.fixed:
        return False
    free.append(_Free(leaf, attr, prefix + hyper.name, hyper.n_elements, np.log(np.atleast_2d(hyper.bounds))))
    return True


def _compile(kernel: Kernel, X: np.ndarray, prefix: str, free: list[_Free]):
    from scipy.spatial.distance import pdist, squareform
    from sklearn.gaussian_process import kernels as k

    n = X.shape[0]
    if isinstance(kernel, ActiveDims):
        return _compile(kernel.kernel, X[:, list(kernel.dims)], prefix + "kernel__", free)
    if type(kernel) in (k.Sum, k.Product):
        before = len(free)
        left = _compile(kernel.k1, X, prefix + "k1__", free)
        split = sum(f.n_elements for f in free[before:])
        right = _compile(kernel.k2, X, prefix + "k2__", free)
        if left is None or right is None:
            return None
        if type(kernel) is k.Sum:
            def evaluate(theta):
                (k1, g1), (k2, g2) = left(theta[:split]), right(theta[split:])
                return k1 + k2, g1 + g2
        else:
            def evaluate(theta):
                (k1, g1), (k2, g2) = left(theta[:split]), right(theta[split:])
                return k1 * k2, [g * k2 for g in g1] + [k1 * g for g in g2]
        return evaluate
    if type(kernel) is k.ConstantKernel:
        free_c, value = _add_free(free, kernel, "constant_value", prefix), kernel.constant_value

        def evaluate(theta):
            K = np.full((n, n), np.exp(theta[0]) if free_c else value)
            return K, [K] if free_c else []
        return evaluate
    if type(kernel) is k.WhiteKernel:
        free_c, value = _add_free(free, kernel, "noise_level", prefix), kernel.noise_level

        def evaluate(theta):
            K = (np.exp(theta[0]) if free_c else value) * np.eye(n)
            return K, [K] if free_c else []
        return evaluate
    if type(kernel) is k.DotProduct:
        free_s, value, inner = _add_free(free, kernel, "sigma_0", prefix), kernel.sigma_0, np.inner(X, X)

        def evaluate(theta):
            s2 = (np.exp(theta[0]) if free_s else value) ** 2
            return inner + s2, [np.full((n, n), 2 * s2)] if free_s else []
        return evaluate
    if type(kernel) is k.ExpSineSquared:
        # hyperparameters in scikit-learn's (alphabetical) order: length_scale, periodicity
        free_l = _add_free(free, kernel, "length_scale", prefix)
        free_p = _add_free(free, kernel, "periodicity", prefix)
        dists = squareform(pdist(X, metric="euclidean"))
        length, period = kernel.length_scale, kernel.periodicity

        def evaluate(theta):
            ell = np.exp(theta[0]) if free_l else length
            p = np.exp(theta[int(free_l)]) if free_p else period
            arg = np.pi * dists / p
            sin = np.sin(arg)
            K = np.exp(-2 * (sin / ell) ** 2)
            grads = []
            if free_l:
                grads.append(4 / ell**2 * sin**2 * K)
            if free_p:
                grads.append(4 * arg / ell**2 * np.cos(arg) * sin * K)
            return K, grads
        return evaluate
    if type(kernel) in (k.RBF, k.Matern):
        nu = getattr(kernel, "nu", None)
        if nu not in (None, 0.5, 1.5, 2.5):
            return None
        if np.ndim(kernel.length_scale) and len(kernel.length_scale) > 1:
            return None if nu is not None else _compile_ard_rbf(kernel, X, prefix, free)
        free_l, value = _add_free(free, kernel, "length_scale", prefix), float(np.ravel(kernel.length_scale)[0])
        sq = squareform(pdist(X, metric="sqeuclidean"))

        def evaluate(theta):
            d2 = sq / (np.exp(theta[0]) if free_l else value) ** 2
            if nu is None:
                K = np.exp(-0.5 * d2)
                return K, [K * d2] if free_l else []
            d = np.sqrt(d2)
            if nu == 0.5:
                K = np.exp(-d)
                return K, [K * d] if free_l else []
            if nu == 1.5:
                r = np.sqrt(3) * d
                return (1.0 + r) * np.exp(-r), [3 * d2 * np.exp(-r)] if free_l else []
            r = np.sqrt(5) * d
            return (1.0 + r + r**2 / 3.0) * np.exp(-r), [5.0 / 3.0 * d2 * (r + 1) * np.exp(-r)] if free_l else []
        return evaluate
    return None


def _compile_ard_rbf(kernel: Kernel, X: np.ndarray, prefix: str, free: list[_Free]):
    free_l, value = _add_free(free, kernel, "length_scale", prefix), np.asarray(kernel.length_scale, dtype=float)
    diffs = (X[:, None, :] - X[None, :, :]) ** 2  # (n, n, dims)

    def evaluate(theta):
        scaled = diffs / (np.exp(theta) if free_l else value) ** 2
        K = np.exp(-0.5 * scaled.sum(axis=2))
        return K, [K * scaled[:, :, j] for j in range(scaled.shape[2])] if free_l else []
    return evaluate
