"""Lazy model loading (service.model_store): the month tables serve the common path with no model
in memory; a request that needs a model loads it once; the LRU bound holds; a corrupt model file
is refused at reload while the old version keeps serving, and refused at a lazy load too."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from MLPipeline.config import MANIFEST_NAME
from MLPipeline.pipeline import RunConfig, run
from MLPipeline.sample_data import generate, write_data
from service import create_app
from service.api import REGISTRY_KEY

TOKEN = "lazy-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUEUES = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lazy")
    data = write_data(generate(n_months=48, queues=QUEUES), root / "queues.csv")
    run(RunConfig(data_path=data, output_dir=root / "Output", plots=False, backtest=False, kinds=("seasonal-naive",)))
    return root / "Output"


@pytest.fixture
def client(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_SIZE", "2")
    output = shutil.copytree(trained, tmp_path / "Output", symlinks=True)
    app = create_app({"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db"), "ADMIN_TOKEN": TOKEN})
    return app.test_client()


def store(client):
    return client.application.extensions[REGISTRY_KEY].get().bundle.models


def predict(client, series: str, month: str = "2014-06", **body):
    return client.post("/predict", json={"month": month, "domains": [series], **body})


def test_the_tables_answer_without_loading_a_model(client):
    models = store(client)
    assert models.loads == 0 and models.resident == ()  # verified by sha256 at load, never unpickled
    for i in range(1, QUEUES + 1):
        assert predict(client, f"queue {i}").status_code == 200
    assert models.loads == 0 and models.resident == ()


def test_a_request_needing_a_model_loads_it_once(client):
    models = store(client)
    # a level no month table holds needs the model itself
    first = predict(client, "queue 1", level=[50])
    assert first.status_code == 200, first.get_json()
    assert models.loads == 1 and models.resident == (("queue 1", "seasonal-naive"),)
    again = predict(client, "queue 1", month="2015-01", level=[50])  # another month: not the answer cache
    assert again.status_code == 200 and models.loads == 1
    row = first.get_json()["predictions"][0]
    assert row["lower_50"] < row["mean"] < row["upper_50"]


def test_the_lru_bound_holds(client):
    models = store(client)
    for i in (1, 2, 3):
        assert predict(client, f"queue {i}", level=[50]).status_code == 200
    assert models.capacity == 2 and models.resident == (("queue 2", "seasonal-naive"), ("queue 3", "seasonal-naive"))
    assert predict(client, "queue 1", month="2015-02", level=[50]).status_code == 200  # evicted: loaded again
    assert models.loads == 4 and len(models.resident) == 2


def _publish_copy(output, version: str) -> dict:
    current = json.loads((output / MANIFEST_NAME).read_text())
    old_run, new_run = current["run_dir"], f"runs/{version}"
    shutil.copytree(output / old_run, output / new_run)
    body = json.loads(json.dumps(current).replace(f'"{old_run}/', f'"{new_run}/').replace(f'"{old_run}"', f'"{new_run}"'))
    body["model_version"] = version
    (output / ".m.tmp").write_text(json.dumps(body))
    os.replace(output / ".m.tmp", output / MANIFEST_NAME)
    return body


def test_a_corrupt_model_file_is_refused_at_reload_and_the_old_version_serves(client):
    output = client.application.extensions[REGISTRY_KEY].directory
    old = predict(client, "queue 2").get_json()["model_version"]
    body = _publish_copy(output, "20991231T000000Z-corrupt")
    victim = output / body["artifacts"][-1]["file"]
    victim.write_bytes(victim.read_bytes()[:-3] + b"bad")
    refused = client.post("/admin/reload", headers=AUTH)
    assert refused.status_code == 409 and "sha256" in refused.get_json()["error"]["message"]
    served = predict(client, "queue 2", level=[50])  # the old version, its model loaded lazily
    assert served.status_code == 200 and served.get_json()["model_version"] == old


def test_a_model_file_corrupted_under_the_served_manifest_is_refused_when_loaded(client):
    output = client.application.extensions[REGISTRY_KEY].directory
    manifest = json.loads((output / MANIFEST_NAME).read_text())
    art = next(a for a in manifest["artifacts"] if a["series"] == "queue 4")
    path = output / art["file"]
    payload = bytearray(path.read_bytes())
    payload[art["offset"] + art["length"] - 3:art["offset"] + art["length"]] = b"bad"  # its bytes of the shard
    path.write_bytes(bytes(payload))
    assert predict(client, "queue 4").status_code == 200  # the table still answers
    refused = predict(client, "queue 4", level=[50])
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "model_not_loaded"
    assert "sha256" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize("name", ["tables.npy", "table_index.npy"])
def test_a_corrupt_month_table_is_refused_at_reload_and_the_old_version_serves(client, name):
    output = client.application.extensions[REGISTRY_KEY].directory
    old = predict(client, "queue 3").get_json()
    body = _publish_copy(output, "20991231T000000Z-table")
    victim = output / body["run_dir"] / name
    payload = bytearray(victim.read_bytes())
    payload[-5] ^= 0xFF
    victim.write_bytes(bytes(payload))
    refused = client.post("/admin/reload", headers=AUTH)
    assert refused.status_code == 409 and "sha256" in refused.get_json()["error"]["message"]
    served = predict(client, "queue 3").get_json()
    assert served == old and served["model_version"] != body["model_version"]


def test_the_bundle_loads_without_unpickling_and_reads_the_facts_from_the_manifest(client):
    from service.loaded import ModelFacts

    loaded = client.application.extensions[REGISTRY_KEY].get()
    assert loaded.bundle.models.loads == 0
    fact = loaded.facts[("queue 1", "seasonal-naive")]
    model = loaded.forecaster("queue 1", "seasonal-naive")  # now loaded: the facts agree with it
    assert fact == ModelFacts(first=fact.first, regressors=tuple(model.regressors_), sums_path=model.sums_path())
    assert fact.first == model.first_month().year * 12 + model.first_month().month - 1
    assert not loaded.tables["queue 1", "seasonal-naive"].values.flags.writeable  # mapped read-only
