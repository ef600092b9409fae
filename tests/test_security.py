"""Security of the API: JSON depth and number limits, strict types, security headers,
no debug mode or stack traces, no filesystem paths in /ready or reload answers.

Covered elsewhere, not repeated: body size 413, empty/NaN/Infinity bodies and nesting past
Python's recursion limit (tests/test_api.py), the 500 shape for an unknown failure on an extra
route (test_api), ADMIN_TOKEN 403/401 (tests/test_reload.py), pickles only from inside the
manifest directory and only after their sha256 matches (tests/test_artifacts.py).
"""

from __future__ import annotations

import json
import shutil

import pytest

from service import create_app, inference
from service.api import MAX_JSON_DEPTH, SECURITY_HEADERS
from tests.conftest import next_month

TOKEN = "s3cret-token"


def post_raw(client, raw: str, path: str = "/predict"):  # noqa: F811 - fixture name
    return client.post(path, data=raw, content_type="application/json")


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == code
    return body["error"]


def nested(depth: int) -> str:
    """A body whose ``month`` field holds arrays nested so the deepest sits at ``depth``."""
    return '{"month": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_json_deeper_than_the_limit_is_400_and_at_the_limit_is_validated(client):  # noqa: F811
    error = error_of(post_raw(client, nested(MAX_JSON_DEPTH + 1)), 400, "malformed_json")
    assert "nested too deeply" in error["message"]
    error_of(post_raw(client, nested(MAX_JSON_DEPTH)), 422, "invalid_month")  # parsed, then refused


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ('{"month": "2021-03", "phone_lines": 1e400}', 422, "invalid_regressor"),  # json.loads gives inf
        ('{"month": "2021-03", "phone_lines": ' + "9" * 5000 + "}", 400, "malformed_json"),  # int limit
        ('{"month": "2021-03", "phone_lines": true}', 422, "invalid_regressor"),
        ('{"month": 202103}', 422, "invalid_month"),
        ('{"month": "2021-03", "level": "95"}', 422, "invalid_level"),
        ('{"instances": {"month": "2021-03"}}', 422, "invalid_instances"),
        ("null", 422, "invalid_body"),
        ('"2021-03"', 422, "invalid_body"),
    ],
)
def test_odd_numbers_and_types_are_refused_never_coerced_or_500(client, raw, status, code):  # noqa: F811
    error_of(post_raw(client, raw), status, code)


def test_security_headers_on_api_answers_and_errors(client):  # noqa: F811
    responses = [
        client.get("/health"),
        post_raw(client, json.dumps({"month": "2021-03"})),
        post_raw(client, "{"),
        client.get("/nowhere"),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.path, name)


def test_a_failure_inside_predict_is_a_json_500_without_trace_or_debug(app, client, monkeypatch, bundle):  # noqa: F811
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/app/service/inference.py line 42")

    monkeypatch.setattr(inference, "predict", explode)
    assert not app.debug and not app.testing and app.config["PROPAGATE_EXCEPTIONS"] is None
    response = post_raw(client, json.dumps({"month": next_month(bundle)}))
    error = error_of(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert error["message"] == "internal server error"
    for leak in ("secret", "Traceback", "inference.py", "/srv", "RuntimeError"):
        assert leak not in text


def test_ready_and_reload_answers_keep_the_reason_but_no_filesystem_path(trained_output, tmp_path):
    output = tmp_path / "Output"
    shutil.copytree(trained_output, output)
    (output / "manifest.json").unlink()
    settings = {"OUTPUT_DIR": str(output), "PREDICTION_DB_DIR": str(tmp_path / "db"), "ADMIN_TOKEN": TOKEN}
    client = create_app(settings).test_client()  # noqa: F811 - not the fixture
    ready = client.get("/ready")
    assert ready.status_code == 503
    reason = ready.get_json()["reason"]
    assert "manifest.json does not exist" in reason
    reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    error = error_of(reload, 409, "reload_refused")
    predict = error_of(post_raw(client, json.dumps({"month": "2021-03"})), 503, "model_not_loaded")
    for text in (reason, error["message"], predict["message"]):
        assert str(tmp_path) not in text and "/tmp" not in text, text
