"""A model trained without regressors (Engine.py keeps them only where they help) says so."""

from __future__ import annotations

import pandas as pd
import pytest

from MLPipeline.artifacts import load_bundle
from MLPipeline.config import DOMAINS, KINDS
from MLPipeline.months import format_month
from MLPipeline.pipeline import RunConfig, run
from service import create_app
from tests.conftest import write_frame

NOTE = "not use phone_lines or channels (the training backtest found they did not help)"


@pytest.fixture(scope="module")
def univariate_output(tmp_path_factory):
    from MLPipeline.sample_data import generate, to_workbook_frame

    root = tmp_path_factory.mktemp("univariate")
    data = write_frame(to_workbook_frame(generate(n_months=36)), root / "short.xlsx")
    run(RunConfig(data_path=data, output_dir=root / "Output", plots=False, regressors="never"))
    return root / "Output"


@pytest.fixture(scope="module")
def client(univariate_output, tmp_path_factory):
    app = create_app({"OUTPUT_DIR": str(univariate_output),
                      "PREDICTION_DB_DIR": str(tmp_path_factory.mktemp("univariate-db"))})
    return app.test_client()


def test_no_model_uses_regressors(univariate_output):
    bundle = load_bundle(univariate_output)
    assert {bundle.models[(d, k)].regressors_ for d in DOMAINS for k in KINDS} == {()}


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
