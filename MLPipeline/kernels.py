"""Kernel and prior construction for the two model kinds.

Inputs are time in years (column 0, zero at the last training month) and, optionally,
standardised regressors (columns 1..). Targets are standardised, so the prior medians
below are in units of the target's standard deviation. Sub-kernels are named as in
scikit-learn's Mauna Loa CO2 example.

The priors were chosen on a development subset of 60 M1 monthly series and the call-centre
rolling origin (bench/accuracy.py); the changes that mattered most there: the linear trend's
time origin at the forecast origin (its intercept variance is smallest where the forecast
starts), a slowly decaying seasonal shape (decay median 10 years) and a free linear offset.
"""

from __future__ import annotations

from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    ExpSineSquared,
    Kernel,
    Matern,
    WhiteKernel,
)

from MLPipeline.gp import ActiveDims, LogNormalPrior

_WIDE = (1e-6, 1e6)  # priors, not bounds, keep hyperparameters sensible
PERIOD_YEARS = 1.0  # the 12-month season, in the time unit of column 0


def _scaled(variance: float, kernel: Kernel) -> Kernel:
    return ConstantKernel(variance, _WIDE) * kernel


def _component(kernel: Kernel, priors: dict[str, LogNormalPrior], dims=None):
    if dims is not None:
        kernel = ActiveDims(kernel, dims)
        priors = {f"kernel__{k}": v for k, v in priors.items()}
    return kernel, priors


def _assemble(components) -> tuple[Kernel, dict[str, LogNormalPrior]]:
    """Sum the components and translate each one's local prior names to full names."""
    total = components[0][0]
    for kernel, _ in components[1:]:
        total = total + kernel
    params = total.get_params(deep=True)
    priors: dict[str, LogNormalPrior] = {}
    for kernel, local in components:
        path = next((k for k, v in params.items() if v is kernel), None)
        prefix = f"{path}__" if path else ""
        priors.update({prefix + name: prior for name, prior in local.items()})
    return total, priors


def _time(n_regressors: int):
    return (0,) if n_regressors else None


def _regressor_component(n_regressors: int):
    # ARD: a length-scale per regressor, so one that does not help drifts to a long scale.
    rbf = RBF(length_scale=[3.0] * n_regressors, length_scale_bounds=_WIDE)
    return _component(
        _scaled(0.02, rbf),
        {"k1__constant_value": LogNormalPrior(0.02, 1.5), "k2__length_scale": LogNormalPrior(3.0, 1.0)},
        dims=tuple(range(1, n_regressors + 1)),
    )


def _seasonal_component(variance: float, n_regressors: int):
    periodic = ExpSineSquared(length_scale=1.0, periodicity=PERIOD_YEARS, length_scale_bounds=_WIDE,
                              periodicity_bounds="fixed")
    decay = RBF(length_scale=10.0, length_scale_bounds=_WIDE)
    return _component(
        _scaled(variance, periodic * decay),
        {
            "k1__constant_value": LogNormalPrior(variance, 1.0),
            "k2__k1__length_scale": LogNormalPrior(1.0, 0.5),
            "k2__k2__length_scale": LogNormalPrior(10.0, 0.7),
        },
        dims=_time(n_regressors),
    )


def _irregularities_component(variance: float, n_regressors: int):
    return _component(
        _scaled(variance, Matern(length_scale=0.25, length_scale_bounds=_WIDE, nu=1.5)),
        {"k1__constant_value": LogNormalPrior(variance, 1.0), "k2__length_scale": LogNormalPrior(0.25, 0.7)},
        dims=_time(n_regressors),
    )


def _noise_component(variance: float):
    return WhiteKernel(variance, _WIDE), {"noise_level": LogNormalPrior(variance, 1.0)}


def level_kernel(n_regressors: int = 0) -> tuple[Kernel, dict[str, LogNormalPrior]]:
    """Kernel and priors for a GP on the (standardised) level.

    long-term trend = linear + smooth RBF; seasonal = 12-month periodic x RBF decay;
    irregularities = Matern-3/2; regressors = ARD RBF; noise = white.
    """
    time = _time(n_regressors)
    linear = _component(
        _scaled(0.3, DotProduct(sigma_0=1.0, sigma_0_bounds=_WIDE)),
        {"k1__constant_value": LogNormalPrior(0.3, 1.5), "k2__sigma_0": LogNormalPrior(1.0, 1.0)},
        dims=time,
    )
    smooth = _component(
        _scaled(0.3, RBF(length_scale=2.0, length_scale_bounds=_WIDE)),
        {"k1__constant_value": LogNormalPrior(0.3, 1.0), "k2__length_scale": LogNormalPrior(2.0, 0.7)},
        dims=time,
    )
    parts = [linear, smooth, _seasonal_component(0.3, n_regressors), _irregularities_component(0.05, n_regressors)]
    if n_regressors:
        parts.append(_regressor_component(n_regressors))
    parts.append(_noise_component(0.03))
    return _assemble(parts)


def difference_kernel(n_regressors: int = 0) -> tuple[Kernel, dict[str, LogNormalPrior]]:
    """Kernel and priors for a GP on (standardised) month-over-month differences.

    drift = smooth RBF (slowly changing growth rate); seasonal; irregularities; noise.
    """
    drift = _component(
        _scaled(0.1, RBF(length_scale=1.0, length_scale_bounds=_WIDE)),
        {"k1__constant_value": LogNormalPrior(0.1, 1.0), "k2__length_scale": LogNormalPrior(1.0, 0.7)},
        dims=_time(n_regressors),
    )
    parts = [drift, _seasonal_component(0.3, n_regressors), _irregularities_component(0.05, n_regressors)]
    if n_regressors:
        parts.append(_regressor_component(n_regressors))
    parts.append(_noise_component(0.3))
    return _assemble(parts)
