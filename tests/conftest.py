"""Shared fixtures: sample and real data paths, a trained Output directory, workbook writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import DEFAULT_DATA_PATH, SHARED_DATA_PATH
from MLPipeline.pipeline import RunConfig, run
from MLPipeline.sample_data import generate, to_workbook_frame

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a resource is missing; fail in CI, where everything must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def holdout_coverage(cases, forecast) -> dict[int, float]:
    """Share of held-out months inside the 80% and 95% intervals, pooled over ``cases``.

    ``cases`` yields (training series, held-out values); ``forecast(train, horizon)`` returns a
    frame with lower_/upper_ 80 and 95 columns.
    """
    inside: dict[int, list[bool]] = {80: [], 95: []}
    for train, actual in cases:
        actual = np.asarray(actual, dtype=float)
        fc = forecast(train, len(actual))
        for level, hits in inside.items():
            hits += list((actual >= fc[f"lower_{level}"].to_numpy()) & (actual <= fc[f"upper_{level}"].to_numpy()))
    return {level: float(np.mean(hits)) for level, hits in inside.items()}


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return DEFAULT_DATA_PATH


@pytest.fixture(scope="session")
def real_path() -> Path:
    require(SHARED_DATA_PATH.exists(), f"real workbook not found at {SHARED_DATA_PATH}")
    return SHARED_DATA_PATH


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """The seeded sample as a tidy frame (clean names, month-start index)."""
    return generate()


@pytest.fixture(scope="session")
def trained_output(tmp_path_factory, sample_path) -> Path:
    """A session-wide Output directory trained on the shipped sample (no figures).

    Every model uses the regressors (``regressors="always"``), so the service's regressor
    handling is exercised; on the sample the Engine's default ("auto") would drop them.
    """
    out = tmp_path_factory.mktemp("trained") / "Output"
    run(RunConfig(data_path=sample_path, output_dir=out, plots=False, regressors="always"))
    return out


@pytest.fixture
def workbook_frame() -> pd.DataFrame:
    """A fresh copy of the sample in workbook layout (original headers), to corrupt in tests."""
    return to_workbook_frame(generate(n_months=36))


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_excel(path, index=False, engine="openpyxl")
    return path
