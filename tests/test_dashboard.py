"""GET / through the Flask test client: the page for a trained model with and without logged
predictions and actuals, every chart (one inline SVG per domain with its title, axis labels and
legend), the holdout metrics table with the preferred kind highlighted, the security headers,
the chart cache, and the 503 page when no model is loaded; GET /dashboard/chart, the JSON the
browser draws, against /forecast's numbers, the history and the holdout; the vendored uPlot
against its pin."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from matplotlib.figure import Figure

from MLPipeline.artifacts import load_bundle
from MLPipeline.months import format_month
from MLPipeline.sample_data import DEFAULT_QUEUES
from service import charts, create_app, dashboard
from service.api import REGISTRY_KEY
from service.errors import ApiError
from service.store import EXTENSION_KEY, PredictionLogUnavailable

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
LEGEND = (
    "history",
    "held-out period",
    "holdout-model forecast",
    "held-out actuals",
    "forecast mean",
    "forecast 80% interval",
    "forecast 95% interval",
)


# ------------------------------------------------------------------ a tiny DOM


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    def text(self) -> str:
        return " ".join(" ".join(p if isinstance(p, str) else p.text() for p in self.parts).split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, *, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in (n.attrs.get("class") or "").split())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, **kwargs: str) -> Node:
        found = self.find_all(tag, **kwargs)
        assert len(found) == 1, (tag, kwargs, len(found))
        return found[0]


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# -------------------------------------------------------------------- fixtures


@pytest.fixture
def app(trained_output, tmp_path):
    return create_app({"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(tmp_path / "db")})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def bundle(trained_output):
    return load_bundle(trained_output)


def get_page(client, status=200) -> tuple[Node, str]:
    response = client.get("/")
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    return parse(html), html


def next_month(bundle) -> str:
    return format_month(bundle.train_end + pd.DateOffset(months=1))


# ----------------------------------------------------------------------- tests


def test_page_shows_model_facts_charts_and_metrics_without_a_log(client, bundle):
    page, html = get_page(client)
    assert page.one(id="model-version").text() == bundle.version
    assert page.one(id="training-window").text().startswith(
        f"{format_month(bundle.train_start)} to {format_month(bundle.train_end)}"
    )
    assert page.one(id="trained-at").text() == bundle.trained_at

    figures = page.find_all("figure", cls="chart-card")
    assert [f.attrs["data-domain"] for f in figures] == list(DEFAULT_QUEUES)
    for figure, domain in zip(figures, DEFAULT_QUEUES, strict=True):
        (svg,) = figure.find_all("svg")
        assert svg.attrs["class"] == "chart" and svg.attrs["role"] == "img" and svg.attrs["viewbox"]
        title = svg.one("title").text()
        assert title.startswith(f"{domain}: ") and f"({bundle.preferred[domain]} model)" in title
        texts = {t.text() for t in svg.find_all("text")}
        assert {"month", "calls per month", *LEGEND} <= texts, texts
        assert f"{domain} ({bundle.preferred[domain]} model)" in texts  # the visible heading
        assert not any("style" in n.attrs for n in svg.iter())  # presentation attributes only
        assert not svg.find_all("style") and not svg.find_all("script")
    ids = [n.attrs["id"] for n in page.iter() if n.attrs.get("id")]
    assert len(ids) == len(set(ids))  # five charts in one document share no id
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers

    rows = page.one("table", id="metrics-table").one("tbody").find_all("tr")
    assert len(rows) == len(bundle.models)
    preferred = [(r.attrs["data-domain"], r.attrs["data-kind"]) for r in rows if "preferred" in r.attrs["class"]]
    assert preferred == [(d, bundle.preferred[d]) for d in DEFAULT_QUEUES]
    for row in rows:
        domain, kind = row.attrs["data-domain"], row.attrs["data-kind"]
        cells = [td.text() for td in row.find_all("td")]
        assert ("preferred" in cells[0]) == (bundle.preferred[domain] == kind)
        mae = bundle.manifest["metrics"][domain][kind]["mae"]
        assert cells[1] == f"{mae:,.0f}"
    reasons = page.one(id="selection-reasons").text()
    for domain in DEFAULT_QUEUES:
        assert bundle.manifest["selection"][domain]["reason"] in reasons

    form = page.one("form", id="predict-form")
    assert form.one("input", id="month").attrs["value"] == next_month(bundle)
    assert [b.attrs["value"] for b in form.find_all("input", type="checkbox")] == list(DEFAULT_QUEUES)
    assert page.find_all(id="latest-empty") and page.find_all(id="accuracy-empty")
    assert not page.find_all(id="anomaly-table")


def test_a_monthly_model_takes_an_actual_by_period_as_its_month(client, bundle):
    month = next_month(bundle)
    client.post("/predict", json={"month": month, "domains": ["Banking"]})
    stored = client.post("/actuals", json={"period": f"{month}-01T00:00:00Z", "domain": "Banking", "value": 7.0})
    assert stored.status_code == 200, stored.get_json()
    accuracy = client.get("/accuracy?domain=Banking").get_json()["domains"][0]["all_versions"]
    assert accuracy["count"] == 1  # joined with the prediction of that month
    off = client.post("/actuals", json={"period": f"{month}-01T00:00:00Z", "month": month, "domain": "Banking",
                                        "value": 7.0})
    assert off.status_code == 422 and off.get_json()["error"]["code"] == "conflicting_fields"


def test_page_shows_logged_predictions_accuracy_and_anomalies(client, bundle):
    month = next_month(bundle)
    answer = client.post("/predict", json={"month": month, "phone_lines": 5, "channels": 3})
    assert answer.status_code == 200
    predicted = {p["domain"]: p for p in answer.get_json()["predictions"]}
    inside = predicted["Healthcare"]["mean"]
    outside = predicted["Banking"]["upper_95"] * 3 + 1000
    past = format_month(bundle.train_end - pd.DateOffset(months=5))  # no logged prediction
    far_off = float(bundle.history["Telecom"].y.max() * 10)
    body = {
        "actuals": [
            {"month": month, "domain": "Healthcare", "value": inside},
            {"month": month, "domain": "Banking", "value": outside},
            {"month": past, "domain": "Telecom", "value": far_off},
        ]
    }
    assert client.post("/actuals", json=body).status_code == 200

    page, _ = get_page(client)
    latest = page.one("table", id="latest-table").one("tbody").find_all("tr")
    assert len(latest) == len(DEFAULT_QUEUES)
    assert {r.find_all("td")[2].text() for r in latest} == set(DEFAULT_QUEUES)

    accuracy = page.one("table", id="accuracy-table").one("tbody").find_all("tr")
    assert sorted(r.one("th").text() for r in accuracy) == ["Banking", "Healthcare"]

    anomalies = page.one("table", id="anomaly-table").one("tbody").find_all("tr")
    found = {(r.find_all("td")[0].text(), r.find_all("td")[1].text()): r.find_all("td")[-1].text() for r in anomalies}
    assert set(found) == {("Banking", month), ("Telecom", past)}
    assert found[("Banking", month)].startswith("logged prediction")
    assert found[("Telecom", past)].startswith("served model")

    charts_by_domain = {f.attrs["data-domain"]: f for f in page.find_all("figure", cls="chart-card")}
    texts = {d: {t.text() for t in f.find_all("text")} for d, f in charts_by_domain.items()}
    assert "anomaly: actual outside 95%" in texts["Banking"]
    assert "anomaly: actual outside 95%" in texts["Telecom"]
    assert "recorded actual, inside 95%" in texts["Healthcare"]
    assert not any("recorded actual" in t for t in texts["Insurance"])


def test_an_unavailable_log_is_reported_on_the_page(app, client, monkeypatch):
    def fail(**_):
        raise PredictionLogUnavailable("prediction log read failed: OperationalError: disk I/O error")

    monkeypatch.setattr(app.extensions[EXTENSION_KEY], "predictions", fail)
    page, _ = get_page(client)
    assert "disk I/O error" in page.one(id="log-problem").text()
    assert len(page.find_all("svg", cls="chart")) == len(DEFAULT_QUEUES)


def test_actuals_the_model_cannot_score_are_left_unchecked(client, bundle, monkeypatch):
    def refuse(*_, **__):
        raise ApiError(422, "unpredictable_input", "the model gave non-finite values for these inputs")

    monkeypatch.setattr(dashboard.inference, "anomalies", refuse)
    past = format_month(bundle.train_end - pd.DateOffset(months=2))
    client.post("/actuals", json={"month": past, "domain": "Insurance", "value": 1.0})
    page, _ = get_page(client)
    assert not page.find_all(id="anomaly-table")
    assert "No recorded actuals to check yet." in page.one("section", id="log").text()


def test_security_headers_on_the_page_and_its_static_files(client):
    for path, mimetype in (("/", "text/html"), ("/static/dashboard.js", "text/javascript"),
                           ("/static/dashboard.css", "text/css"), ("/static/charts.js", "text/javascript"),
                           ("/static/vendor/uplot/uPlot.iife.min.js", "text/javascript"),
                           ("/dashboard/chart?series=Banking", "application/json")):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == mimetype, path
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and "unsafe" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/").headers["Cache-Control"] == "no-store"
    assert client.get("/dashboard/chart?series=Banking").headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in client.get("/health").headers  # the API is left alone


def test_charts_are_cached_per_model_version(app, client, bundle, monkeypatch):
    drawn = []
    real = charts.domain_svg
    monkeypatch.setattr(charts, "domain_svg", lambda *a, **k: drawn.append(a[6]) or real(*a, **k))
    get_page(client)
    assert len(drawn) == len(DEFAULT_QUEUES)
    get_page(client)
    assert len(drawn) == len(DEFAULT_QUEUES)  # served from the cache

    client.post("/actuals", json={"month": next_month(bundle), "domain": "Telecom", "value": 1.0})
    get_page(client)
    assert len(drawn) == len(DEFAULT_QUEUES) + 1 and drawn[-1].startswith("Telecom")  # only its markers changed

    registry = app.extensions[REGISTRY_KEY]  # a reload that serves another version redraws all
    registry._current = dataclasses.replace(registry.current, version="another-version")
    get_page(client)
    assert len(drawn) == 2 * len(DEFAULT_QUEUES) + 1


def test_chart_cache_drops_entries_of_an_older_version():
    cache = charts.ChartCache()
    assert cache.get("v1", "Banking", (), lambda: "a") == "a"
    assert cache.get("v1", "Banking", (), lambda: "b") == "a"
    assert cache.get("v1", "Banking", ("new marker",), lambda: "c") == "c"
    assert cache.get("v2", "Telecom", (), lambda: "d") == "d"
    assert len(cache) == 1 and cache.get("v2", "Banking", ("new marker",), lambda: "e") == "e"


def test_inline_svg_has_no_style_and_prefixed_ids():
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([1, 2, 3], [3, 1, 2], "o-", label="line")
    ax.set_title("Small <chart> & co")
    ax.legend()
    svg = charts.inline_svg(_svg_text(fig), "chart-x", "Small <chart> & co")
    tree = parse(svg)
    assert tree.one("title").text() == "Small <chart> & co" and "&lt;chart&gt;" in svg
    assert "style=" not in svg and "<style" not in svg and "<metadata" not in svg
    ids = {n.attrs["id"] for n in tree.iter() if n.attrs.get("id")}
    assert ids and all(i.startswith("chart-x-") for i in ids)
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', svg)
    assert refs and all((a or b) in ids for a, b in refs)


def _svg_text(fig: Figure) -> str:
    import io

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()


def test_no_model_is_a_503_html_page_with_the_reason(tmp_path):
    app = create_app({"OUTPUT_DIR": str(tmp_path / "empty"), "PREDICTION_DB_DIR": str(tmp_path / "db")})
    page, html = get_page(app.test_client(), status=503)
    assert "No model is loaded" in page.one(id="no-model").text()
    assert "does not exist" in page.one(id="no-model-reason").text()  # the registry's reason
    assert "Traceback" not in html
    response = app.test_client().get("/")
    assert response.headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in response.headers
    assert response.headers["Retry-After"] == "10" and response.headers["Cache-Control"] == "no-store"


def test_metric_formatting():
    assert dashboard.format_number(1234.5, "calls") == "1,234"
    assert dashboard.format_number(0.8333, "share") == "83%"
    assert dashboard.format_number(None, "num") == "–"
    assert dashboard.format_number(float("nan"), "ratio") == "–"


# ------------------------------------------------------------------- many series


@pytest.fixture(scope="module")
def many(many_output, tmp_path_factory):
    app = create_app({"OUTPUT_DIR": str(many_output), "PREDICTION_DB_DIR": str(tmp_path_factory.mktemp("many-db"))})
    return app


def page_of(app, query: str = "") -> tuple[Node, str]:
    response = app.test_client().get(f"/{query}")
    assert response.status_code == 200, response.data[:500]
    html = response.get_data(as_text=True)
    return parse(html), html


def test_many_series_get_an_overview_sorted_by_volume_and_paged(many):
    loaded = many.extensions[REGISTRY_KEY].current
    page, html = page_of(many)
    assert not page.find_all("figure", cls="chart-card") and page.find_all(id="no-chart")
    assert not any("uPlot" in s.attrs["src"] for s in page.find_all("script"))  # no chart, no library
    rows = page.one("table", id="overview-table").one("tbody").find_all("tr")
    assert len(rows) == dashboard.OVERVIEW_PAGE
    volumes = [loaded.series[r.attrs["data-domain"]].info.mean_volume for r in rows]
    assert volumes == sorted(volumes, reverse=True)
    assert page.one(id="series-count").text() == str(len(loaded.series))
    second, _ = page_of(many, "?order=volume&page=2")
    more = [r.attrs["data-domain"] for r in second.one("table", id="overview-table").one("tbody").find_all("tr")]
    assert not set(more) & {r.attrs["data-domain"] for r in rows}
    by_error, _ = page_of(many, "?order=error")
    worst = [loaded.series[r.attrs["data-domain"]] for r in
             by_error.one("table", id="overview-table").one("tbody").find_all("tr")]
    smapes = [(loaded.bundle.manifest["metrics"][s.id].get(s.info.preferred) or {}).get("smape") for s in worst]
    assert smapes == sorted(smapes, reverse=True)
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html  # ids are data: escaped


def test_the_picker_draws_the_chosen_series_and_suggests_close_names(many):
    for name in ("a/b", "../x", "<b>bold</b> & co", "Travel"):
        page, _ = page_of(many, f"?series={quote(name)}")
        (figure,) = page.find_all("figure", cls="chart-card")
        assert figure.attrs["data-domain"] == name and figure.attrs["id"] == f"{dashboard.chart_id(name)}-figure"
        assert [r.attrs["data-domain"] for r in page.one("table", id="metrics-table").one("tbody").find_all("tr")] \
            == [name]
        assert chart_json(many.test_client(), name)["series"] == name  # any id, through the query string
        assert many.test_client().get(figure.attrs["data-chart-url"]).get_json()["series"] == name
    page, _ = page_of(many, "?series=travle")
    assert "No series travle" in page.one(id="series-missing").text()
    assert {a.text() for a in page.one(id="series-missing").find_all("a")} >= {"Travel"}


# ------------------------------------------------------------ the charts' JSON


def chart_json(client, series: str) -> dict:
    response = client.get(f"/dashboard/chart?series={quote(series)}")
    assert response.status_code == 200, response.data[:500]
    return response.get_json()


def test_chart_json_equals_the_forecast_endpoints_numbers(client, bundle):
    page, _ = get_page(client)
    urls = {f.attrs["data-domain"]: f.attrs["data-chart-url"] for f in page.find_all("figure", cls="chart-card")}
    assert list(urls) == list(DEFAULT_QUEUES)
    for domain in DEFAULT_QUEUES:
        data = client.get(urls[domain]).get_json()  # the URL the page gives its chart
        assert (data["series"], data["model_version"], data["kind"]) == (domain, bundle.version,
                                                                         bundle.preferred[domain])
        answer = client.post("/forecast", json={"domain": domain, "horizon": dashboard.FORECAST_MONTHS})
        assert answer.status_code == 200
        rows = answer.get_json()["forecast"]
        assert data["forecast"]["month"] == [r["month"] for r in rows]
        for name in ("mean", "lower_80", "upper_80", "lower_95", "upper_95"):
            assert data["forecast"][name] == [r[name] for r in rows], name  # exactly: the same computation
        assert data["levels"] == [80.0, 95.0]
        history = bundle.history[domain].to_pandas()[0]
        assert data["history"]["month"] == [format_month(m) for m in history.index]
        assert data["history"]["value"] == history.tolist()
        holdout = bundle.holdout[(domain, data["kind"])]
        assert data["holdout"]["month"] == [format_month(m) for m in holdout.index]
        assert data["holdout"]["upper_95"] == holdout["upper_95"].tolist()
        assert data["actuals"] == {"month": [], "value": [], "anomaly": []}


def test_chart_json_carries_the_series_checked_actuals(client, bundle):
    month = next_month(bundle)
    predicted = client.post("/predict", json={"month": month, "domains": ["Banking"]}).get_json()["predictions"][0]
    outside = predicted["upper_95"] * 3 + 1000
    past = format_month(bundle.train_end - pd.DateOffset(months=5))
    assert client.post("/actuals", json={"actuals": [
        {"month": month, "domain": "Banking", "value": outside},
        {"month": past, "domain": "Banking", "value": float(bundle.history["Banking"].y[-5])},
        {"month": month, "domain": "Telecom", "value": 1.0},
    ]}).status_code == 200
    data = chart_json(client, "Banking")
    assert data["actuals"] == {"month": [past, month], "value": [float(bundle.history["Banking"].y[-5]), outside],
                               "anomaly": [False, True]}
    assert chart_json(client, "Healthcare")["actuals"]["month"] == []  # another series' actuals stay out


def test_chart_json_names_a_missing_or_unknown_series(client):
    for query, code in (("", "missing_field"), ("?series=", "missing_field"), ("?series=Bankin", "unknown_domain")):
        response = client.get(f"/dashboard/chart{query}")
        assert response.status_code == 422 and response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == code and response.get_json()["error"]["field"] == "series"
    assert "Banking" in client.get("/dashboard/chart?series=Bankin").get_json()["error"]["message"]


def test_chart_json_is_a_503_without_a_model(tmp_path):
    app = create_app({"OUTPUT_DIR": str(tmp_path / "empty"), "PREDICTION_DB_DIR": str(tmp_path / "db")})
    response = app.test_client().get("/dashboard/chart?series=Banking")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "model_not_loaded"


def test_page_loads_the_vendored_chart_library_it_ships_with_its_licence(client):
    page, _ = get_page(client)
    scripts = [s.attrs["src"] for s in page.find_all("script")]
    assert scripts == ["/static/dashboard.js", "/static/vendor/uplot/uPlot.iife.min.js", "/static/charts.js"]
    assert all("defer" in s.attrs for s in page.find_all("script"))  # run in order, after parsing
    assert "/static/vendor/uplot/uPlot.min.css" in [link.attrs["href"] for link in page.find_all("link")]
    vendor = Path(dashboard.__file__).parent / "static" / "vendor" / "uplot"
    assert "MIT License" in (vendor / "LICENSE").read_text()
    pinned = re.search(r"^UPLOT_VERSION := (\S+)$", (vendor.parents[3] / "Makefile").read_text(), re.M).group(1)
    assert (vendor / "uPlot.iife.min.js").read_text().startswith(f"/*! https://github.com/leeoniya/uPlot (v{pinned}) */")
    for line in (vendor / "SHA256SUMS").read_text().splitlines():  # what `make vendor-js` checks
        digest, name = line.split()
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
