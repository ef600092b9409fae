"""Saved models: verification refuses anything that does not match the manifest."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from MLPipeline.artifacts import ArtifactError, load_bundle
from MLPipeline.config import DOMAINS, KINDS


@pytest.fixture
def output_copy(trained_output, tmp_path):
    out = tmp_path / "Output"
    shutil.copytree(trained_output, out, symlinks=True)
    return out


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _write_manifest(out, manifest):
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_bundle_loads_everything(trained_output):
    bundle = load_bundle(trained_output)
    assert set(bundle.models) == {(d, k) for d in DOMAINS for k in KINDS}
    assert set(bundle.preferred) == set(DOMAINS)
    assert bundle.train_end == bundle.history.index[-1] and bundle.train_start == bundle.history.index[0]
    assert bundle.version == _manifest(trained_output)["model_version"]
    frame = bundle.holdout[("Healthcare", "level")]
    assert {"actual", "mean", "lower_95", "upper_95"} <= set(frame.columns) and len(frame) == 12
    assert frame.index[-1] == bundle.train_end


def test_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="no trained model"):
        load_bundle(tmp_path)


def test_corrupt_manifest(output_copy):
    (output_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_bundle(output_copy)


def test_tampered_pickle_is_refused(output_copy):
    art = _manifest(output_copy)["artifacts"][0]
    path = output_copy / art["file"]
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        load_bundle(output_copy)


def test_missing_pickle_is_refused(output_copy):
    art = _manifest(output_copy)["artifacts"][3]
    (output_copy / art["file"]).unlink()
    with pytest.raises(ArtifactError, match="missing or unreadable"):
        load_bundle(output_copy)


def test_library_version_mismatch_is_refused(output_copy):
    manifest = _manifest(output_copy)
    manifest["libraries"]["scikit-learn"] = "0.0.1"
    _write_manifest(output_copy, manifest)
    with pytest.raises(ArtifactError, match="scikit-learn 0.0.1"):
        load_bundle(output_copy)


def test_path_outside_directory_is_refused(output_copy, tmp_path):
    manifest = _manifest(output_copy)
    manifest["artifacts"][0]["file"] = "../../etc/passwd"
    _write_manifest(output_copy, manifest)
    with pytest.raises(ArtifactError, match="outside the model directory"):
        load_bundle(output_copy)


def test_wrong_schema_version(output_copy):
    manifest = _manifest(output_copy)
    manifest["schema_version"] = 99
    _write_manifest(output_copy, manifest)
    with pytest.raises(ArtifactError, match="schema version 99"):
        load_bundle(output_copy)


def test_reloaded_models_predict_identically(trained_output):
    first, second = load_bundle(trained_output), load_bundle(trained_output)
    for key, model in first.models.items():
        X = first.history[list(model.regressors_)].iloc[-3:] if model.regressors_ else None
        np.testing.assert_array_equal(model.predict_at(first.history.index[-3:], X).to_numpy(),
                                      second.models[key].predict_at(first.history.index[-3:], X).to_numpy())
