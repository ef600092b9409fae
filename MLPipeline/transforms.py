"""Box–Cox transform with Guerrero's lambda, for fitting a GP on a variance-stabilised scale."""

from __future__ import annotations

import numpy as np
from scipy import optimize

LAMBDA_BOUNDS = (0.0, 1.0)  # between log and none: wider ranges overreacted on short series


def guerrero_lambda(y, season: int, bounds=LAMBDA_BOUNDS) -> float:
    """Guerrero (1993) lambda, as R's forecast::BoxCox.lambda(method="guerrero").

    Splits the series into whole seasons (the most recent ones) and picks the lambda that makes
    sd / mean**(1 - lambda) most nearly constant across them. Returns 1 (no transform) when
    there are fewer than two whole seasons.
    """
    y = np.asarray(y, dtype=float)
    seasons = len(y) // season
    if seasons < 2 or np.any(y <= 0):
        return 1.0
    blocks = y[len(y) - seasons * season:].reshape(seasons, season)
    mean, sd = blocks.mean(axis=1), blocks.std(axis=1, ddof=1)

    def variation(lam: float) -> float:
        ratio = sd / mean ** (1.0 - lam)
        return float(np.std(ratio, ddof=1) / np.mean(ratio))

    return float(optimize.minimize_scalar(variation, bounds=bounds, method="bounded").x)


class BoxCox:
    """Box–Cox transform with a fixed lambda in [0, 1] (0 = log)."""

    def __init__(self, lam: float):
        self.lam = float(lam)

    def forward(self, y):
        y = np.asarray(y, dtype=float)
        if abs(self.lam) < 1e-8:
            return np.log(y)
        return (np.power(y, self.lam) - 1.0) / self.lam

    def _base(self, z):
        # lam * z + 1 > 0 on the transformed scale's range; clip so inverse stays >= 0
        return np.maximum(self.lam * np.asarray(z, dtype=float) + 1.0, 0.0)

    def inverse(self, z):
        if abs(self.lam) < 1e-8:
            return np.exp(z)
        return np.power(self._base(z), 1.0 / self.lam)

    def mean(self, z, sd):
        """Bias-adjusted back-transformed mean of Normal(z, sd**2) (second-order, as in fpp3)."""
        z, sd = np.asarray(z, dtype=float), np.asarray(sd, dtype=float)
        if abs(self.lam) < 1e-8:
            return np.exp(z) * (1.0 + sd**2 / 2.0)
        base = np.maximum(self._base(z), 1e-12)
        return self.inverse(z) * (1.0 + sd**2 * (1.0 - self.lam) / (2.0 * base**2))

    def std(self, z, sd):
        """Delta-method std on the original scale: sd * d(inverse)/dz."""
        z, sd = np.asarray(z, dtype=float), np.asarray(sd, dtype=float)
        if abs(self.lam) < 1e-8:
            return np.exp(z) * sd
        return sd * np.power(self._base(z), 1.0 / self.lam - 1.0)
