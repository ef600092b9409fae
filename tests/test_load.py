"""A bounded load test through real gunicorn: 5,000 /predict requests over 16 client
connections against the committed config (2 workers, the production default), on SQLite,
PostgreSQL and MySQL/MariaDB: zero errors, and exactly one log row per prediction served.

Timing is not asserted here (bench/serve.py measures it). Loopback only; every request has a
timeout. The driver and the row checks are tests/test_log_load.py's.
"""

from __future__ import annotations

import collections

import pytest

from tests.servers import Gunicorn, assert_one_row_per_prediction, fire, logged_rows

pytestmark = pytest.mark.slow

REQUESTS = 5000
CONNECTIONS = 16
WORKERS = 2


def test_5000_requests_over_16_connections_zero_errors_and_one_row_per_prediction(
    trained_output,
    tmp_path,
    database,  # noqa: F811 - fixture
):
    env = {
        "OUTPUT_DIR": str(trained_output),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        **database["env"],
    }
    with Gunicorn(tmp_path, env, workers=WORKERS) as server:
        answers = fire(server.url, [f"bulk-{i}" for i in range(REQUESTS)], threads=CONNECTIONS)
    statuses = collections.Counter(status for status, _ in answers.values())
    assert statuses == {200: REQUESTS}, statuses
    assert_one_row_per_prediction(logged_rows(database["url"]), set(answers))
