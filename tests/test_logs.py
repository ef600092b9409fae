"""Request logs: one JSON object per line on stdout, request id honoured/generated and echoed."""

from __future__ import annotations

import json
import logging

import pytest

from service import create_app
from service.logs import REQUEST_ID_HEADER


def make_app(tmp_path, log_format="json"):
    return create_app(
        {
            "LOAD_MODELS": False,
            "OUTPUT_DIR": str(tmp_path / "Output"),
            "PREDICTION_DB_DIR": str(tmp_path / "var"),
            "LOG_FORMAT": log_format,
        }
    )


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be one JSON object


def access_lines(text: str) -> list[dict]:
    return [entry for entry in json_lines(text) if entry["logger"] == "callcenter.access"]


def test_each_request_writes_one_json_line_with_the_request_id_it_returns(tmp_path, capsys):
    client = make_app(tmp_path).test_client()
    capsys.readouterr()
    response = client.get("/health")
    (entry,) = access_lines(capsys.readouterr().out)
    assert response.headers[REQUEST_ID_HEADER] == entry["request_id"]
    assert len(entry["request_id"]) == 32  # generated: uuid4 hex
    assert entry["method"] == "GET" and entry["path"] == "/health" and entry["status"] == 200
    assert entry["level"] == "INFO" and entry["timestamp"].startswith("20")
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0


def test_a_callers_request_id_is_honoured(tmp_path, capsys):
    client = make_app(tmp_path).test_client()
    capsys.readouterr()
    response = client.post("/actuals", json={"month": "bad"}, headers={REQUEST_ID_HEADER: "trace-42.a:b_c"})
    assert response.headers[REQUEST_ID_HEADER] == "trace-42.a:b_c"
    (entry,) = access_lines(capsys.readouterr().out)
    assert (entry["request_id"], entry["status"], entry["path"]) == ("trace-42.a:b_c", 422, "/actuals")


@pytest.mark.parametrize("offered", ["has space", "x" * 129, 'quote"', "ünïcode", "semi;colon"])
def test_an_unsafe_request_id_is_replaced(tmp_path, capsys, offered):
    client = make_app(tmp_path).test_client()
    response = client.get("/health", headers={REQUEST_ID_HEADER: offered})
    assert response.headers[REQUEST_ID_HEADER] != offered
    assert len(response.headers[REQUEST_ID_HEADER]) == 32


def test_lines_logged_inside_a_request_carry_its_id(tmp_path, capsys):
    app = make_app(tmp_path)

    @app.get("/_test/noisy")
    def noisy():
        logging.getLogger("service.somewhere").warning("something worth knowing", extra={"domain": "Banking"})
        return {"ok": True}

    capsys.readouterr()
    response = app.test_client().get("/_test/noisy", headers={REQUEST_ID_HEADER: "abc123"})
    entries = json_lines(capsys.readouterr().out)
    inner = [e for e in entries if e["logger"] == "service.somewhere"]
    assert inner and inner[0]["request_id"] == "abc123" and inner[0]["domain"] == "Banking"
    assert inner[0]["level"] == "WARNING"
    assert response.headers[REQUEST_ID_HEADER] == "abc123"


def test_text_format_is_one_readable_line_per_request(tmp_path, capsys):
    client = make_app(tmp_path, "text").test_client()
    capsys.readouterr()
    response = client.get("/health")
    lines = [line for line in capsys.readouterr().out.splitlines() if "GET /health" in line]
    assert len(lines) == 1
    assert "200" in lines[0] and response.headers[REQUEST_ID_HEADER] in lines[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


def test_an_unknown_log_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="log format"):
        make_app(tmp_path, "xml")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_progress_goes_to_stderr_and_the_log_to_stdout(capsys, fmt):
    from MLPipeline.executor import Progress
    from MLPipeline.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(fmt)
    try:
        logging.getLogger("MLPipeline.pipeline").info("load: started")
        progress = Progress(2, "training", every=0)
        progress.step()
        progress.step()
        out, err = capsys.readouterr()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "load: started" in out and "series done" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "training: 2/2 series done" in lines[-1]
    if fmt == "json":
        assert json.loads(lines[-1])["done"] == 2 and json.loads(lines[-1])["total"] == 2
