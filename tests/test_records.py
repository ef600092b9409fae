"""/predictions, /actuals and /accuracy through the Flask test client, plus the 503 policy.

The routes that read and write the log run on every backend (SQLite, and the PostgreSQL and
MySQL/MariaDB servers when their TEST_* URLs are set; conftest.py); the validation tests on SQLite.
"""

from __future__ import annotations

import base64
import json

import pytest

from service import create_app
from service.store import EXTENSION_KEY, PredictionLog


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "LOAD_MODELS": False,
            "OUTPUT_DIR": str(tmp_path / "Output"),
            "PREDICTION_DB_DIR": str(tmp_path / "var"),
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_app(tmp_path, db_url):
    """The app with its log on each backend in turn (an empty database each time)."""
    config = {"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp_path / "Output")}
    if db_url.startswith("sqlite"):
        config["PREDICTION_DB_DIR"] = str(tmp_path / "var")
    else:
        config["DATABASE_URL"] = db_url
    app = create_app(config)
    yield app
    app.extensions[EXTENSION_KEY].dispose()


@pytest.fixture
def db_client(db_app):
    return db_app.test_client()


def logged(month="2021-03", domain="Healthcare", mean=100.0, version="v1"):
    return {
        "month": month,
        "domain": domain,
        "kind": "level",
        "mean": mean,
        "std": 10.0,
        "lower_80": mean - 13,
        "upper_80": mean + 13,
        "lower_95": mean - 20,
        "upper_95": mean + 20,
        "phone_lines": 4.0,
        "channels": 2.0,
        "model_version": version,
    }


def assert_error(response, status, code, field):
    assert response.status_code == status, response.get_json()
    assert response.get_json() == {
        "error": {"code": code, "message": response.get_json()["error"]["message"], "field": field}
    }


def test_the_store_is_attached_and_reported_on_ready(db_app, db_client):
    app, client = db_app, db_client
    assert isinstance(app.extensions[EXTENSION_KEY], PredictionLog)
    body = client.get("/ready").get_json()
    assert body["checks"]["database"] == "ok"


def test_predictions_are_listed_filtered_and_paged(db_app, db_client):
    client = db_client
    log = db_app.extensions[EXTENSION_KEY]
    for i in range(7):
        log.record(f"r{i}", "predict", [logged(f"2021-{i + 1:02d}"), logged(f"2021-{i + 1:02d}", "Banking")])

    body = client.get("/predictions?domain=Banking&month_from=2021-02&month_to=2021-05-31").get_json()
    assert [r["month"] for r in body["predictions"]] == ["2021-05", "2021-04", "2021-03", "2021-02"]
    assert body["next_cursor"] is None

    first = client.get("/predictions?limit=10").get_json()
    assert len(first["predictions"]) == 10 and first["next_cursor"]
    rest = client.get(f"/predictions?limit=10&cursor={first['next_cursor']}").get_json()
    assert len(rest["predictions"]) == 4 and rest["next_cursor"] is None
    ids = [r["id"] for r in first["predictions"] + rest["predictions"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 14

    since = first["predictions"][0]["created_at"]
    assert {
        r["request_id"] for r in client.get(f"/predictions?created_since={since}").get_json()["predictions"]
    } == {"r6"}


@pytest.mark.parametrize(
    "query, code, field",
    [
        ("limit=1001", "invalid_value", "limit"),
        ("limit=0", "invalid_value", "limit"),
        ("month_from=2021-13", "invalid_month", "month_from"),
        ("created_since=yesterday", "invalid_value", "created_since"),
        ("period_from=yesterday", "invalid_value", "period_from"),
        ("period_to=2021-03-01", "invalid_value", "period_to"),  # a date alone is not an instant
        ("cursor=not-a-cursor", "invalid_cursor", "cursor"),
        ("colour=blue", "unknown_field", "colour"),
    ],
)
def test_bad_queries_are_422_with_the_field(client, query, code, field):
    assert_error(client.get(f"/predictions?{query}"), 422, code, field)


def forged_cursor(stamp: str, row_id) -> str:
    raw = json.dumps([stamp, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def any_client(db_app):
    """A client whose log (on each backend in turn) holds one row."""
    db_app.extensions[EXTENSION_KEY].record("r", "predict", [logged()])
    return db_app.test_client()


@pytest.mark.parametrize(
    "query, code, field",
    [
        # Values that pass a loose parse and then overflow the database or the calendar: they were
        # a 500 (SQLite) or a 503 "prediction log unavailable" (PostgreSQL), never the client's 422.
        (f"cursor={forged_cursor('2024-01-01T00:00:00Z', 2**63)}", "invalid_cursor", "cursor"),
        (f"cursor={forged_cursor('2024-01-01T00:00:00Z', -1)}", "invalid_cursor", "cursor"),
        (f"cursor={forged_cursor('9999-12-31T23:59:59-01:00', 5)}", "invalid_cursor", "cursor"),
        ("created_since=9999-12-31T23:59:59-01:00", "invalid_value", "created_since"),
        ("created_since=0001-01-01T00:00:00%2B01:00", "invalid_value", "created_since"),
    ],
)
def test_values_past_what_the_log_can_hold_are_422_on_every_backend(any_client, query, code, field):
    assert_error(any_client.get(f"/predictions?{query}"), 422, code, field)
    assert any_client.get("/predictions?cursor=" + forged_cursor("2024-01-01T00:00:00Z", 2**63 - 1)).status_code == 200


def test_actuals_are_upserted_and_feed_accuracy(db_app, db_client):
    client = db_client
    db_app.extensions[EXTENSION_KEY].record("r", "predict", [logged("2021-01", mean=100.0)])
    response = client.post("/actuals", json={"month": "2021-01", "domain": "Healthcare", "value": 90})
    assert response.status_code == 200
    assert response.get_json() == {
        "stored": 1,
        "actuals": [{"month": "2021-01", "domain": "Healthcare", "value": 90.0}],
    }
    batch = {"actuals": [{"month": "2021-01-31", "domain": "Healthcare", "value": 125.0}]}
    assert client.post("/actuals", json=batch).get_json()["stored"] == 1  # replaces the 90

    body = client.get("/accuracy").get_json()
    assert body["latest_model_version"] == "v1"
    (healthcare,) = body["domains"]
    assert healthcare["domain"] == "Healthcare"
    assert healthcare["all_versions"] == {"count": 1, "mae": 25.0, "mape": 20.0, "coverage_95": 0.0}
    assert healthcare["latest_version"] == healthcare["all_versions"]
    assert client.get("/accuracy?domain=Telecom").get_json()["domains"][0]["all_versions"]["count"] == 0


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({"month": "2021-01", "domain": "Healthcare", "value": "90"}, "invalid_value", "value"),  # strict
        ({"month": "2021-01", "domain": "Healthcare", "value": -1}, "invalid_value", "value"),
        ({"month": "2021-1x", "domain": "Healthcare", "value": 1}, "invalid_month", "month"),
        ({"month": "2021-01", "domain": "x" * 201, "value": 1}, "unknown_domain", "domain"),
        ({"month": "2021-01", "value": 1}, "missing_field", "domain"),
        ({"actuals": []}, "invalid_value", "actuals"),
        (
            {"actuals": [{"month": "2021-01", "domain": "Banking", "value": 1}] * 1001},
            "invalid_value",
            "actuals",
        ),
        (
            {"actuals": [{"month": "2021-01", "domain": "Banking", "value": 1}], "value": 3},
            "conflicting_fields",
            "actuals",
        ),
    ],
)
def test_bad_actuals_are_422_with_the_field(client, body, code, field):
    assert_error(client.post("/actuals", json=body), 422, code, field)


@pytest.mark.parametrize(("body", "field"), [
    ({"period": "2021-01-01T00:00:00Z", "domain": "Healthcare", "value": 1}, "period"),
    ({"actuals": [{"month": "2021-01", "domain": "Healthcare", "value": 1},
                  {"period": "2021-01-01T00:00:00Z", "domain": "Healthcare", "value": 1}]}, "actuals[1].period"),
])
def test_an_actual_by_period_waits_for_a_model_and_stores_nothing(client, app, body, field):
    """Only the served model's calendar says which instants are periods; months are taken as given."""
    assert_error(client.post("/actuals", json=body), 503, "model_not_loaded", field)
    assert app.extensions[EXTENSION_KEY].actuals() == []


def test_an_actual_without_month_or_period_names_the_month(client):
    assert_error(client.post("/actuals", json={"domain": "Healthcare", "value": 1}), 422, "missing_field", "month")


def test_actuals_need_a_json_body(client):
    assert_error(
        client.post("/actuals", data="month=2021-01", content_type="text/plain"),
        415,
        "unsupported_media_type",
        None,
    )
    assert_error(
        client.post("/actuals", data="{", content_type="application/json"), 400, "malformed_json", None
    )


def test_a_database_that_is_down_gives_503_never_500(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    app = create_app(
        {"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp_path), "PREDICTION_DB_DIR": str(blocker / "var")}
    )
    client = app.test_client()

    @app.get("/_test/predict")  # stands in for /predict: records, then answers
    def fake_predict():
        app.extensions[EXTENSION_KEY].record("r", "predict", [logged()])
        return {"ok": True}

    response = client.get("/_test/predict")
    assert_error(response, 503, "prediction_log_unavailable", None)
    assert response.headers["Retry-After"]
    assert_error(client.get("/predictions"), 503, "prediction_log_unavailable", None)
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "prediction log check failed" in ready.get_json()["checks"]["database"]

    blocker.unlink()  # the database is back: no restart needed
    assert client.get("/_test/predict").status_code == 200
    assert client.get("/ready").get_json()["checks"]["database"] == "ok"


def test_the_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"/predictions", "/actuals", "/accuracy"} <= set(paths)
    assert "post" in paths["/actuals"] and "get" in paths["/accuracy"]
