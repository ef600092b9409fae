"""service.docs and the document it shows: GET /docs serves Swagger UI from the pinned package under
the dashboard's Content-Security-Policy, every operation in /openapi.json has a named id and every
request body an example the service accepts; and in real headless Chromium against gunicorn the
page lists every operation with no CSP violation."""

from __future__ import annotations

import re

import pytest
import requests
from conftest import assert_error, csp_violations
from jsonschema import Draft202012Validator

from service import create_app
from service.dashboard import CONTENT_SECURITY_POLICY
from service.docs import ASSETS, POLICY

#: The operation ids spectree makes up when it is not given one: "post__predict", "get__series_{series_id}".
GENERATED_ID = re.compile(r"^(get|post|put|patch|delete)_")
PAGE_SECONDS = 30


@pytest.fixture(scope="module")
def modelless(tmp_path_factory):
    """The app without models: the page and the document do not need one."""
    tmp = tmp_path_factory.mktemp("docs")
    return create_app({"LOAD_MODELS": False, "OUTPUT_DIR": str(tmp / "Output"), "PREDICTION_DB_DIR": str(tmp / "db")})


@pytest.fixture(scope="module")
def spec(modelless):
    return modelless.test_client().get("/openapi.json").get_json()


def operations(spec: dict) -> dict[str, tuple[str, str]]:
    """operationId -> (method, path) of every operation in the document."""
    return {op["operationId"]: (method.upper(), path)
            for path, ops in spec["paths"].items() for method, op in ops.items()}


def test_the_page_and_its_assets_come_from_this_origin_under_the_csp(modelless):
    client = modelless.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == POLICY
    # the dashboard's policy, with inert data: images (the stylesheet's icons) as the one addition
    assert POLICY.replace("img-src 'self' data:", "img-src 'self'") == CONTENT_SECURITY_POLICY
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources  # nothing from another host
    assert "<script>" not in html and "style=" not in html  # nothing inline for the CSP to refuse
    for name in ASSETS:
        asset = client.get(f"/docs/assets/{name}")
        assert asset.status_code == 200 and len(asset.data) > 100_000, name
        assert asset.headers["Content-Security-Policy"] == POLICY
        assert asset.mimetype in ("text/javascript", "application/javascript", "text/css")
    assert client.get("/static/docs.js").headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    # only the files the page loads are served from the package
    assert_error(client.get("/docs/assets/swagger-ui-standalone-preset.js"), 404, "not_found", None)
    assert_error(client.get("/docs/assets/..%2Fplugins.py"), 404, "not_found", None)


def test_every_operation_has_a_named_id(spec, modelless):
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) >= 12
    assert not [i for i in ids if GENERATED_ID.match(i) and "__" in i], ids
    # the id is the view's name: the endpoint Flask routes the path to
    endpoints = {rule.endpoint.rpartition(".")[2] for rule in modelless.url_map.iter_rules()}
    assert set(ids) <= endpoints


def test_every_request_body_has_examples_the_service_accepts(spec, modelless):
    client = modelless.test_client()
    schemas = spec["components"]["schemas"]
    bodies = {op_id: spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
              for op_id, (method, path) in operations(spec).items()
              if "requestBody" in spec["paths"][path][method.lower()]}
    assert {"predict", "forecast", "anomalies", "post_actuals"} <= set(bodies)
    for op_id, ref in bodies.items():
        schema = schemas[ref["$ref"].rpartition("/")[2]]
        examples = schema.get("examples")
        assert examples, f"{op_id} has no example"
        validator = Draft202012Validator({**schema, "components": spec["components"]})
        for example in examples:
            assert validator.is_valid(example), (op_id, example)
            method, path = operations(spec)[op_id]
            # past validation a model-less service answers 503 (actuals are stored without one): accepted
            assert client.open(path, method=method, json=example).status_code in (200, 503), (op_id, example)


def test_the_file_formats_are_documented(spec):
    for path in ("/forecast", "/predictions"):
        operation = next(iter(spec["paths"][path].values()))
        assert {p["name"] for p in operation["parameters"]} >= {"format", "output"}
        assert set(operation["responses"]["200"]["content"]) == {
            "application/json", "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        assert "406" in operation["responses"]


# ------------------------------------------------------------------ in a real browser


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    """gunicorn as users start it, one worker, no model (the page does not need one)."""
    from tests import servers

    tmp = tmp_path_factory.mktemp("docs-gunicorn")
    env = {"OUTPUT_DIR": str(tmp / "Output"), "PREDICTION_DB_DIR": str(tmp / "db")}
    with servers.Gunicorn(tmp, env, workers=1, wait_for="/health") as server:
        yield server.url


def test_docs_render_in_chromium_listing_every_operation_with_no_csp_violation(docs_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    spec = requests.get(f"{docs_server}/openapi.json", timeout=10).json()
    expected = operations(spec)
    csp_violations(browser)  # start from a clean console
    browser.get(f"{docs_server}/docs")
    listed = WebDriverWait(browser, PAGE_SECONDS).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock") if len(
            d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected) else False,
        "Swagger UI did not list the operations")
    shown = {}
    for block in listed:
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
        shown[block.find_element(By.CSS_SELECTOR, ".opblock-summary-operation-id").text] = (method, path)
    assert shown == expected
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("callcenter-gp")
    # an operation opens with its request example
    forecast = next(b for b in listed if b.get_attribute("id").endswith("forecast"))
    forecast.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    example = WebDriverWait(browser, PAGE_SECONDS).until(
        lambda d: forecast.find_elements(By.CSS_SELECTOR, ".body-param__example, .microlight"),
        "the forecast operation shows no example")
    assert any("Healthcare" in e.text for e in example)
    browser.save_screenshot(str(tmp_path / "docs.png"))
    assert csp_violations(browser) == []
    # the check can fail: an inline script is refused, and the console says so
    browser.execute_script("const s = document.createElement('script'); s.textContent = '1'; "
                           "document.body.appendChild(s);")
    assert WebDriverWait(browser, 5).until(lambda d: csp_violations(d), "no CSP violation was reported")
