"""schemathesis against GET /openapi.json, through the WSGI app (no network): a bounded number of
generated requests per operation, valid and invalid; no 5xx, every response matches the
documented schema (status code, content type, body), and invalid requests are refused.

Not checked: that every schema-valid request succeeds ("positive data acceptance"). Some limits
depend on the loaded model and cannot be in a static schema — months must fall in the training
window plus 60 months (422 month_out_of_range) — and "2021-02-30" matches the month pattern.

The operations are parametrised here rather than with ``schema.parametrize()``: schemathesis'
lazy pytest loader touches a pytest-internal attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
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
]
BODIES = {"/predict", "/forecast", "/anomalies"}


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
    # Invalid data needs something to be invalid: a body (the GET routes take no parameters).
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
