"""A model trained without regressors (Engine.py keeps them only where they help) says so."""

from __future__ import annotations

import pandas as pd
import pytest

from MLPipeline.artifacts import load_bundle
from MLPipeline.config import KINDS
from MLPipeline.months import format_month, ordinal_index
from MLPipeline.pipeline import RunConfig, run
from MLPipeline.sample_data import DEFAULT_QUEUES
from service import create_app
from tests.conftest import write_frame

NOTE = "not use phone_lines or channels (the training backtest found they did not help)"


@pytest.fixture(scope="module")
def univariate_output(tmp_path_factory):
    from MLPipeline.sample_data import generate, to_workbook_frame

    root = tmp_path_factory.mktemp("univariate")
    data = write_frame(to_workbook_frame(generate(n_months=36)), root / "short.xlsx")
    run(RunConfig(data_path=data, output_dir=root / "Output", plots=False, use_regressors="never"))
    return root / "Output"


@pytest.fixture(scope="module")
def client(univariate_output, tmp_path_factory):
    app = create_app({"OUTPUT_DIR": str(univariate_output),
                      "PREDICTION_DB_DIR": str(tmp_path_factory.mktemp("univariate-db"))})
    return app.test_client()


def test_no_model_uses_regressors(univariate_output):
    bundle = load_bundle(univariate_output)
    assert {bundle.models[(d, k)].regressors_ for d in DEFAULT_QUEUES for k in KINDS} == {()}


def test_predict_says_the_regressors_change_nothing(client, univariate_output):
    month = format_month(load_bundle(univariate_output).train_end + pd.DateOffset(months=2))
    answers = [client.post("/predict", json={"month": month, "phone_lines": lines, "channels": 2}).get_json()
               for lines in (1, 9)]
    for body, lines in zip(answers, (1, 9), strict=True):
        assert body["assumption"].startswith("these models do " + NOTE)
        assert {row["phone_lines"] for row in body["predictions"]} == {float(lines)}
    strip = [[{k: v for k, v in row.items() if k != "phone_lines"} for row in b["predictions"]] for b in answers]
    assert strip[0] == strip[1]


@pytest.mark.parametrize("path", ["/forecast", "/anomalies"])
def test_forecast_and_anomalies_say_it_too(client, univariate_output, path):
    month = format_month(load_bundle(univariate_output).train_start + pd.DateOffset(months=6))
    body = ({"domain": "Banking", "horizon": 2} if path == "/forecast"
            else {"domain": "Banking", "observations": [{"month": month, "value": 10}]})
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["assumption"] == "these models do " + NOTE + ": the values shown do not change the forecast"


# ----------------------------------------------- precomputed answers (service.tables)


@pytest.fixture(scope="module")
def loaded(client):
    from service.api import REGISTRY_KEY

    return client.application.extensions[REGISTRY_KEY].get()


def test_the_preferred_models_are_precomputed_for_every_month_they_serve(loaded):
    from service.tables import TABLE_LEVELS

    bundle = loaded.bundle
    assert set(loaded.tables) == {(d, bundle.preferred[d]) for d in DEFAULT_QUEUES}
    for (domain, kind), table in loaded.tables.items():
        forecaster = bundle.models[(domain, kind)]
        last = ordinal_index([loaded.series[domain].last_served])[0]
        months = pd.date_range(forecaster.first_month(), last, freq="MS")
        assert len(table.values) == len(months)
        ordinals = months.year * 12 + months.month - 1
        for i in (0, 1, len(months) // 2, len(months) - 1):  # one month per call: the reference
            want = forecaster.predict_at([months[i]], level=TABLE_LEVELS).to_numpy()[0]
            assert table.lookup(ordinals[i:i + 1], TABLE_LEVELS)[0] == pytest.approx(want, rel=1e-9)
        picked = table.lookup(ordinals[[3, 3, 0]], (95,))  # a subset of levels, repeats allowed
        assert picked.shape == (3, 4) and (picked[0] == picked[1]).all()
        with pytest.raises(IndexError):
            table.lookup(ordinals[[0]] - 1, (95,))


@pytest.mark.parametrize("level", [[80, 95], [90]])  # from the table, and past it (90 is not kept)
def test_predict_equals_predict_at_with_and_without_the_table(client, loaded, level):
    from service.tables import TABLE_LEVELS

    assert all(lv in TABLE_LEVELS for lv in level) == (level == [80, 95])
    month = loaded.bundle.train_end + pd.DateOffset(months=7)
    body = client.post("/predict", json={"month": format_month(month), "level": level}).get_json()
    columns = ["mean", "std"] + [f"{b}_{lv}" for lv in level for b in ("lower", "upper")]
    for row in body["predictions"]:
        forecaster = loaded.bundle.models[(row["domain"], row["kind"])]
        want = forecaster.predict_at([month], level=tuple(level)).iloc[0]
        assert [row[c] for c in columns] == pytest.approx([want[c] for c in columns], rel=1e-9)


def test_a_model_with_regressors_gets_no_table(trained_output):
    from MLPipeline.served_tables import month_rows
    from service.loaded import prepare

    bundle = load_bundle(trained_output)
    with_x = {key: m for key, m in bundle.models.items() if m.regressors_}
    assert with_x  # the shared fixture trains with regressors, else this test could not fail
    assert not set(prepare(bundle).tables) & set(with_x)
    with pytest.raises(ValueError, match="without regressors"):
        month_rows(next(iter(with_x.values())), bundle.series[next(iter(with_x))[0]].last)
