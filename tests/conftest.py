"""Shared fixtures: sample and real data paths, a trained Output directory, workbook writers, and
a fresh prediction-log database on SQLite, the PostgreSQL server and the MySQL/MariaDB server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from MLPipeline.artifacts import load_bundle
from MLPipeline.config import DEFAULT_DATA_PATH, PROJECT_ROOT, SEASON_LENGTH, SHARED_DATA_PATH
from MLPipeline.months import format_month
from MLPipeline.pipeline import RunConfig, run
from MLPipeline.sample_data import REGRESSORS, generate, to_workbook_frame
from service import create_app, store
from tests import servers

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a resource is missing; fail in CI, where everything must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def engine(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python Engine.py ARGS`` from the project root, as a user would."""
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "Engine.py"), *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


#: The fastest training a test can ask Engine.py for: one quick kind, no selection backtest, no figures.
QUICK = ("--kinds", "seasonal-naive", "--no-backtest", "--no-plots", "--jobs", "1")


def quick_engine(data: Path, out: Path, *args: str) -> int:
    """``python Engine.py --data DATA --output OUT`` with :data:`QUICK` and ``args``, in this process
    (no interpreter start-up: the run-registry tests train several times); returns the exit status."""
    import Engine

    return Engine.main(["--data", str(data), "--output", str(out), *QUICK, *args])


def tree_digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``: equal before and after means untouched. The run lock
    (MLPipeline.artifacts.LOCK_NAME) is left out: a run writes its pid there, and it holds no model."""
    from MLPipeline.artifacts import LOCK_NAME

    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def holdout_coverage(cases, forecast) -> dict[int, float]:
    """Share of held-out months inside the 80% and 95% intervals, pooled over ``cases``.

    ``cases`` yields (training series, held-out values); ``forecast(train, horizon)`` returns a
    frame with lower_/upper_ 80 and 95 columns.
    """
    inside: dict[int, list[bool]] = {80: [], 95: []}
    for train, actual in cases:
        actual = np.asarray(actual, dtype=float)
        fc = forecast(train, len(actual))
        for level, hits in inside.items():
            hits += list((actual >= fc[f"lower_{level}"].to_numpy()) & (actual <= fc[f"upper_{level}"].to_numpy()))
    return {level: float(np.mean(hits)) for level, hits in inside.items()}


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return DEFAULT_DATA_PATH


@pytest.fixture(scope="session")
def real_path() -> Path:
    require(SHARED_DATA_PATH.exists(), f"real workbook not found at {SHARED_DATA_PATH}")
    return SHARED_DATA_PATH


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """The seeded sample as a tidy frame (clean names, month-start index)."""
    return generate()


@pytest.fixture(scope="session")
def trained_output(tmp_path_factory, sample_path) -> Path:
    """A session-wide Output directory trained on the shipped sample (no figures).

    Every model uses the regressors (``use_regressors="always"``), so the service's regressor
    handling is exercised; on the sample the Engine's default ("auto") would drop them.
    """
    out = tmp_path_factory.mktemp("trained") / "Output"
    run(RunConfig(data_path=sample_path, output_dir=out, plots=False, use_regressors="always"))
    return out


#: Queues of the many-series model: the awkward names, then plain ones, 200 in all.
MANY_QUEUES = 200


@pytest.fixture(scope="session")
def many_output(tmp_path_factory) -> Path:
    """A 200-queue model (awkward names first, ragged starts) trained by Engine.py as a user would,
    with the quick seasonal-naive kind so the session stays short."""
    from MLPipeline.sample_data import AWKWARD_NAMES, write_data

    root = tmp_path_factory.mktemp("many")
    names = list(AWKWARD_NAMES) + [f"queue {i}" for i in range(MANY_QUEUES - len(AWKWARD_NAMES))]
    data = write_data(generate(n_months=48, names=names, ragged=True), root / "many.csv")
    out = root / "Output"
    result = engine("--data", str(data), "--output", str(out), "--kinds", "seasonal-naive", "--no-plots")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def workbook_frame() -> pd.DataFrame:
    """A fresh copy of the sample in workbook layout (original headers), to corrupt in tests."""
    return to_workbook_frame(generate(n_months=36))


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_excel(path, index=False, engine="openpyxl")
    return path


# ------------------------------------------------------------ the service on the trained sample

BOUNDS = ("mean", "std", "lower_80", "upper_80", "lower_95", "upper_95")


def history_frame(bundle) -> pd.DataFrame:
    """The sample's regressors by training month (all its queues share them: the wide layout)."""
    y, x = bundle.history[bundle.ids[0]].to_pandas(bundle.regressors)
    return x


@pytest.fixture(scope="module")
def bundle(trained_output):
    return load_bundle(trained_output)


@pytest.fixture(scope="module")
def app(trained_output, tmp_path_factory):
    db_dir = tmp_path_factory.mktemp("api-db")
    return create_app({"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(db_dir)})


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def x_frame(months, phone_lines, channels):
    index = pd.DatetimeIndex(pd.to_datetime(months, format="%Y-%m"), name="month")
    return pd.DataFrame({"phone_lines": phone_lines, "channels": channels}, index=index, dtype=float)


def expected(bundle, domain, kind, months, phone_lines, channels, level=(80, 95)):
    x = x_frame(months, phone_lines, channels)
    return bundle.models[(domain, kind)].predict_at(x.index, X=x, level=level)


def assumed_frame(bundle, months):
    """Regressors the service assumes for months after the training window it was not given."""
    median = history_frame(bundle).astype(float).iloc[-SEASON_LENGTH:].median()
    return x_frame(months, [median[REGRESSORS[0]]] * len(months), [median[REGRESSORS[1]]] * len(months))


def next_month(bundle, k=1):
    return format_month(bundle.train_end + pd.DateOffset(months=k))


def assert_error(response, status, code, field):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return body["error"]


# --------------------------------------------------------------------- database servers

#: The database servers the prediction-log tests use, and the variable naming each one's URL.
DATABASE_SERVERS = {"postgresql": "TEST_DATABASE_URL", "mysql": "TEST_MYSQL_URL"}
BACKENDS = ("sqlite", *DATABASE_SERVERS)


def server_url(backend: str) -> str:
    """The test server's URL for ``backend`` from its variable, or skip (fail under CI=true)."""
    variable = DATABASE_SERVERS[backend]
    url = os.environ.get(variable)
    require(bool(url), f"{variable} not set: no {backend} server for the prediction-log tests")
    return store.normalise_url(url)


@pytest.fixture
def pg_schema_url():
    """A URL whose search_path is a fresh schema on the PostgreSQL server; dropped after the test."""
    base = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def mysql_database_url():
    """A URL naming a fresh database on the MySQL/MariaDB server; dropped after the test.

    The database keeps the server's default character set and collation: the tables must bring
    their own (utf8mb4, binary comparison).
    """
    base = sa.engine.make_url(server_url("mysql"))
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def fresh_database_url(request, backend: str, tmp_path: Path) -> str:
    """An empty prediction-log database on ``backend``, cleaned up after the test."""
    if backend == "sqlite":
        return store.database_url(db_dir=tmp_path / "var")
    return request.getfixturevalue({"postgresql": "pg_schema_url", "mysql": "mysql_database_url"}[backend])


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """The URL of an empty prediction-log database, once per backend."""
    return fresh_database_url(request, request.param, tmp_path)


@pytest.fixture(params=DATABASE_SERVERS)
def server_db_url(request, tmp_path) -> str:
    """Like db_url, on the database servers only (what SQLite does not enforce, e.g. lengths)."""
    return fresh_database_url(request, request.param, tmp_path)


# ---------------------------------------------------------------- gunicorn on the sample


@pytest.fixture(scope="module")
def server(trained_output, tmp_path_factory):
    with servers.gunicorn(trained_output, tmp_path_factory.mktemp("gunicorn")) as base:
        yield base


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path) -> dict[str, str]:
    """Environment for the server, and the URL the test reads the rows back through."""
    url = fresh_database_url(request, request.param, tmp_path)
    if request.param == "sqlite":
        return {"env": {"PREDICTION_DB_DIR": str(tmp_path / "var")}, "url": url}
    return {"env": {"DATABASE_URL": url}, "url": url}


# ------------------------------------------------------------------ headless Chromium

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
BROWSER_WINDOW = (1280, 1000)
PAGE_LOAD_SECONDS = 60


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's chromium driven by selenium, headless, its console kept (CSP violations land there).
    Skipped locally without chromium and chromium-driver; required in CI."""
    require(CHROMIUM.exists() and CHROMEDRIVER.exists(), "chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={BROWSER_WINDOW[0]},{BROWSER_WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def csp_violations(driver) -> list[str]:
    """The Content-Security-Policy refusals in the browser's console since the last call."""
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
