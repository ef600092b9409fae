"""The REST API through Flask's test client: every endpoint, and every error class with its
status, code and field. Models come from the session's trained Output (tests/conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from MLPipeline.config import KINDS, SEASON_LENGTH
from MLPipeline.months import format_month
from MLPipeline.sample_data import DEFAULT_QUEUES, REGRESSORS
from service import create_app
from service.answers import MAX_REPEATS
from service.api import PREDICTION_LOG_KEY
from service.schemas import MAX_HORIZON, MAX_INSTANCES
from tests.conftest import (
    BOUNDS,
    assert_error,
    assumed_frame,
    expected,
    history_frame,
    next_month,
    post,
    x_frame,
)

# ------------------------------------------------------------------ endpoints


def test_health_says_the_process_is_alive(client):
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_ready_reports_the_loaded_model_version(client, bundle):
    body = client.get("/ready").get_json()
    assert body["status"] == "ready" and body["model_version"] == bundle.version
    assert body["reason"] is None and body["checks"]["models"] == "ok"


def test_ready_is_503_with_the_reason_when_no_model_is_loaded(tmp_path):
    app = create_app({"OUTPUT_DIR": str(tmp_path / "empty"), "PREDICTION_DB_DIR": str(tmp_path / "db")})
    client = app.test_client()
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready" and body["model_version"] is None
    assert "manifest.json does not exist" in body["reason"]
    assert_error(post(client, "/predict", {"month": "2021-03"}), 503, "model_not_loaded", None)
    assert_error(client.get("/model"), 503, "model_not_loaded", None)


def test_predict_one_month_gives_every_domain_with_the_preferred_kind(client, bundle):
    month = next_month(bundle, 3)
    response = post(client, "/predict", {"month": month, "phone_lines": 4, "channels": 2})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == bundle.version
    # Regressors are given for the month asked; a model summing a path of monthly steps (difference,
    # ensemble) also runs through the two months before it, and the answer says what it assumed there.
    paths = any(bundle.models[(d, bundle.preferred[d])].sums_path() for d in DEFAULT_QUEUES)
    if paths:
        assert "path ran through 2 month(s) the request does not give" in body["assumption"]
    else:
        assert body["assumption"] is None
    rows = body["predictions"]
    assert [r["domain"] for r in rows] == list(DEFAULT_QUEUES)
    x = pd.concat([assumed_frame(bundle, [next_month(bundle, k) for k in (1, 2)]), x_frame([month], [4], [2])])
    for row in rows:
        kind = bundle.preferred[row["domain"]]
        assert (row["month"], row["kind"], row["phone_lines"], row["channels"]) == (month, kind, 4.0, 2.0)
        want = bundle.models[(row["domain"], kind)].predict_at([month], X=x, level=(80, 95)).iloc[0]
        assert [row[c] for c in BOUNDS] == pytest.approx([want[c] for c in BOUNDS], rel=1e-9)


def test_a_full_date_is_accepted_and_normalised_to_its_month(client, bundle):
    month = next_month(bundle)
    body = post(client, "/predict", {"month": f"{month}-28", "domains": ["Banking"]}).get_json()
    assert [r["month"] for r in body["predictions"]] == [month]


def test_predict_batch_is_instance_major_and_equals_predict_at(client, bundle):
    months = [next_month(bundle, k) for k in (1, 2, 5)]
    instances = [{"month": m, "phone_lines": 3 + i, "channels": 1 + i} for i, m in enumerate(months)]
    body = post(
        client,
        "/predict",
        {
            "instances": instances,
            "domains": ["Telecom", "Healthcare"],
            "kind": "difference",
            "level": [50, 99.5],
        },
    ).get_json()
    rows = body["predictions"]
    assert [(r["month"], r["domain"]) for r in rows] == [
        (m, d) for m in months for d in ("Telecom", "Healthcare")
    ]
    columns = ("mean", "std", "lower_50", "upper_50", "lower_99.5", "upper_99.5")
    # the path to month 5 runs through months 3 and 4, which the request lacks: assumed values
    gaps = [next_month(bundle, k) for k in (3, 4)]
    x = pd.concat([x_frame(months, [3, 4, 5], [1, 2, 3]), assumed_frame(bundle, gaps)])
    assert f"path ran through 2 month(s) the request does not give (from {gaps[0]})" in body["assumption"]
    for domain in ("Telecom", "Healthcare"):
        want = bundle.models[(domain, "difference")].predict_at(x.index[:3], X=x, level=(50, 99.5))
        got = [r for r in rows if r["domain"] == domain]
        assert all(r["kind"] == "difference" for r in got)
        for row, (_, w) in zip(got, want.iterrows(), strict=True):
            assert [row[c] for c in columns] == pytest.approx([w[c] for c in columns], rel=1e-9)


def test_a_month_repeated_with_different_regressors_is_predicted_per_instance(client, bundle):
    month = next_month(bundle, 2)
    instances = [{"month": month, "phone_lines": p, "channels": 2} for p in (1, 8, 1, 3)]
    rows = post(
        client, "/predict", {"instances": instances, "domains": ["Insurance"], "kind": "level"}
    ).get_json()["predictions"]
    for row, inst in zip(rows, instances, strict=True):
        want = expected(bundle, "Insurance", "level", [month], [inst["phone_lines"]], [2]).iloc[0]
        assert row["phone_lines"] == inst["phone_lines"]
        assert row["mean"] == pytest.approx(want["mean"], rel=1e-9)
    if bundle.models[("Insurance", "level")].regressors_:
        assert rows[0]["mean"] != rows[1]["mean"]


def test_identical_instances_are_predicted_once_and_returned_for_each(client, bundle):
    instance = {"month": next_month(bundle), "phone_lines": 3, "channels": 2}
    response = post(client, "/predict", {"instances": [instance] * MAX_INSTANCES, "domains": ["Banking"]})
    assert response.status_code == 200
    rows = response.get_json()["predictions"]
    assert len(rows) == MAX_INSTANCES and len({json.dumps(r, sort_keys=True) for r in rows}) == 1


def test_a_month_repeated_too_often_with_different_regressors_is_422(client, bundle):
    month = next_month(bundle)
    instances = [{"month": month, "phone_lines": float(p), "channels": 1} for p in range(MAX_REPEATS + 1)]
    assert_error(post(client, "/predict", {"instances": instances}), 422, "too_many_repeats", "instances")


def test_omitted_regressors_come_from_history_or_the_stated_assumption(client, bundle):
    inside, after = format_month(bundle.train_end), next_month(bundle)
    body = post(
        client, "/predict", {"instances": [{"month": inside}, {"month": after}], "domains": ["Banking"]}
    ).get_json()
    history = history_frame(bundle)
    median = {name: float(history[name].iloc[-SEASON_LENGTH:].median()) for name in REGRESSORS}
    first, second = body["predictions"]
    assert (first["phone_lines"], first["channels"]) == tuple(float(history[n].iloc[-1]) for n in REGRESSORS)
    assert (second["phone_lines"], second["channels"]) == (median["phone_lines"], median["channels"])
    assert "median of the last 12 training months" in body["assumption"]
    assert "taken from the training data" in body["assumption"]


@pytest.mark.parametrize("endpoint", ["/predict", "/anomalies"])
def test_the_difference_path_uses_the_stated_assumption(client, bundle, endpoint):
    """Months between the training window and the one asked for get the regressors the response
    states (median of the last 12 training months), not the forecaster's own all-months median."""
    month = next_month(bundle, 4)
    model = bundle.models[("Telecom", "difference")]
    path = [next_month(bundle, k) for k in (1, 2, 3, 4)]
    x = assumed_frame(bundle, path)
    assert not np.allclose(model.x_fill_, x.iloc[0].to_numpy())  # else this test could not fail
    want = model.predict_at([month], X=x, level=(95,)).iloc[0]
    if endpoint == "/predict":
        body = post(
            client, "/predict", {"month": month, "domains": ["Telecom"], "kind": "difference", "level": [95]}
        ).get_json()
        (row,) = body["predictions"]
    else:
        observation = {"month": month, "value": 100.0}
        body = post(
            client,
            "/anomalies",
            {"domain": "Telecom", "kind": "difference", "level": 95, "observations": [observation]},
        ).get_json()
        (row,) = body["observations"]
        row = {**row, "lower_95": row["lower"], "upper_95": row["upper"]}
    assert [row[c] for c in ("mean", "std", "lower_95", "upper_95")] == pytest.approx(
        [want[c] for c in ("mean", "std", "lower_95", "upper_95")], rel=1e-9
    )
    assert "median of the last 12 training months" in body["assumption"]


def test_predict_hands_every_returned_row_to_the_prediction_log(trained_output, tmp_path, bundle):
    app = create_app({"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(tmp_path)})
    recorded = []

    class Recorder:
        def record(self, request_id, endpoint, rows, regressors=(), frequency="monthly"):
            assert frequency == "monthly"
            recorded.append((request_id, endpoint, rows))

    app.extensions[PREDICTION_LOG_KEY] = Recorder()
    client = app.test_client()
    body = client.post(
        "/predict",
        json={"month": next_month(bundle), "domains": ["Banking", "Telecom"]},
        headers={"X-Request-ID": "r-1"},
    ).get_json()
    forecast = post(client, "/forecast", {"domain": "Banking", "horizon": 2}).get_json()
    assert [(rid, ep) for rid, ep, _ in recorded][0] == ("r-1", "predict")
    assert recorded[0][2] == body["predictions"] and recorded[1][1:] == ("forecast", forecast["forecast"])
    assert all(row["model_version"] == bundle.version for row in recorded[0][2])


def test_forecast_is_the_path_after_the_training_window(client, bundle):
    regressors = [{"phone_lines": 4, "channels": 2 + k % 2} for k in range(12)]
    body = post(
        client, "/forecast", {"domain": "Healthcare", "horizon": 12, "regressors": regressors}
    ).get_json()
    kind = bundle.preferred["Healthcare"]
    assert (body["domain"], body["kind"], body["horizon"], body["assumption"]) == (
        "Healthcare",
        kind,
        12,
        None,
    )
    months = [next_month(bundle, k) for k in range(1, 13)]
    assert [r["month"] for r in body["forecast"]] == months
    x = x_frame(months, [r["phone_lines"] for r in regressors], [r["channels"] for r in regressors])
    model = bundle.models[("Healthcare", kind)]
    want = model.predict(12, X_future=x if model.regressors_ else None, level=(80, 95))
    for row, (_, w) in zip(body["forecast"], want.iterrows(), strict=True):
        assert [row[c] for c in BOUNDS] == pytest.approx([w[c] for c in BOUNDS], rel=1e-9)


def test_forecast_without_regressors_states_its_assumption(client, bundle):
    # 3.0 is an integer in JSON Schema's sense, so it is accepted; 2.5 and "3" are not (below).
    body = post(
        client, "/forecast", {"domain": "Technology", "horizon": 3.0, "kind": "level", "level": [90]}
    ).get_json()
    assert body["kind"] == "level" and len(body["forecast"]) == 3
    assert "median of the last 12 training months" in body["assumption"]
    assert {"lower_90", "upper_90"} <= set(body["forecast"][0])


def test_anomalies_score_each_observation_in_the_order_given(client, bundle):
    month_a, month_b = (
        format_month(bundle.train_end),
        format_month(bundle.train_end - pd.DateOffset(months=1)),
    )
    kind = bundle.preferred["Banking"]
    x = x_frame(
        [month_a],
        [float(history_frame(bundle)["phone_lines"].iloc[-1])],
        [float(history_frame(bundle)["channels"].iloc[-1])],
    )
    centre = float(bundle.models[("Banking", kind)].predict_at(x.index, X=x, level=(99,))["mean"].iloc[0])
    observations = [
        {"month": month_a, "value": centre * 3 + 1000},
        {"month": month_b, "value": 0.0},
        {"month": month_a, "value": centre},
    ]
    body = post(
        client, "/anomalies", {"domain": "Banking", "observations": observations, "level": 99}
    ).get_json()
    assert (body["domain"], body["level"], body["kind"]) == ("Banking", 99.0, kind)
    rows = body["observations"]
    assert [r["month"] for r in rows] == [o["month"] for o in observations]
    for row in rows:
        z = (row["value"] - row["mean"]) / row["std"]
        assert row["z_score"] == pytest.approx(z)
        assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)))
        assert row["anomaly"] == (not row["lower"] <= row["value"] <= row["upper"])
    assert rows[0]["anomaly"] is True and rows[0]["p_value"] < 0.01
    assert rows[2]["anomaly"] is False and rows[2]["z_score"] == pytest.approx(0, abs=1e-6)


def test_model_describes_version_window_kernels_metrics_and_libraries(client, bundle):
    body = client.get("/model").get_json()
    assert body["model_version"] == bundle.version
    assert (body["train_start"], body["train_end"]) == (
        format_month(bundle.train_start),
        format_month(bundle.train_end),
    )
    assert body["preferred"] == bundle.preferred and body["kinds"] == list(KINDS)
    assert {(m["domain"], m["kind"]) for m in body["models"]} == set(bundle.models)
    for entry in body["models"]:
        assert entry["kernel"] == str(bundle.models[(entry["domain"], entry["kind"])].kernel_)
        assert entry["holdout"] == bundle.manifest["metrics"][entry["domain"]][entry["kind"]]
    assert body["library_versions"]["scikit-learn"] == bundle.manifest["libraries"]["scikit-learn"]


def test_openapi_document_is_generated_from_the_schemas(client):
    spec = client.get("/openapi.json").get_json()
    for path in ("/predict", "/forecast", "/anomalies", "/model", "/health", "/ready", "/admin/reload"):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    predict = spec["paths"]["/predict"]["post"]
    ref = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schemas[ref.removeprefix("#/components/schemas/")]
    # further properties are regressor values (names checked against the loaded model)
    assert request["additionalProperties"] == {"type": "number", "minimum": 0, "maximum": 1e6}
    assert "instances" in request["properties"] and "phone_lines" not in request["properties"]
    assert request["properties"]["instances"]["anyOf"][0]["maxItems"] == MAX_INSTANCES
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    error_ref = predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert schemas[error_ref.removeprefix("#/components/schemas/")]["required"] == ["error"]


# --------------------------------------------------------------------- errors


def test_malformed_json_is_400(client):
    response = client.post("/predict", data='{"month": "2021-03",', content_type="application/json")
    assert_error(response, 400, "malformed_json", None)


@pytest.mark.parametrize("raw", ["", "   ", '{"month": NaN}', '{"phone_lines": Infinity}', "[" * 50_000])
def test_empty_bodies_json_constants_and_deep_nesting_are_400(client, raw):
    assert_error(
        client.post("/predict", data=raw, content_type="application/json"), 400, "malformed_json", None
    )


def test_unknown_route_is_404(client):
    assert_error(client.get("/nope"), 404, "not_found", None)
    assert_error(client.post("/predict/extra", json={}), 404, "not_found", None)


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/predict")
    assert_error(response, 405, "method_not_allowed", None)
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/model"), 405, "method_not_allowed", None)


def test_body_over_the_limit_is_413(client, app):
    raw = json.dumps({"instances": [{"month": "2021-03"}] * 100_000})
    assert len(raw) > app.config["MAX_CONTENT_LENGTH"]
    assert_error(
        client.post("/predict", data=raw, content_type="application/json"), 413, "payload_too_large", None
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_is_415(client, content_type):
    response = client.post("/predict", data='{"month": "2021-03"}', content_type=content_type)
    assert_error(response, 415, "unsupported_media_type", None)


def test_a_json_body_that_is_not_an_object_is_422(client):
    assert_error(post(client, "/predict", [{"month": "2021-03"}]), 422, "invalid_body", None)


PREDICT_422 = [
    ({"month": "2021-03", "phone_lines": -1}, "invalid_regressor", "phone_lines"),
    ({"month": "2021-03", "channels": -0.5}, "invalid_regressor", "channels"),
    ({"month": "2021-03", "phone_lines": "4"}, "invalid_regressor", "phone_lines"),
    ({"month": "2021-03", "phone_lines": True}, "invalid_regressor", "phone_lines"),
    ({"month": "2021-03", "phone_lines": 1e9}, "invalid_regressor", "phone_lines"),
    ({"month": "2021-03", "level": [0]}, "invalid_level", "level[0]"),
    ({"month": "2021-03", "level": [80, 100]}, "invalid_level", "level[1]"),
    ({"month": "2021-03", "level": [-5]}, "invalid_level", "level[0]"),
    ({"month": "2021-03", "level": "95"}, "invalid_level", "level"),
    ({"month": "2021-03", "level": []}, "invalid_level", "level"),
    # Two levels with one name (lower_80: 6 significant digits) were one silent interval.
    ({"month": "2021-03", "level": [80, 80.0000001]}, "invalid_level", "level[1]"),
    ({"month": "2021-03", "level": [90, 95, 90]}, "invalid_level", "level[2]"),
    ({"month": "2021-03", "level": [99.99999999999999]}, "invalid_level", "level[0]"),  # named "100"
    ({"month": "2021-03", "domains": ["Retail"]}, "unknown_domain", "domains[0]"),
    ({"month": "2021-03", "domains": []}, "unknown_domain", "domains"),
    ({"month": "2021-03", "kind": "trend"}, "invalid_kind", "kind"),
    ({"month": "March 2021"}, "invalid_month", "month"),
    ({"month": "2021-13"}, "invalid_month", "month"),
    ({"month": "2021-02-30"}, "invalid_month", "month"),
    ({"month": 202103}, "invalid_month", "month"),
    ({"instances": [{"month": "2021-01"}] * 3 + [{"month": "21-04"}]}, "invalid_month", "instances[3].month"),
    (
        {"instances": [{"month": "2021-01", "phone_lines": -2}]},
        "invalid_regressor",
        "instances[0].phone_lines",
    ),
    ({"instances": [{"month": "2021-01"}] * (MAX_INSTANCES + 1)}, "too_many_instances", "instances"),
    ({"instances": []}, "invalid_instances", "instances"),
    ({"month": "2021-03", "volume": 3}, "unknown_field", "volume"),
    ({"instances": [{"month": "2021-01", "x": 1}]}, "unknown_field", "instances[0].x"),
    ({}, "missing_field", "month"),
    ({"domains": ["Banking"]}, "missing_field", "month"),
    ({"month": "2021-03", "instances": [{"month": "2021-03"}]}, "conflicting_fields", "instances"),
]


@pytest.mark.parametrize(("body", "code", "field"), PREDICT_422)
def test_predict_schema_violations_are_422_with_code_and_field(client, body, code, field):
    assert_error(post(client, "/predict", body), 422, code, field)


def test_months_outside_the_served_range_are_422(client, bundle):
    too_late = next_month(bundle, MAX_HORIZON + 1)
    body = {"instances": [{"month": next_month(bundle)}, {"month": too_late}]}
    assert_error(post(client, "/predict", body), 422, "month_out_of_range", "instances[1].month")
    too_early = format_month(bundle.train_start - pd.DateOffset(months=1))
    assert_error(post(client, "/predict", {"month": too_early}), 422, "month_out_of_range", "month")
    first = format_month(bundle.train_start)  # the difference model needs the month before
    assert_error(post(client, "/predict", {"month": first, "kind": "difference"}), 422, "month_out_of_range", "month")
    for kind in ("level", "ensemble"):  # the ensemble has no difference member
        assert post(client, "/predict", {"month": first, "kind": kind}).status_code == 200


FORECAST_422 = [
    ({"domain": "Retail"}, "unknown_domain", "domain"),
    ({}, "missing_field", "domain"),
    ({"domain": "Banking", "horizon": 0}, "invalid_horizon", "horizon"),
    ({"domain": "Banking", "horizon": MAX_HORIZON + 1}, "invalid_horizon", "horizon"),
    ({"domain": "Banking", "horizon": "12"}, "invalid_horizon", "horizon"),
    ({"domain": "Banking", "horizon": 2.5}, "invalid_horizon", "horizon"),
    (
        {"domain": "Banking", "horizon": 2, "regressors": [{"phone_lines": 1, "channels": 1}]},
        "regressors_length",
        "regressors",
    ),
    (
        {"domain": "Banking", "horizon": 1, "regressors": [{"phone_lines": -1, "channels": 1}]},
        "invalid_regressor",
        "regressors[0].phone_lines",
    ),
    (
        {"domain": "Banking", "horizon": 1, "regressors": [{"phone_lines": 1, "staff": 3}]},
        "unknown_field",
        "regressors[0].staff",
    ),
    ({"domain": "Banking", "level": [100.5]}, "invalid_level", "level[0]"),
    ({"domain": "Banking", "horizon": 2, "level": [95, 95.00000001]}, "invalid_level", "level[1]"),  # was a 500
]


@pytest.mark.parametrize(("body", "code", "field"), FORECAST_422)
def test_forecast_schema_violations_are_422(client, body, code, field):
    assert_error(post(client, "/forecast", body), 422, code, field)


ANOMALIES_422 = [
    ({"domain": "Banking", "observations": []}, "invalid_observations", "observations"),
    ({"domain": "Banking"}, "missing_field", "observations"),
    ({"domain": "Banking", "observations": [{"month": "2020-01"}]}, "missing_field", "observations[0].value"),
    (
        {"domain": "Banking", "observations": [{"month": "2020-01", "value": "7"}]},
        "invalid_value",
        "observations[0].value",
    ),
    (
        {"domain": "Banking", "observations": [{"month": "2020-1x", "value": 7}]},
        "invalid_month",
        "observations[0].month",
    ),
    (
        {"domain": "Banking", "observations": [{"month": "2020-01", "value": 7}], "level": 100},
        "invalid_level",
        "level",
    ),
    (
        {"domain": "Banking", "observations": [{"month": "2020-01", "value": 7}] * 1001},
        "too_many_observations",
        "observations",
    ),
    ({"domain": "Bank", "observations": [{"month": "2020-01", "value": 7}]}, "unknown_domain", "domain"),
]


@pytest.mark.parametrize(("body", "code", "field"), ANOMALIES_422)
def test_anomalies_schema_violations_are_422(client, body, code, field):
    assert_error(post(client, "/anomalies", body), 422, code, field)


def test_an_unexpected_failure_is_a_json_500_without_a_trace(trained_output, tmp_path):
    app = create_app({"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(tmp_path)})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    error = assert_error(app.test_client().get("/boom"), 500, "internal_error", None)
    assert "secret" not in error["message"]


def test_every_error_response_uses_the_one_shape(client):
    """No route answers an error with HTML, whatever is wrong."""
    responses = [
        client.get("/no/such/page"),
        client.put("/forecast", json={}),
        client.post("/anomalies", data=b"\xff\xfe\x00", content_type="application/json"),
        client.post("/forecast", data="null", content_type="application/json"),
    ]
    for response in responses:
        assert response.status_code in (400, 404, 405, 422)
        assert response.content_type == "application/json"
        assert set(response.get_json()["error"]) == {"code", "message", "field"}


def test_extreme_but_valid_inputs_give_finite_numbers(client, bundle):
    body = {"month": next_month(bundle, MAX_HORIZON), "phone_lines": 1e6, "channels": 0, "level": [99.9999]}
    response = post(client, "/predict", body)
    assert response.status_code == 200
    for row in response.get_json()["predictions"]:
        assert np.isfinite([row[c] for c in ("mean", "std", "lower_99.9999", "upper_99.9999")]).all()


def test_a_level_is_computed_at_the_precision_of_its_name(client, bundle):
    """55.89896649322346 is served as the 55.899 interval, under that name (6 significant digits)."""
    month = next_month(bundle)
    body = {"month": month, "phone_lines": 4, "channels": 2, "domains": ["Banking"], "kind": "level",
            "level": [55.89896649322346]}  # fmt: skip
    response = post(client, "/predict", body)
    assert response.status_code == 200, response.get_json()
    row = response.get_json()["predictions"][0]
    assert {k for k in row if k.startswith(("lower_", "upper_"))} == {"lower_55.899", "upper_55.899"}
    want = expected(bundle, "Banking", "level", [month], [4], [2], level=(55.899,)).iloc[0]
    assert [row["lower_55.899"], row["upper_55.899"]] == pytest.approx(
        [want["lower_55.899"], want["upper_55.899"]], rel=1e-9
    )
