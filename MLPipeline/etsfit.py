"""statsmodels' ETS model whose fitted results skip the parameter covariance.

``ETSResults`` computes the covariance of the estimated parameters (a complex-step Hessian of the
likelihood) as it is constructed, about a fifth of a fit on a monthly series; the ensemble's ETS
member reads the fitted values, the residual scale, forecasts, simulated paths and the AIC, never
standard errors. Here the covariance is left undefined (NaN) and every other result is statsmodels'
own. Kept in its own module so fitted models pickle by a stable class path, and statsmodels is
imported only when an ETS model is fitted or loaded.
"""

from __future__ import annotations

import numpy as np
from statsmodels.tsa.exponential_smoothing.ets import ETSModel, ETSResults, ETSResultsWrapper


class LeanETSResults(ETSResults):
    """ETSResults with ``cov_params_approx`` (and so standard errors) NaN instead of computed."""

    @property
    def cov_params_approx(self):
        k = len(self.params)
        return np.full((k, k), np.nan)


class LeanETSModel(ETSModel):
    """ETSModel whose ``fit`` and ``smooth`` return :class:`LeanETSResults`."""

    @property
    def _res_classes(self):
        return {"fit": (LeanETSResults, ETSResultsWrapper)}
