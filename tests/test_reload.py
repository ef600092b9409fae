"""POST /admin/reload: Bearer ADMIN_TOKEN (403 when unset), a valid new bundle is swapped in, a
corrupt or mismatched one is refused with a clear error and the old models keep serving; other
workers follow an accepted reload."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from MLPipeline.config import MANIFEST_NAME
from service import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def output(trained_output, tmp_path):
    """A private copy of the trained Output, free to be changed by the test."""
    return shutil.copytree(trained_output, tmp_path / "Output", symlinks=True)


def make_app(output, tmp_path, **config):
    settings = {"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db"), "ADMIN_TOKEN": TOKEN}
    return create_app({**settings, **config})


def manifest(output) -> dict:
    return json.loads((output / MANIFEST_NAME).read_text())


def write_manifest(output, body: dict) -> None:
    tmp = output / f".{MANIFEST_NAME}.test"
    tmp.write_text(json.dumps(body))
    os.replace(tmp, output / MANIFEST_NAME)


def publish_copy(output, version: str) -> str:
    """Publish the current run again as a new run ``version`` (same verified files)."""
    current = manifest(output)
    old_run, new_run = current["run_dir"], f"runs/{version}"
    shutil.copytree(output / old_run, output / new_run)
    text = json.dumps(current).replace(f'"{old_run}/', f'"{new_run}/').replace(f'"{old_run}"', f'"{new_run}"')
    body = json.loads(text)
    body["model_version"] = version
    write_manifest(output, body)
    return new_run


def served_version(client) -> str:
    response = client.post("/predict", json={"month": "2020-06", "domains": ["Banking"]})
    assert response.status_code == 200, response.get_json()
    versions = {row["model_version"] for row in response.get_json()["predictions"]}
    assert len(versions) == 1
    return response.get_json()["model_version"]


def test_reload_is_disabled_with_403_when_admin_token_is_unset(output, tmp_path):
    client = make_app(output, tmp_path, ADMIN_TOKEN=None).test_client()
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
def test_a_missing_or_wrong_token_is_401(output, tmp_path, headers):
    response = make_app(output, tmp_path).test_client().post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_new_valid_model_is_swapped_in(output, tmp_path):
    client = make_app(output, tmp_path).test_client()
    old = served_version(client)
    publish_copy(output, "20991231T000000Z-newmodel")
    assert served_version(client) == old  # nothing changes until the reload

    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "reloaded",
        "previous_version": old,
        "model_version": "20991231T000000Z-newmodel",
    }
    assert served_version(client) == "20991231T000000Z-newmodel"
    assert client.get("/model").get_json()["model_version"] == "20991231T000000Z-newmodel"
    assert client.get("/ready").get_json()["model_version"] == "20991231T000000Z-newmodel"


def test_reloading_the_same_manifest_reports_unchanged(output, tmp_path):
    client = make_app(output, tmp_path).test_client()
    body = client.post("/admin/reload", headers=AUTH).get_json()
    assert body["status"] == "unchanged" and body["previous_version"] == body["model_version"]


def corrupt_manifest(output):
    (output / MANIFEST_NAME).write_text('{"schema_version": 1, "model_ver')


def tampered_model(output):
    run = publish_copy(output, "20991231T000000Z-tampered")
    pickle_path = next((output / run / "models").glob("shard-*.bin"))
    payload = bytearray(pickle_path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    pickle_path.write_bytes(bytes(payload))


def missing_model(output):
    run = publish_copy(output, "20991231T000000Z-missing")
    next((output / run / "models").glob("shard-*.bin")).unlink()


def other_library_versions(output):
    body = manifest(output)
    body["libraries"]["numpy"] = "0.0.1"
    write_manifest(output, body)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (corrupt_manifest, "manifest"),
        (tampered_model, "sha256"),
        (missing_model, "missing"),
        (other_library_versions, "library versions"),
    ],
)
def test_a_bad_model_is_refused_and_the_old_one_keeps_serving(output, tmp_path, damage, says):
    client = make_app(output, tmp_path).test_client()
    old = served_version(client)
    damage(output)

    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "reload_refused"
    assert says in error["message"] and f"still serving {old}" in error["message"]
    assert served_version(client) == old
    assert client.get("/ready").status_code == 200


def test_other_workers_follow_an_accepted_reload(output, tmp_path):
    """Two apps on one Output stand for two gunicorn workers: a reload in one reaches the other."""
    first = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    second = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    old = served_version(second)
    publish_copy(output, "20991231T000000Z-shared")
    assert first.post("/admin/reload", headers=AUTH).status_code == 200
    assert served_version(second) == "20991231T000000Z-shared" != old


def test_a_worker_does_not_follow_a_refused_reload(output, tmp_path):
    first = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    second = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    old = served_version(second)
    corrupt_manifest(output)
    assert first.post("/admin/reload", headers=AUTH).status_code == 409
    assert served_version(second) == old


def test_a_worker_started_without_models_becomes_ready_once_they_appear(trained_output, tmp_path):
    output = tmp_path / "Output"
    client = make_app(output, tmp_path, LOAD_RETRY_SECONDS=0).test_client()
    assert client.get("/ready").status_code == 503
    shutil.copytree(trained_output, output, symlinks=True)
    response = client.get("/ready")
    assert (
        response.status_code == 200
        and response.get_json()["model_version"] == manifest(output)["model_version"]
    )


def test_loaded_models_are_frozen_out_of_the_garbage_collectors_walks(output, tmp_path):
    """service.registry.settle_heap: a full collection must not walk the models (the p99 pauses)."""
    import gc

    from service.api import REGISTRY_KEY

    def tracked(obj) -> bool:  # in a generation the collector walks (frozen ones are not)
        return any(o is obj for o in gc.get_objects())

    client = make_app(output, tmp_path).test_client()
    registry = client.application.extensions[REGISTRY_KEY]
    first = registry.get().series  # what a load builds (the models themselves load lazily)
    assert gc.get_freeze_count() > 0 and not tracked(first)
    publish_copy(output, "20991231T000000Z-newmodel")
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    second = registry.get().series
    assert second is not first and not tracked(second)
    gc.unfreeze()  # the control: the same check sees an unfrozen object
    try:
        assert tracked(second)
    finally:
        gc.freeze()


# ------------------------------------------- the manifest on disk is the truth


def test_workers_converge_on_the_manifest_on_disk(output, tmp_path):
    """A reload in one worker, then a newer manifest before the other's next request: both end on
    the newest (a marker naming the reloaded version used to leave the first one behind)."""
    first = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    second = make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client()
    publish_copy(output, "20991231T000000Z-v2")
    assert first.post("/admin/reload", headers=AUTH).get_json()["model_version"] == "20991231T000000Z-v2"
    publish_copy(output, "20991231T000000Z-v3")
    assert [served_version(client) for client in (first, second, first)] == ["20991231T000000Z-v3"] * 3


def test_a_manifest_replaced_on_disk_is_followed_without_a_reload_call(output, tmp_path):
    """What a promote or rollback does: replace manifest.json atomically; every worker follows."""
    workers = [make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client() for _ in range(2)]
    publish_copy(output, "20991231T000000Z-promoted")
    assert [served_version(client) for client in workers] == ["20991231T000000Z-promoted"] * 2


def test_a_broken_manifest_is_refused_by_every_worker_the_same_way(output, tmp_path):
    workers = [make_app(output, tmp_path, RELOAD_SYNC_SECONDS=0).test_client() for _ in range(2)]
    old = served_version(workers[0])
    assert served_version(workers[1]) == old
    good = manifest(output)
    corrupt_manifest(output)
    answers = [client.get("/ready") for client in workers * 2]
    assert {response.status_code for response in answers} == {200}  # still serving: still ready
    checks = {response.get_json()["checks"]["manifest"] for response in answers}
    assert len(checks) == 1 and checks.pop().startswith(f"refused, serving {old}: manifest")
    assert [served_version(client) for client in workers] == [old, old]
    write_manifest(output, good)  # put right: every worker says so again
    assert {client.get("/ready").get_json()["checks"]["manifest"] for client in workers} == {"ok"}


def test_a_manifest_that_is_a_fifo_is_refused_at_once_not_waited_on(output, tmp_path):
    """Opening a FIFO for reading waits for a writer: the reload request hung for ever."""
    client = make_app(output, tmp_path).test_client()
    old = served_version(client)
    (output / MANIFEST_NAME).unlink()
    os.mkfifo(output / MANIFEST_NAME)
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=client.post("/admin/reload", headers=AUTH)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # the old code: let the reader go, then fail
        with open(output / MANIFEST_NAME, "w"):
            pass
        thread.join(timeout=10)
        pytest.fail("the reload waited on the FIFO")
    assert answer["r"].status_code == 409
    assert "not a regular file" in answer["r"].get_json()["error"]["message"]
    assert served_version(client) == old


def test_a_manifest_symlinked_outside_the_model_directory_is_refused(output, tmp_path):
    client = make_app(output, tmp_path).test_client()
    old = served_version(client)
    body = manifest(output)
    body["model_version"] = "20991231T000000Z-outside"
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(body))
    (output / MANIFEST_NAME).unlink()
    (output / MANIFEST_NAME).symlink_to(outside)
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 409 and "outside the model directory" in response.get_json()["error"]["message"]
    assert served_version(client) == old
    # A link that stays inside (a promote may point manifest.json at a run's copy) is served.
    inside = output / "runs" / "promoted.json"
    inside.write_text(outside.read_text())
    (output / MANIFEST_NAME).unlink()
    (output / MANIFEST_NAME).symlink_to(inside.relative_to(output))
    assert client.post("/admin/reload", headers=AUTH).get_json()["model_version"] == "20991231T000000Z-outside"
