"""Every kind of model by name: what ``kind`` in the manifest, the API and Engine.py means."""

from __future__ import annotations

from MLPipeline.ensemble import Ensemble
from MLPipeline.forecaster import GP_KINDS, GPForecaster
from MLPipeline.smoothing import SeasonalNaive
from MLPipeline.statespace_forecaster import StateSpaceForecaster

#: Kinds of monthly models (config.KINDS lists the ones Engine.py trains by default).
MONTHLY_KINDS: tuple[str, ...] = (*GP_KINDS, Ensemble.kind, SeasonalNaive.kind)
#: Kinds for series of any frequency: the only ones trained on weekly, daily, hourly and half-hourly data.
ANY_FREQUENCY_KINDS: tuple[str, ...] = (StateSpaceForecaster.kind,)
MODEL_KINDS: tuple[str, ...] = MONTHLY_KINDS + ANY_FREQUENCY_KINDS


def make_model(kind: str, **params):
    """An unfitted model of ``kind`` (``params`` go to its constructor)."""
    if kind in GP_KINDS:
        return GPForecaster(kind, **params)
    if kind == Ensemble.kind:
        return Ensemble(**params)
    if kind == SeasonalNaive.kind:
        return SeasonalNaive(**params)
    if kind == StateSpaceForecaster.kind:
        return StateSpaceForecaster(**params)
    raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
