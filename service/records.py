"""Blueprint over the prediction log: ``GET /predictions``, ``POST /actuals``, ``GET /accuracy``.

Views are thin: validate with the pydantic models below (errors become the one JSON error
shape through service.errors), call the store, serialise.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from flask import Blueprint, current_app
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from service.errors import ApiError
from service.schemas import (
    AtPeriod,
    Domain,
    DownloadQuery,
    Month,
    Period,
    given,
    invalid,
    one_of_forms,
    one_period,
)
from service.store import CURSOR_PATTERN, MAX_CURSOR, as_utc

MAX_ACTUALS = 1000  # items in one POST /actuals
DEFAULT_PAGE = 100

_QUERY = ConfigDict(extra="forbid")  # query strings are text: numbers are parsed, not strict
_BODY = ConfigDict(strict=True, extra="forbid")
_RESPONSE = ConfigDict(extra="forbid")

Volume = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


# ---------------------------------------------------------------- requests


#: ISO 8601 date and time, seconds and zone optional: what created_since takes (no number, no date alone).
TIMESTAMP_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
#: An integer as a query string writes it: digits only ("1_0", " 5" and "+5" are not).
INTEGER_PATTERN = r"^\d{1,9}$"


def _timestamp(value: Any, info: ValidationInfo) -> dt.datetime:
    """A query's timestamp as an aware UTC datetime, or a 422 naming the field (never a 500)."""
    text = value if isinstance(value, str) else ""
    try:
        if not re.fullmatch(TIMESTAMP_PATTERN, text):
            raise ValueError("not an ISO 8601 timestamp")
        return as_utc(dt.datetime.fromisoformat(text.replace(" ", "T", 1)))
    except (ValueError, OverflowError) as exc:  # OverflowError: 9999-12-31T23:59:59-01:00 in UTC
        raise invalid(
            "invalid_value",
            f"not a usable timestamp {value!r}: use ISO 8601, e.g. 2024-05-01T12:00:00Z ({exc})",
            info.field_name,
        ) from None


def _query_integer(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(INTEGER_PATTERN, value):
        raise invalid("invalid_value", f"not a whole number: {value!r}")
    return value


Timestamp = Annotated[
    dt.datetime,
    PlainValidator(_timestamp),
    WithJsonSchema({"type": "string", "pattern": TIMESTAMP_PATTERN}),
]
Cursor = Annotated[
    str,
    Field(min_length=1, max_length=MAX_CURSOR, pattern=CURSOR_PATTERN),
]


class PredictionsQuery(DownloadQuery):
    model_config = _QUERY

    domain: Domain | None = None
    month_from: Month | None = Field(None, description="first month, inclusive (every period inside it)")
    month_to: Month | None = Field(None, description="last month, inclusive (every period inside it)")
    period_from: Timestamp | None = Field(None, description="ISO 8601; periods starting at or after it "
                                          "(no zone = UTC)")
    period_to: Timestamp | None = Field(None, description="ISO 8601; periods starting at or before it")
    created_since: Timestamp | None = Field(
        None, description="ISO 8601 timestamp; rows logged at or after it (no zone = UTC)"
    )
    limit: Annotated[
        int,
        Field(ge=1, le=1000),
        BeforeValidator(_query_integer),
    ] = DEFAULT_PAGE
    cursor: Cursor | None = Field(None, description="next_cursor from the previous page")


class Actual(AtPeriod):
    """One observed value: ``month`` for a monthly model, ``period`` (ISO 8601) for any frequency."""

    model_config = _BODY

    domain: Domain
    value: Volume


class ActualsRequest(BaseModel):
    """One observation inline (month or period, domain, value) or a batch in ``actuals``."""

    # The one-of rule below (_one_form), stated in the schema too.
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "oneOf": [*one_of_forms(("month", "domain", "value"), ("period",), "actuals")["oneOf"],
                      {"allOf": [given(name) for name in ("period", "domain", "value")],
                       "not": {"anyOf": [given("actuals"), given("month")]}}],
            "examples": [{"month": "2021-03", "domain": "Banking", "value": 1310},
                         {"actuals": [{"month": "2021-01", "domain": "Healthcare", "value": 21000}]},
                         {"period": "2021-03-28T14:00:00Z", "domain": "Banking", "value": 52}],
        },
    )

    month: Month | None = None
    period: Period | None = None
    domain: Domain | None = None
    value: Volume | None = None
    actuals: Annotated[list[Actual], Field(min_length=1, max_length=MAX_ACTUALS)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ActualsRequest:
        inline = (self.month, self.period, self.domain, self.value)
        if self.actuals is not None:
            if any(v is not None for v in inline):
                raise invalid(
                    "conflicting_fields",
                    "give either 'actuals' or month (or period)/domain/value at the top level, not both",
                    "actuals",
                )
            return self
        one_period(self)
        for name, v in zip(("domain", "value"), inline[2:], strict=True):
            if v is None:
                raise invalid("missing_field", f"'{name}' is required (or give 'actuals')", name)
        return self

    def items(self) -> list[Actual]:
        if self.actuals is not None:
            return self.actuals
        return [Actual(month=self.month, period=self.period, domain=self.domain, value=self.value)]


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
    domain: str
    month: str | None = Field(None, description="YYYY-MM (a monthly model's row)")
    period: str | None = Field(None, description="ISO 8601 UTC (a row of a model of another frequency)")
    model_version: str
    kind: str
    mean: float
    std: float
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    regressors: dict[str, float | None] = Field(description="the regressor values used, by name")


class PredictionsPage(BaseModel):
    model_config = _RESPONSE

    predictions: list[LoggedPrediction]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at the end")


class ActualsResponse(BaseModel):
    model_config = _RESPONSE

    stored: int = Field(description="(period, domain) pairs inserted or replaced")
    actuals: list[Actual]


class AccuracyFigures(BaseModel):
    model_config = _RESPONSE

    count: int = Field(description="logged predictions whose period has an actual")
    mae: float | None
    mape: float | None = Field(description="percent; periods with an actual of 0 are skipped")
    coverage_95: float | None = Field(description="share of actuals inside the 95% interval")


class DomainAccuracy(BaseModel):
    model_config = _RESPONSE

    domain: str
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
    """Logged predictions, newest first; filter by domain, month or period range and created-since.

    Pages hold at most ``limit`` rows (1..1000, default 100); pass ``next_cursor`` back as
    ``cursor`` for the next page (null on the last page).
    """
    try:
        rows, next_cursor = _store().predictions(
            domain=query.domain,
            month_from=query.month_from,
            month_to=query.month_to,
            period_from=query.period_from,
            period_to=query.period_to,
            created_since=query.created_since,
            limit=query.limit,
            cursor=query.cursor,
        )
    except ValueError as exc:  # only the cursor can still be wrong here
        raise ApiError(422, "invalid_cursor", str(exc), "cursor") from None
    # A row names its period once: month (monthly) or period, never the other as null.
    return PredictionsPage(predictions=rows, next_cursor=next_cursor).model_dump(exclude_unset=True)


def post_actuals(body: ActualsRequest):
    """Record observed values: one (month or period, domain, value) or up to 1,000 in ``actuals``.

    Periods are the served model's (``month`` for a monthly model, ``period`` for any); a second
    value for the same period and domain replaces the first.
    """
    items = body.items()
    prefix = "actuals" if body.actuals is not None else None
    _check_known([item.domain for item in items], prefix)
    frequency, periods = _actual_periods(items, prefix)
    stored = _store().upsert_actuals(
        ({"period": period, "domain": item.domain, "value": item.value} for period, item in zip(periods, items,
                                                                                                 strict=True)),
        frequency)
    return ActualsResponse(stored=stored, actuals=items).model_dump(exclude_none=True)


def _actual_periods(items: list[Actual], prefix: str | None) -> tuple[str, list[str]]:
    """(frequency, each item's period label) on the served model's calendar, or a 422 naming the item.

    With no model loaded, months are taken as given (monthly); a period needs the model's calendar to
    say which instants are periods, so it waits for one (503).
    """
    from service.api import REGISTRY_KEY
    from service.inference import periods_of

    model = current_app.extensions[REGISTRY_KEY].current
    if model is not None:
        return model.calendar.frequency, periods_of(model, items, prefix)[1]
    for i, item in enumerate(items):
        if item.month is None:
            raise ApiError(503, "model_not_loaded", "no model is loaded: an actual by 'period' is stored on the "
                           "served model's calendar", f"{prefix}[{i}].period" if prefix else "period")
    return "monthly", [item.month for item in items]


def _check_known(domains: list[str], prefix: str | None) -> None:
    """Actuals for a series the served model lacks are refused (a typo would never be scored);
    with no model loaded they are taken as given."""
    from service.api import REGISTRY_KEY
    from service.inference import check_series

    model = current_app.extensions[REGISTRY_KEY].current
    if model is None:
        return
    for i, domain in enumerate(domains):
        check_series(model, domain, f"{prefix}[{i}].domain" if prefix else "domain")


def get_accuracy(query: AccuracyQuery):
    """Live accuracy per domain: logged predictions joined with actuals.

    count, MAE, MAPE (percent) and 95% interval coverage over all model versions and for the
    latest version (the version of the newest logged prediction) alone.
    """
    return AccuracyResponse.model_validate(_store().accuracy(query.domain)).model_dump()


def create_blueprint(tree) -> Blueprint:
    """The log's routes, documented in the app's /openapi.json through ``tree`` (service.api.add_endpoint)."""
    from service.api import add_endpoint
    from service.downloads import Download
    from service.schemas import ErrorResponse

    bp = Blueprint("records", __name__)
    unavailable = {503: ErrorResponse}
    add_endpoint(bp, tree, "/predictions", list_predictions, query=PredictionsQuery,
                 responses={200: PredictionsPage, **unavailable}, tags=("prediction log",),
                 download=Download("predictions", tuple(f for f in LoggedPrediction.model_fields if f != "period")))
    add_endpoint(bp, tree, "/actuals", post_actuals, methods=("POST",), body=ActualsRequest,
                 responses={200: ActualsResponse, **unavailable}, tags=("prediction log",))
    add_endpoint(bp, tree, "/accuracy", get_accuracy, query=AccuracyQuery,
                 responses={200: AccuracyResponse, **unavailable}, tags=("prediction log",))
    return bp
