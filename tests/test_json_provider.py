"""service.json_provider: orjson encodes, and the JSON means what Flask's own encoder would say."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from service.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    y: float


CASES = [
    {"month": "2021-01", "mean": 1234.5678912345, "std": 0.1 + 0.2, "tiny": 1e-300, "n": 3, "ok": True, "none": None},
    [{"b": 1, "a": 2}, [1.5, -0.0, 12345678901234567], "naïve ünïcode ☎"],
    {"when": dt.datetime(2026, 11, 23, 19, 4, tzinfo=dt.UTC), "day": dt.date(2026, 11, 23)},
    {"amount": decimal.Decimal("1.10"), "id": uuid.UUID(int=7), "point": Point(1, 2.5)},
    {1: "non-string key"},  # orjson refuses: Flask's encoder answers
    {"big": 2**70},  # past 64 bits: Flask's encoder answers
]


@pytest.fixture
def providers():
    app = Flask(__name__)
    fast, plain = OrjsonProvider(app), DefaultJSONProvider(app)
    for p in (fast, plain):
        p.sort_keys, p.compact = False, True  # as service.create_app sets them
    with app.app_context():  # providers hold the app weakly
        yield fast, plain


@pytest.mark.parametrize("value", CASES)
def test_the_same_json_as_flasks_encoder(providers, value):
    fast, plain = providers
    text = fast.dumps(value)
    assert json.loads(text) == json.loads(plain.dumps(value))
    assert list(json.loads(text)) == list(json.loads(plain.dumps(value)))  # key order kept


def test_floats_round_trip_exactly_and_the_text_is_compact(providers):
    fast, _ = providers
    values = [0.1, 1 / 3, 1234.5678912345, 5e-324, 1.7976931348623157e308]
    assert json.loads(fast.dumps(values)) == values
    assert fast.dumps({"a": [1, 2]}) == '{"a":[1,2]}'


def test_the_service_answers_with_it():
    from service import create_app

    app = create_app({"LOAD_MODELS": False})
    assert isinstance(app.json, OrjsonProvider)
    response = app.test_client().get("/health")
    assert response.status_code == 200 and response.is_json and response.get_json()["status"]


def test_responses_are_encoded_by_orjson(providers):
    fast, plain = providers
    value = {"note": "☎"}
    # the visible difference: orjson sends UTF-8, the standard encoder escapes non-ASCII
    assert plain.response(value).get_data() == b'{"note":"\\u260e"}\n'
    assert fast.response(value).get_data() == '{"note":"☎"}\n'.encode()
    assert fast.response(value).get_json() == value
