"""The API on a model whose series come from the data: 200 queues with awkward names (spaces,
unicode, ``/``, ``..``, quotes, markup, 100 characters, names differing only in case)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from MLPipeline.sample_data import AWKWARD_NAMES
from service import create_app
from service.api import REGISTRY_KEY
from service.inference import MAX_SERIES_BY_DEFAULT
from tests.conftest import MANY_QUEUES, assert_error, post


@pytest.fixture(scope="module")
def app(many_output, tmp_path_factory):
    return create_app({"OUTPUT_DIR": str(many_output), "PREDICTION_DB_DIR": str(tmp_path_factory.mktemp("db"))})


@pytest.fixture
def client(app):
    return app.test_client()


def test_series_lists_every_id_in_data_order_a_page_at_a_time(client):
    seen, cursor = [], None
    while True:
        body = client.get("/series?limit=64" + (f"&cursor={cursor}" if cursor else "")).get_json()
        assert body["total"] == MANY_QUEUES and len(body["series"]) <= 64
        seen += [entry["id"] for entry in body["series"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen[:len(AWKWARD_NAMES)] == list(AWKWARD_NAMES) and len(seen) == len(set(seen)) == MANY_QUEUES
    first = client.get("/series?limit=1").get_json()["series"][0]
    assert set(first) >= {"id", "first", "last", "months", "kind", "uses_regressors", "holdout_smape"}
    assert first["kind"] == "seasonal-naive"


def test_series_prefix_search_ignores_case_and_cursor_belongs_to_its_query(client):
    body = client.get("/series?q=TRAV").get_json()
    assert [s["id"] for s in body["series"]] == ["TRAVEL", "Travel"] and body["total"] == 2
    page = client.get("/series?q=queue&limit=10").get_json()
    assert page["total"] == MANY_QUEUES - len(AWKWARD_NAMES) and all(s["id"].startswith("queue") for s in page["series"])
    assert_error(client.get(f"/series?cursor={page['next_cursor']}"), 422, "invalid_cursor", "cursor")
    assert_error(client.get("/series?cursor=bm90LWEtY3Vyc29y"), 422, "invalid_cursor", "cursor")


@pytest.mark.parametrize("name", ["a/b", "../x", "x" * 100, "客服中心", 'quote "q" \'s', "<b>bold</b> & co"])
def test_one_series_by_its_name_in_the_path(client, name):
    response = client.get(f"/series/{quote(name, safe='')}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"] == name


def test_an_unknown_series_is_422_naming_close_matches(client):
    error = assert_error(post(client, "/predict", {"month": "2015-03", "domains": ["travle"]}), 422, "unknown_domain",
                         "domains[0]")
    assert "'Travel'" in error["message"] and "'TRAVEL'" in error["message"]
    error = assert_error(post(client, "/forecast", {"domain": "Retail Bankin"}), 422, "unknown_domain", "domain")
    assert "'Retail Banking'" in error["message"]
    assert_error(client.get("/series/nothing%20like%20it"), 422, "unknown_domain", "series_id")


def test_predict_needs_a_domains_list_above_the_default_count(client):
    assert len(client.application.extensions[REGISTRY_KEY].current.series) > MAX_SERIES_BY_DEFAULT
    error = assert_error(post(client, "/predict", {"month": "2015-03"}), 422, "domains_required", "domains")
    assert f"{MANY_QUEUES} series" in error["message"]


def test_awkward_names_are_answered_logged_and_read_back(client):
    names = ["a/b", "../x", "TRAVEL", "Travel", "x" * 100]
    body = post(client, "/predict", {"month": "2015-03", "domains": names}).get_json()
    assert [row["domain"] for row in body["predictions"]] == names
    forecast = post(client, "/forecast", {"domain": "../x", "horizon": 3}).get_json()
    assert forecast["domain"] == "../x" and len(forecast["forecast"]) == 3
    logged = client.get("/predictions?limit=20").get_json()["predictions"]
    assert {row["domain"] for row in logged} >= set(names)
    travel = client.get("/predictions?domain=Travel&limit=20").get_json()["predictions"]
    assert travel and {row["domain"] for row in travel} == {"Travel"}  # not TRAVEL


def test_actuals_for_an_unknown_series_are_refused(client):
    assert post(client, "/actuals", {"month": "2015-03", "domain": "a/b", "value": 5.0}).status_code == 200
    assert_error(post(client, "/actuals", {"actuals": [{"month": "2015-03", "domain": "travle", "value": 5.0}]}),
                 422, "unknown_domain", "actuals[0].domain")


def test_metrics_label_only_the_first_series(client):
    post(client, "/predict", {"month": "2015-03", "domains": ["queue 150", "Travel"]})
    text = client.get("/metrics").get_data(as_text=True)
    lines = [line for line in text.splitlines() if line.startswith("callcenter_predictions_total{")]
    assert any('domain="Travel"' in line for line in lines) and any('domain="_other"' in line for line in lines), lines
    assert not any('domain="queue 150"' in line for line in lines)


def test_the_model_page_is_bounded(client):
    body = client.get("/model").get_json()
    assert body["series_count"] == MANY_QUEUES and len(body["domains"]) == 50 and body["frequency"] == "monthly"
