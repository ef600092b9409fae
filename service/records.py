"""Blueprint over the prediction log: ``GET /predictions``, ``POST /actuals``, ``GET /accuracy``.

Views are thin: validate with the pydantic models below (errors become the one JSON error
shape through service.errors), call the store, serialise.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.errors import ApiError
from service.schemas import Domain, Kind, Month, invalid

MAX_ACTUALS = 1000  # items in one POST /actuals
DEFAULT_PAGE = 100

_QUERY = ConfigDict(extra="forbid")  # query strings are text: numbers are parsed, not strict
_BODY = ConfigDict(strict=True, extra="forbid")
_RESPONSE = ConfigDict(extra="forbid")

Volume = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


# ---------------------------------------------------------------- requests


class PredictionsQuery(BaseModel):
    model_config = _QUERY

    domain: Domain | None = None
    month_from: Month | None = Field(None, description="first month, inclusive")
    month_to: Month | None = Field(None, description="last month, inclusive")
    created_since: dt.datetime | None = Field(
        None, description="ISO 8601 timestamp; rows logged at or after it (no zone = UTC)"
    )
    limit: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_PAGE
    cursor: str | None = Field(None, description="next_cursor from the previous page")


class Actual(BaseModel):
    model_config = _BODY

    month: Month
    domain: Domain
    value: Volume


class ActualsRequest(BaseModel):
    """One observation inline (month, domain, value) or a batch in ``actuals``."""

    model_config = _BODY

    month: Month | None = None
    domain: Domain | None = None
    value: Volume | None = None
    actuals: Annotated[list[Actual], Field(min_length=1, max_length=MAX_ACTUALS)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ActualsRequest:
        inline = (self.month, self.domain, self.value)
        if self.actuals is not None:
            if any(v is not None for v in inline):
                raise invalid(
                    "conflicting_fields",
                    "give either 'actuals' or month/domain/value at the top level, not both",
                    "actuals",
                )
            return self
        for name, v in zip(("month", "domain", "value"), inline, strict=True):
            if v is None:
                raise invalid("missing_field", f"'{name}' is required (or give 'actuals')", name)
        return self

    def items(self) -> list[Actual]:
        if self.actuals is not None:
            return self.actuals
        return [Actual(month=self.month, domain=self.domain, value=self.value)]


class AccuracyQuery(BaseModel):
    model_config = _QUERY

    domain: Domain | None = None


# ---------------------------------------------------------------- responses


class LoggedPrediction(BaseModel):
    model_config = _RESPONSE

    id: int
    request_id: str
    created_at: str
    endpoint: str
    domain: Domain
    month: str
    phone_lines: float | None
    channels: float | None
    model_version: str
    kind: Kind
    mean: float
    std: float
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None


class PredictionsPage(BaseModel):
    model_config = _RESPONSE

    predictions: list[LoggedPrediction]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at the end")


class ActualsResponse(BaseModel):
    model_config = _RESPONSE

    stored: int = Field(description="(month, domain) pairs inserted or replaced")
    actuals: list[Actual]


class AccuracyFigures(BaseModel):
    model_config = _RESPONSE

    count: int = Field(description="logged predictions whose month has an actual")
    mae: float | None
    mape: float | None = Field(description="percent; months with an actual of 0 are skipped")
    coverage_95: float | None = Field(description="share of actuals inside the 95% interval")


class DomainAccuracy(BaseModel):
    model_config = _RESPONSE

    domain: Domain
    all_versions: AccuracyFigures
    latest_version: AccuracyFigures


class AccuracyResponse(BaseModel):
    model_config = _RESPONSE

    latest_model_version: str | None = Field(description="version of the newest logged prediction")
    domains: list[DomainAccuracy]


# ---------------------------------------------------------------- views


def _store():
    from service.store import EXTENSION_KEY

    return current_app.extensions[EXTENSION_KEY]


def list_predictions(query: PredictionsQuery):
    """Logged predictions, newest first; filter by domain, month range and created-since.

    Pages hold at most ``limit`` rows (1..1000, default 100); pass ``next_cursor`` back as
    ``cursor`` for the next page (null on the last page).
    """
    try:
        rows, next_cursor = _store().predictions(
            domain=query.domain,
            month_from=query.month_from,
            month_to=query.month_to,
            created_since=query.created_since,
            limit=query.limit,
            cursor=query.cursor,
        )
    except ValueError as exc:  # only the cursor can still be wrong here
        raise ApiError(422, "invalid_cursor", str(exc), "cursor") from None
    return PredictionsPage(predictions=rows, next_cursor=next_cursor).model_dump()


def post_actuals(body: ActualsRequest):
    """Record observed volumes: one (month, domain, value) or up to 1,000 in ``actuals``.

    A second value for the same month and domain replaces the first.
    """
    items = body.items()
    stored = _store().upsert_actuals(item.model_dump() for item in items)
    return ActualsResponse(stored=stored, actuals=items).model_dump()


def get_accuracy(query: AccuracyQuery):
    """Live accuracy per domain: logged predictions joined with actuals.

    count, MAE, MAPE (percent) and 95% interval coverage over all model versions and for the
    latest version (the version of the newest logged prediction) alone.
    """
    return AccuracyResponse.model_validate(_store().accuracy(query.domain)).model_dump()


def init_app(app) -> None:
    """Register the routes (documented in the app's /openapi.json) once per app."""
    from service.api import OPENAPI_KEY, add_endpoint
    from service.schemas import ErrorResponse

    if "records" in app.blueprints:
        return
    bp = Blueprint("records", __name__)
    tree = app.extensions[OPENAPI_KEY]
    unavailable = {503: ErrorResponse}
    add_endpoint(
        bp,
        tree,
        "/predictions",
        list_predictions,
        query=PredictionsQuery,
        responses={200: PredictionsPage, **unavailable},
        tags=("prediction log",),
    )
    add_endpoint(
        bp,
        tree,
        "/actuals",
        post_actuals,
        methods=("POST",),
        body=ActualsRequest,
        responses={200: ActualsResponse, **unavailable},
        tags=("prediction log",),
    )
    add_endpoint(
        bp,
        tree,
        "/accuracy",
        get_accuracy,
        query=AccuracyQuery,
        responses={200: AccuracyResponse, **unavailable},
        tags=("prediction log",),
    )
    app.register_blueprint(bp)
