"""Every kind of model by name: what ``kind`` in the manifest, the API and Engine.py means."""

from __future__ import annotations

from MLPipeline.ensemble import Ensemble
from MLPipeline.forecaster import GP_KINDS, GPForecaster
from MLPipeline.smoothing import SeasonalNaive
from MLPipeline.statespace import StateSpaceGP

#: Kinds a model can be made of (config.KINDS lists the ones Engine.py trains by default).
MODEL_KINDS: tuple[str, ...] = (*GP_KINDS, Ensemble.kind, SeasonalNaive.kind)
#: Kinds for series of any frequency, on numpy arrays only (``fit(y, X)``, ``predict(steps, X, level)``):
#: the monthly pipeline does not train them, so they are not among MODEL_KINDS.
ARRAY_KINDS: tuple[str, ...] = (StateSpaceGP.kind,)


def make_model(kind: str, **params):
    """An unfitted model of ``kind`` (``params`` go to its constructor)."""
    if kind in GP_KINDS:
        return GPForecaster(kind, **params)
    if kind == Ensemble.kind:
        return Ensemble(**params)
    if kind == SeasonalNaive.kind:
        return SeasonalNaive(**params)
    if kind == StateSpaceGP.kind:
        return StateSpaceGP(**params)
    raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS + ARRAY_KINDS)}, got {kind!r}")
