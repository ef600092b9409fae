"""Saved models: verification refuses anything that does not match the manifest."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from MLPipeline.artifacts import ArtifactError, load_bundle, series_key
from MLPipeline.config import KINDS
from MLPipeline.months import month_ordinal
from MLPipeline.sample_data import DEFAULT_QUEUES


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
    assert set(bundle.models) == {(d, k) for d in DEFAULT_QUEUES for k in KINDS}
    assert bundle.ids == DEFAULT_QUEUES and set(bundle.preferred) == set(DEFAULT_QUEUES)
    assert bundle.history.ids == DEFAULT_QUEUES and bundle.regressors == ("phone_lines", "channels")
    for sid, info in bundle.series.items():
        assert (info.first, info.last) == (bundle.history[sid].start, bundle.history[sid].end)
    assert bundle.version == _manifest(trained_output)["model_version"]
    frame = bundle.holdout[("Healthcare", "level")]
    assert {"actual", "mean", "lower_95", "upper_95"} <= set(frame.columns) and len(frame) == 12
    assert month_ordinal(frame.index[-1]) == bundle.series["Healthcare"].last


def test_file_names_never_hold_a_series_id(trained_output):
    manifest = _manifest(trained_output)
    for art in manifest["artifacts"]:
        assert art["series"] not in art["file"] and series_key(art["series"]) not in art["file"]
        assert re.fullmatch(r"models/shard-\d{5}\.bin", art["file"].split("/", 2)[-1])
    assert all(art["series"] not in name for name in manifest["files"] for art in manifest["artifacts"])


def test_models_are_packed_in_shards_each_with_its_sha256(trained_output, monkeypatch, tmp_path):
    from MLPipeline import artifacts
    from MLPipeline.pipeline import RunConfig, run
    from MLPipeline.sample_data import generate, write_data

    monkeypatch.setattr(artifacts, "MODELS_PER_SHARD", 4)
    data = write_data(generate(n_months=36, queues=9), tmp_path / "nine.csv")
    manifest = run(RunConfig(data_path=data, output_dir=tmp_path / "Output", plots=False, backtest=False,
                             kinds=("seasonal-naive",)))
    shards = sorted({art["file"] for art in manifest["artifacts"]})
    assert len(shards) == 3 and all(name in manifest["files"] for name in shards)  # 4 + 4 + 1 models
    bundle = load_bundle(tmp_path / "Output")
    assert len(bundle.models) == 9 and all(m.regressors_ == () for m in bundle.models.values())


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
    (output_copy / art["file"]).unlink()  # its shard
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
    for (sid, kind), model in first.models.items():
        y, X = first.history[sid].to_pandas(first.regressors)
        X = X.iloc[-3:] if model.regressors_ else None
        np.testing.assert_array_equal(model.predict_at(y.index[-3:], X).to_numpy(),
                                      second.models[(sid, kind)].predict_at(y.index[-3:], X).to_numpy())
