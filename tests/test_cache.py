"""The per-model answer cache (service/cache.py): cached answers equal fresh forecaster answers,
the key is the whole call (the difference kind's path depends on every month's regressors), a
reload starts empty, and the size bound holds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import SEASON_LENGTH
from MLPipeline.months import format_month
from MLPipeline.sample_data import REGRESSORS
from service import create_app
from service.api import REGISTRY_KEY
from service.cache import PredictionCache
from tests.conftest import history_frame

COLUMNS = ("mean", "std", "lower_80", "upper_80", "lower_95", "upper_95")


def post(served, path, body):
    response = served.test_client().post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def month(loaded, k):
    return format_month(loaded.train_end + pd.DateOffset(months=k))


def fresh(loaded, domain, kind, instances):
    months = pd.DatetimeIndex([pd.Timestamp(i["month"]) for i in instances], name="month")
    x = pd.DataFrame({r: [float(i[r]) for i in instances] for r in REGRESSORS}, index=months)
    # a difference model's path through months the request lacks: the service's stated assumption
    gaps = pd.date_range(loaded.train_end + pd.DateOffset(months=1), months.max(), freq="MS").difference(
        months
    )
    median = history_frame(loaded).astype(float).iloc[-SEASON_LENGTH:].median()
    x = pd.concat([x, pd.DataFrame({r: float(median[r]) for r in REGRESSORS}, index=gaps)])
    frame = loaded.models[(domain, kind)].predict_at(months, X=x, level=(80, 95))
    return frame[list(COLUMNS)].to_numpy()


def rows_of(body, domain):
    return np.array([[r[c] for c in COLUMNS] for r in body["predictions"] if r["domain"] == domain])


def test_cached_answers_equal_fresh_predict_at(app, bundle):
    cache = app.extensions[REGISTRY_KEY].current.cache
    instances = [{"month": month(bundle, k), "phone_lines": 2 + k, "channels": 1} for k in (1, 3, 7)]
    first = post(app, "/predict", {"instances": instances, "kind": "difference"})
    hits = cache.hits
    second = post(app, "/predict", {"instances": instances, "kind": "difference"})
    assert cache.hits > hits, "the identical request should be answered from the cache"
    assert second["predictions"] == first["predictions"]
    for domain in {r["domain"] for r in first["predictions"]}:
        np.testing.assert_allclose(
            rows_of(second, domain), fresh(bundle, domain, "difference", instances), rtol=1e-9
        )


def test_the_key_is_the_whole_call_not_one_row(app, bundle):
    """Month 3 of a difference path depends on month 1's regressors: a row cache would be wrong."""
    target = {"month": month(bundle, 3), "phone_lines": 4, "channels": 2}
    alone = post(app, "/predict", {**target, "kind": "difference"})
    for lines in (1, 9):
        together = [{"month": month(bundle, 1), "phone_lines": lines, "channels": 5}, target]
        body = post(app, "/predict", {"instances": together, "kind": "difference"})
        for domain in {r["domain"] for r in body["predictions"]}:
            want = fresh(bundle, domain, "difference", together)
            np.testing.assert_allclose(rows_of(body, domain), want, rtol=1e-9)
    again = post(app, "/predict", {**target, "kind": "difference"})
    assert again["predictions"] == alone["predictions"]


def test_cached_forecast_equals_fresh_predict(app, bundle):
    cache = app.extensions[REGISTRY_KEY].current.cache
    domain = "Healthcare"
    regressors = [{"phone_lines": 3 + k % 2, "channels": 2} for k in range(6)]
    first = post(app, "/forecast", {"domain": domain, "horizon": 6, "regressors": regressors})
    hits = cache.hits
    second = post(app, "/forecast", {"domain": domain, "horizon": 6, "regressors": regressors})
    assert cache.hits == hits + 1 and second["forecast"] == first["forecast"]
    model = bundle.models[(domain, first["kind"])]
    months = pd.date_range(bundle.train_end + pd.DateOffset(months=1), periods=6, freq="MS", name="month")
    x = pd.DataFrame({r: [float(v[r]) for v in regressors] for r in REGRESSORS}, index=months)
    want = model.predict(horizon=6, X_future=x, level=(80, 95))[list(COLUMNS)].to_numpy()
    got = np.array([[r[c] for c in COLUMNS] for r in second["forecast"]])
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_a_reload_starts_an_empty_cache(trained_output, tmp_path):
    reloading = create_app({"OUTPUT_DIR": str(trained_output), "PREDICTION_DB_DIR": str(tmp_path)})
    registry = reloading.extensions[REGISTRY_KEY]
    post(reloading, "/forecast", {"domain": "Banking", "horizon": 3})
    assert len(registry.current.cache) > 0
    registry.reload()
    assert len(registry.current.cache) == 0


def test_the_cache_is_bounded_by_rows_and_least_recently_used_goes_first():
    cache = PredictionCache(max_rows=5)
    calls = []

    def compute(n):
        def inner():
            calls.append(n)
            return np.full((n, 2), float(n))

        return inner

    for key, n in (("a", 2), ("b", 2), ("a", 2), ("c", 2)):  # "a" was used last: "b" goes
        cache.get_or_compute(key, compute(n))
    assert calls == [2, 2, 2] and len(cache) == 2
    assert cache.get_or_compute("a", compute(9))[0, 0] == 2.0
    big = cache.get_or_compute("big", compute(6))  # larger than the whole cache: not stored
    assert len(big) == 6 and "big" not in cache._entries
    with pytest.raises(ValueError):
        cache.get_or_compute("a", lambda: None)[0, 0] = 1.0  # stored answers are read-only
    off = PredictionCache(max_rows=0)
    off.get_or_compute("k", compute(1))
    off.get_or_compute("k", compute(1))
    assert len(off) == 0 and calls[-2:] == [1, 1]


def test_a_repeated_request_gets_its_own_copy_of_the_cached_rows(app, bundle):
    from types import SimpleNamespace

    from service import inference

    model = app.extensions[REGISTRY_KEY].current
    instance = SimpleNamespace(month=month(bundle, 2), regressors={"phone_lines": None, "channels": 7.0})
    first, note = inference.predict(model, [instance])
    first[0]["mean"] = -1.0  # a caller changing its answer must not change the next one
    second, again = inference.predict(model, [instance])
    assert second[0]["mean"] != -1.0 and again == note
    fresh_rows, _ = inference._predict(
        model, [instance], domains=None, levels=(80.0, 95.0), kind=None, prefix=None
    )
    assert second == fresh_rows
