"""schemathesis against GET /openapi.json, through the WSGI app (no network): a bounded number of
generated requests per operation, valid and invalid; no 5xx, every response matches the
documented schema (status code, content type, body), and invalid requests are refused.

Not checked: that every schema-valid request succeeds ("positive data acceptance"). Some limits
depend on the loaded model and cannot be in a static schema — months must fall in the training
window plus 60 months (422 month_out_of_range) — some are calendars ("2021-02-30" and year 0 match
the patterns), a cursor is opaque, and /forecast's ``regressors`` needs one entry per month of the
horizon. Where the document can say it, it does: the last test pins the places it once did not.

The operations are parametrised here rather than with ``schema.parametrize()``: schemathesis'
lazy pytest loader touches a pytest-internal attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import positive_data_acceptance

from service import create_app

#: Per operation and mode. The suite runs 30; a deeper run: FUZZ_EXAMPLES=300 pytest tests/test_openapi_fuzz.py
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 30)
OPERATIONS = [
    ("POST", "/predict"),
    ("POST", "/forecast"),
    ("POST", "/anomalies"),
    ("GET", "/model"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/admin/reload"),
    ("GET", "/predictions"),
    ("POST", "/actuals"),
    ("GET", "/accuracy"),
]
#: Operations with something to make invalid (a body or query parameters).
BODIES = {"/predict", "/forecast", "/anomalies", "/predictions", "/actuals", "/accuracy"}


@pytest.fixture(scope="module")
def api_schema(trained_output, tmp_path_factory):
    db_dir = tmp_path_factory.mktemp("fuzz-db")
    app = create_app(
        {"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(db_dir), "ADMIN_TOKEN": None}
    )
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_every_operation_of_the_service_is_fuzzed(api_schema):
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= documented


CASES = [(method, path, schemathesis.GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    # Invalid data needs something to be invalid: a body or query parameters.
    (method, path, schemathesis.GenerationMode.NEGATIVE)
    for method, path in OPERATIONS
    if path in BODIES
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_errors_and_responses_match_the_schema(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI failures reproduce locally
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()


# ------------------------------------------- the document and the behaviour agree

#: (method, path, query or body, whether it is valid). Each was a place where schemathesis found
#: /openapi.json saying one thing and the service doing the other.
AGREEMENT = [
    ("GET", "/predictions", {"created_since": "0.5"}, False),  # was read as a Unix time
    ("GET", "/predictions", {"created_since": "1700000000"}, False),
    ("GET", "/predictions", {"created_since": "2024-05-01T12:00:00Z"}, True),
    ("GET", "/predictions", {"created_since": "2024-05-01T12:00:00"}, True),  # no zone: UTC
    ("GET", "/predictions", {"cursor": ""}, False),  # was documented as any string
    ("GET", "/predictions", {"limit": "1_0"}, False),  # was read as 10
    ("GET", "/predictions", {"limit": "10"}, True),
    ("GET", "/predictions", {"month_from": "2021-75"}, False),  # the pattern allowed month 75
    ("POST", "/actuals", {}, False),  # the one-of rule was not in the document
    ("POST", "/actuals", {"month": "2021-01", "domain": "Banking", "value": 1, "actuals": None}, True),
    ("POST", "/predict", {"month": "2021-03", "instances": None}, True),
    ("POST", "/predict", {"instances": None}, False),  # null counted as present
    ("POST", "/forecast", {"domain": "Banking", "level": [95, 95]}, False),  # uniqueItems
    ("GET", "/predictions", {"format": "csv"}, True),  # the downloads' query parameters
    ("GET", "/predictions", {"format": "xlsx", "output": "nixtla"}, True),
    ("GET", "/predictions", {"format": "pdf"}, False),
    ("GET", "/predictions", {"output": "wide"}, False),
]


@pytest.fixture(scope="module")
def modelless(tmp_path_factory):
    """The app without models: validation answers before the model would (503 past it)."""
    tmp = tmp_path_factory.mktemp("agree")
    app = create_app({"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp / "Output"), "PREDICTION_DB_DIR": str(tmp / "db")})
    return app.test_client(), app.test_client().get("/openapi.json").get_json()


def documented(spec: dict, method: str, path: str, given: dict) -> bool:
    """Whether /openapi.json says the request is valid (query strings: digits stand for integers)."""
    operation = spec["paths"][path][method.lower()]
    components = {"components": spec["components"]}
    if method == "POST":
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        return Draft202012Validator({**schema, **components}).is_valid(given)
    params = {p["name"]: p["schema"] for p in operation["parameters"]}

    def accepts(schema: dict, text: str) -> bool:
        if "anyOf" in schema:
            return any(accepts({**alt, **components}, text) for alt in schema["anyOf"])
        if schema.get("type") == "integer":
            return text.isdigit() and Draft202012Validator(schema).is_valid(int(text))
        return schema.get("type") == "string" and Draft202012Validator(schema).is_valid(text)

    return all(name in params and accepts(params[name], value) for name, value in given.items())


@pytest.mark.parametrize(("method", "path", "given", "valid"), AGREEMENT)
def test_the_document_and_the_service_agree(modelless, method, path, given, valid):
    client, spec = modelless
    response = client.post(path, json=given) if method == "POST" else client.get(path, query_string=given)
    refused = response.status_code in (400, 422)
    assert documented(spec, method, path, given) is valid, "the document"
    assert (not refused) is valid, response.get_json()
