"""A Gaussian-process regressor fitted by MAP: log marginal likelihood + log-normal priors.

scikit-learn maximises the marginal likelihood alone, which on short monthly series lets
length-scales collapse or explode. Following Corani, Benavoli and Zaffalon (ECML-PKDD 2021,
"Time series forecasting with Gaussian Processes needs priors"), we add a log-normal prior
per hyperparameter. Kernel hyperparameters are optimised as ``theta = log(value)``, so a
log-normal prior on a value is a normal prior on its ``theta`` entry.
"""

from __future__ import annotations

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

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
    are left flat. After ``fit``: ``log_marginal_likelihood_value_`` is the plain log marginal
    likelihood and ``log_posterior_value_`` adds the log prior, both at the fitted ``kernel_``.
    """

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
        super().fit(X, y)
        theta = self.kernel_.theta
        self.log_posterior_value_ = float(self.log_marginal_likelihood_value_)
        self.log_marginal_likelihood_value_ = float(
            GaussianProcessRegressor.log_marginal_likelihood(self, theta, clone_kernel=True)
        )
        return self


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
