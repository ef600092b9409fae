"""The run registry: the champion/challenger gate, ``Engine.py runs list|show|promote|rollback``,
``--keep N``, ``GET /models``, and a running gunicorn following a promote and a rollback."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from Engine import EXIT_CANDIDATE
from MLPipeline.config import MANIFEST_NAME
from MLPipeline.sample_data import DEFAULT_QUEUES, generate, write_data
from service import create_app
from tests import servers
from tests.conftest import quick_engine


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The sample (2011-01..2016-04: servers.BODY asks for 2021-03, within 60 months of the end) and a
    copy whose year before the holdout is tripled: its seasonal-naive holdout forecast is far off, so
    a run trained on it scores worse on the same months."""
    root = tmp_path_factory.mktemp("runs")
    clean = generate(n_months=64)
    worse = clean.copy()
    worse.iloc[-24:-12, :len(DEFAULT_QUEUES)] *= 3
    return write_data(clean, root / "clean.csv"), write_data(worse, root / "worse.csv")


def served(out) -> str:
    return json.loads((out / MANIFEST_NAME).read_text())["model_version"]


def kept(out) -> list[str]:
    return sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith("."))


def runs_cli(capsys, *args) -> tuple[int, str, str]:
    import Engine

    capsys.readouterr()
    code = Engine.main(["runs", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_worse_run_is_kept_as_a_candidate_and_force_publishes_it(datasets, tmp_path, capsys):
    clean, worse = datasets
    out = tmp_path / "Output"
    assert quick_engine(clean, out) == 0
    champion = served(out)
    capsys.readouterr()
    assert quick_engine(worse, out) == EXIT_CANDIDATE
    err = capsys.readouterr().err
    assert served(out) == champion  # the served version is unchanged
    candidate = [v for v in kept(out) if v != champion]
    assert len(candidate) == 1 and f"candidate {candidate[0]} not published" in err and "worse than" in err
    gate = json.loads((out / "runs" / candidate[0] / MANIFEST_NAME).read_text())["gate"]
    assert gate["published"] is False and gate["champion"] == champion
    assert gate["overall"]["challenger"] > gate["overall"]["champion"] * 1.05
    report = (out / "runs" / candidate[0] / "report.md").read_text()
    assert "kept as a candidate" in report and "| overall (mean) |" in report
    assert quick_engine(worse, out, "--force") == 0
    forced = served(out)
    assert forced not in (champion, candidate[0])
    assert "published with --force" in json.loads((out / MANIFEST_NAME).read_text())["gate"]["reason"]


def test_an_equal_run_is_published(datasets, tmp_path):
    clean, _ = datasets
    out = tmp_path / "Output"
    assert quick_engine(clean, out) == 0
    first = served(out)
    assert quick_engine(clean, out) == 0
    assert served(out) != first


def test_runs_list_show_promote_rollback_and_keep(datasets, tmp_path, capsys):
    clean, worse = datasets
    out = tmp_path / "Output"
    assert quick_engine(clean, out) == 0
    first = served(out)
    assert quick_engine(worse, out) == EXIT_CANDIDATE
    candidate = [v for v in kept(out) if v != first][0]

    code, text, _ = runs_cli(capsys, "list", "--output", str(out))
    assert code == 0
    lines = text.splitlines()
    assert lines[1].startswith(f"  {candidate}") and lines[1].endswith("candidate")
    assert lines[2].startswith(f"* {first}") and lines[2].endswith("published")
    code, text, _ = runs_cli(capsys, "show", candidate, "--output", str(out))
    shown = json.loads(text)
    assert code == 0 and shown["serving"] is False and set(shown["per_series"]) == set(DEFAULT_QUEUES)

    code, text, _ = runs_cli(capsys, "promote", candidate, "--output", str(out))
    assert (code, text.strip(), served(out)) == (0, f"serving {candidate}", candidate)
    code, text, _ = runs_cli(capsys, "rollback", "--output", str(out))
    assert (code, served(out)) == (0, first) and f"was {candidate}" in text
    code, _, err = runs_cli(capsys, "rollback", "--output", str(out))
    assert code == 2 and "nothing to roll back to" in err and served(out) == first

    for bad in ("20990101T000000000000Z-deadbeef", "../runs", ".partial-x"):
        code, _, err = runs_cli(capsys, "promote", bad, "--output", str(out))
        assert code == 2 and len(err.strip().splitlines()) == 1 and served(out) == first
    # A damaged run is refused before anything is published.
    model = next((out / "runs" / candidate / "models").iterdir())
    model.write_bytes(model.read_bytes() + b"x")
    code, _, err = runs_cli(capsys, "promote", candidate, "--output", str(out))
    assert code == 2 and "sha256" in err and served(out) == first

    assert quick_engine(clean, out, "--keep", "1") == 0
    assert kept(out) == [served(out)]


def test_models_endpoint_lists_the_runs_and_which_one_serves(datasets, tmp_path):
    clean, worse = datasets
    out = tmp_path / "Output"
    assert quick_engine(clean, out) == 0
    assert quick_engine(worse, out) == EXIT_CANDIDATE
    client = create_app({"OUTPUT_DIR": str(out), "PREDICTION_DB_DIR": str(tmp_path / "db")}).test_client()
    body = client.get("/models").get_json()
    assert body["serving"] == body["manifest"] == served(out)
    assert [r["serving"] for r in body["runs"]] == [False, True]
    assert [r["gate"]["published"] for r in body["runs"]] == [False, True]
    assert body["runs"][1]["holdout"]["mase"] > 0 and body["runs"][0]["series"] == len(DEFAULT_QUEUES)


def test_gunicorn_follows_promote_and_rollback_without_restart_or_lost_rows(datasets, tmp_path, capsys):
    clean, worse = datasets
    out = tmp_path / "Output"
    assert quick_engine(clean, out) == 0
    first = served(out)
    assert quick_engine(worse, out, "--force") == 0
    second = served(out)
    env = {"OUTPUT_DIR": str(out), "PREDICTION_DB_DIR": str(tmp_path / "db")}
    with servers.Gunicorn(tmp_path, env, workers=2) as server:
        master = server.process.pid
        workers = servers.wait_until(lambda: len(servers.workers_of(master)) == 2 and servers.workers_of(master))
        answers: dict[str, tuple[int, dict | str]] = {}
        stop = threading.Event()

        def load():  # requests keep coming through every switch
            while not stop.is_set():
                answers.update(servers.fire(server.url, [uuid.uuid4().hex for _ in range(4)], threads=2))

        def all_answer(version):
            ids = [uuid.uuid4().hex for _ in range(8)]
            fired = servers.fire(server.url, ids, threads=4)
            answers.update(fired)
            assert {status for status, _ in fired.values()} == {200}, fired
            return all(body["model_version"] == version for _, body in fired.values())

        loader = threading.Thread(target=load)
        loader.start()
        try:
            assert all_answer(second)
            assert runs_cli(capsys, "rollback", "--output", str(out))[0] == 0
            assert servers.wait_until(lambda: all_answer(first), timeout=20)
            assert runs_cli(capsys, "promote", second, "--output", str(out))[0] == 0
            assert servers.wait_until(lambda: all_answer(second), timeout=20)
        finally:
            stop.set()
            loader.join()
        assert servers.workers_of(master) == workers  # switched without restarting a worker
    assert {status for status, _ in answers.values()} == {200}
    assert {body["model_version"] for _, body in answers.values()} == {first, second}
    rows = servers.logged_rows(f"sqlite:///{tmp_path / 'db' / 'predictions.db'}")
    servers.assert_one_row_per_prediction(rows, set(answers))
