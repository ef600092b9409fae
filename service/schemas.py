"""Request and response models: the one schema source for validation and for /openapi.json.

Strict types: numbers must be JSON numbers ("4" is refused, not coerced), months are strings
"YYYY-MM" (a full date "YYYY-MM-DD" is accepted and normalised to its month). Validators that
find a problem raise :func:`invalid`, whose ``code`` becomes the error code clients see.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from MLPipeline.config import DEFAULT_LEVELS, KINDS, MAX_SERIES_ID_LENGTH, MAX_VOLUME
from MLPipeline.frequency import HORIZON_LIMITS, iso_utc
from MLPipeline.intervals import level_label
from MLPipeline.models import ANY_FREQUENCY_KINDS
from MLPipeline.months import YEAR_RANGE, format_month, parse_month

MAX_INSTANCES = 1000  # items in one /predict batch or one /anomalies request
#: months: /forecast's horizon, and how far past the training window /predict reaches, for monthly models
MAX_HORIZON = HORIZON_LIMITS["monthly"]
#: the longest horizon of any frequency (the schema's bound; each model's own is checked against its calendar)
MAX_STEPS = max(HORIZON_LIMITS.values())
MAX_LEVELS = 8  # interval levels in one request
#: Upper bound for phone lines / channels: far above anything in the data; values beyond it are
#: almost certainly typos, and the GP would only extrapolate nonsense from them.
MAX_REGRESSOR = 1_000_000.0
MAX_ABS_VALUE = MAX_VOLUME  # observed volumes for /anomalies

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$"


def invalid(code: str, message: str, field: str | None = None) -> PydanticCustomError:
    """A validation error whose ``code`` (and optional ``field``) service.errors passes on."""
    context: dict[str, Any] = {"code": code}
    if field is not None:
        context["field"] = field
    return PydanticCustomError(code, message, context)


@functools.lru_cache(maxsize=4096)
def _month_text(value: str) -> str:
    # cached: a batch repeats the same few months, and parsing one costs microseconds
    if not re.fullmatch(MONTH_PATTERN, value):
        raise ValueError("not YYYY-MM")
    return format_month(parse_month(value))


def _normalise_month(value: str) -> str:
    try:
        return _month_text(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise invalid("invalid_month", f"not a valid month {value!r}: use YYYY-MM (or YYYY-MM-DD)") from exc


def _normalise_period(value: str) -> str:
    """A month stays ``YYYY-MM``; any other period becomes its ISO 8601 UTC form. Whether it falls on
    the model's steps is the loaded model's business (service.inference)."""
    if re.fullmatch(MONTH_PATTERN, value):
        return _normalise_month(value)
    try:
        return _period_text(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise invalid("invalid_period", f"not a valid period {value!r}: use an ISO 8601 timestamp such as "
                                        "2021-03-28T02:00:00Z (or YYYY-MM for monthly models)") from exc


@functools.lru_cache(maxsize=4096)
def _period_text(value: str) -> str:
    if len(value) > 40 or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("not ISO 8601")
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if not YEAR_RANGE[0] <= stamp.year <= YEAR_RANGE[1]:
        raise ValueError("year out of range")
    return iso_utc(stamp)


def given(name: str) -> dict[str, Any]:
    """JSON Schema for "``name`` is present and not null" (an optional field sent as null is absent)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def one_of_forms(inline: tuple[str, ...], optional: tuple[str, ...], batch: str) -> dict[str, Any]:
    """The schema of a body that is one item inline (``inline`` required) or a list in ``batch``."""
    return {
        "oneOf": [
            {"allOf": [given(name) for name in inline], "not": given(batch)},
            {"allOf": [given(batch)], "not": {"anyOf": [given(name) for name in (*inline, *optional)]}},
        ]
    }


def _integral(value: Any) -> Any:
    """JSON Schema's "integer" includes 12.0; accept that, still refuse 12.5, "12" and true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _level_digits(value: float) -> float:
    """A level as its interval's name says it: ``lower_<L>``/``upper_<L>`` carry 6 significant
    digits, so 95.00000001 would be computed as one interval and named as 95's."""
    return float(level_label(value))


def _distinct_levels(values: list[float]) -> list[float]:
    seen: dict[float, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise invalid(
                "invalid_level",
                f"level {value:g} is given twice (level[{seen[value]}] and level[{i}]; levels are "
                "compared to 6 significant digits, the precision of their lower_/upper_ names)",
                f"level[{i}]",
            )
        seen[value] = i
    return values


Month = Annotated[
    str,
    # The pattern is checked in _normalise_month (for our message); here it documents the format.
    Field(
        json_schema_extra={"pattern": MONTH_PATTERN},
        examples=["2021-03"],
        description="YYYY-MM (or YYYY-MM-DD)",
    ),
    AfterValidator(_normalise_month),
]
Period = Annotated[
    str,
    Field(
        max_length=40,
        examples=["2021-03-28T02:00:00Z"],
        description="ISO 8601 timestamp, UTC unless it carries an offset: the period of a model of any "
        "frequency (weekly, daily, hourly, half-hourly; YYYY-MM for a monthly one)",
    ),
    AfterValidator(_normalise_period),
]
Regressor = Annotated[float, Field(ge=0, le=MAX_REGRESSOR, allow_inf_nan=False)]
#: Bounds with 6 significant digits, so a level rounded to its name stays inside them.
MIN_LEVEL, MAX_LEVEL = 0.0001, 99.9999
Level = Annotated[
    float,
    Field(
        ge=MIN_LEVEL,
        le=MAX_LEVEL,
        allow_inf_nan=False,
        description="percent; rounded to 6 significant digits (the precision of lower_/upper_ names)",
    ),
    AfterValidator(_level_digits),
]
Levels = Annotated[
    list[Level],
    Field(
        min_length=1,
        max_length=MAX_LEVELS,
        description="interval levels in percent, each different to 6 significant digits",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_distinct_levels),
]
Domain = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SERIES_ID_LENGTH, examples=["Telecom"],
          description="a series id of the loaded model (GET /series lists them)"),
]
Kind = Literal[(*KINDS, *ANY_FREQUENCY_KINDS)]
Value = Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)]



def _request(*examples: dict[str, Any]) -> ConfigDict:
    """A strict request model's config, with the examples /docs offers to send."""
    return ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": list(examples)})


_RESPONSE = ConfigDict(extra="forbid")
#: What /predict, /forecast and /anomalies say when they had to assume regressor values.
REGRESSOR_DOC = (
    "Regressor values by name (the loaded model's `regressors`, e.g. phone_lines and channels), as "
    "further numeric properties; each optional. When omitted: the training data's value for a month inside "
    "the training window, else the median of the last 12 training months (see 'assumption')."
)
#: How the schemas state "more properties are regressor values" (names checked against the model).
_REGRESSOR_PROPERTIES = {"type": "number", "minimum": 0, "maximum": MAX_REGRESSOR}


def _regressor_values(model: BaseModel, reserved: frozenset[str] = frozenset()) -> dict[str, float | None]:
    """The extra properties of a request object, checked as regressor values (names come later)."""
    values = {}
    for name, value in (model.model_extra or {}).items():
        if name in reserved:
            continue
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid("invalid_regressor", f"regressor {name!r} must be a number, got {type(value).__name__}",
                          name)
        if value is not None and not (0 <= value <= MAX_REGRESSOR):  # NaN fails too
            raise invalid("invalid_regressor", f"regressor {name!r} must be between 0 and {MAX_REGRESSOR:g}", name)
        values[name] = None if value is None else float(value)
    return values


def _with_regressors(description: str) -> ConfigDict:
    return ConfigDict(strict=True, extra="allow",
                      json_schema_extra={"additionalProperties": _REGRESSOR_PROPERTIES,
                                         "description": description})


# ---------------------------------------------------------------- requests


class _WithRegressors(BaseModel):
    """A request object whose further properties are regressor values (``regressors``, checked here
    as numbers; their names are checked against the loaded model in service.inference)."""

    @model_validator(mode="after")
    def _regressors(self) -> _WithRegressors:
        self.__dict__["regressors"] = _regressor_values(self)
        return self

    @property
    def regressors(self) -> dict[str, float | None]:
        return self.__dict__["regressors"]


class AtPeriod(BaseModel):
    """An item at one period: ``month`` (monthly models, as always) or ``period`` (any frequency)."""

    month: Month | None = None
    period: Period | None = None

    @model_validator(mode="after")
    def _one_period(self) -> AtPeriod:
        return one_period(self)

    @property
    def at(self) -> tuple[str, str]:
        """(field given, its normalised text)."""
        return ("month", self.month) if self.month is not None else ("period", self.period)


def one_period(item):
    """``item`` (with ``month`` and ``period``) gives exactly one of them, or a 422 naming the field."""
    if (item.month is None) == (item.period is None):
        raise invalid("missing_field" if item.month is None else "conflicting_fields",
                      "give 'month' (monthly models) or 'period' (an ISO 8601 timestamp), one of them", "month")
    return item


class _AtPeriod(AtPeriod, _WithRegressors):
    """An item at one period with regressor values as further properties."""


class Instance(_AtPeriod):
    model_config = _with_regressors("A month (or period) and, as further properties, regressor values. "
                                    + REGRESSOR_DOC)


class PredictRequest(BaseModel):
    """Either one instance inline (month and regressor values) or ``instances``."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        json_schema_extra={
            "additionalProperties": _REGRESSOR_PROPERTIES,
            "description": "Either one instance inline (month and regressor values) or `instances`. "
            + REGRESSOR_DOC,
            # The one-of rule below (_one_form), stated in the schema too (regressor names are the model's,
            # so the schema cannot list them among the fields a batch must not have).
            "oneOf": [*one_of_forms(("month",), ("period",), "instances")["oneOf"],
                      {"allOf": [given("period")], "not": {"anyOf": [given("instances"), given("month")]}}],
            "examples": [
                {"month": "2021-03", "domains": ["Telecom", "Banking"], "phone_lines": 4, "channels": 2},
                {"instances": [{"month": "2020-12"}, {"month": "2021-06", "channels": 3}], "domains": ["Insurance"],
                 "level": [90]},
            ],
        },
    )

    month: Month | None = None
    period: Period | None = None
    instances: Annotated[list[Instance], Field(min_length=1, max_length=MAX_INSTANCES)] | None = None
    domains: Annotated[list[Domain], Field(min_length=1, max_length=MAX_INSTANCES), AfterValidator(_unique)] | None = (
        Field(None, description="series to answer; default: every series (models with more than 50 need it)")
    )
    level: Levels = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    kind: Kind | None = Field(None, description="default: the kind the manifest prefers per series")

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        regressors = _regressor_values(self)
        if self.instances is None and self.month is None and self.period is None:
            raise invalid("missing_field", "give 'month' (or 'period': one instance) or 'instances'", "month")
        if self.month is not None and self.period is not None:
            raise invalid("conflicting_fields", "give 'month' (monthly models) or 'period', not both", "period")
        inline = self.month is not None or self.period is not None
        if self.instances is not None and (inline or any(v is not None for v in regressors.values())):
            raise invalid(
                "conflicting_fields",
                "give either 'instances' or a month and regressor values at the top level, not both",
                "instances",
            )
        self.__dict__["inline_regressors"] = regressors
        return self

    def instance_list(self) -> list[Instance]:
        if self.instances is not None:
            return self.instances
        return [Instance(month=self.month, period=self.period, **self.__dict__["inline_regressors"])]

    def field_prefix(self) -> str | None:
        """Where per-instance errors point: "instances[i]." for a batch, top level otherwise."""
        return "instances" if self.instances is not None else None


RegressorValues = Annotated[
    dict[str, Regressor],
    Field(description="regressor values by name for one month (the loaded model's `regressors`)",
          examples=[{"phone_lines": 4, "channels": 2}], max_length=64),
]


class ForecastRequest(BaseModel):
    model_config = _request({"domain": "Healthcare", "horizon": 6, "level": [80, 95]})

    domain: Domain
    horizon: Annotated[int, Field(ge=1, le=MAX_STEPS, description=(
        f"periods ahead: at most {MAX_HORIZON} months, or the frequency's limit "
        f"({', '.join(f'{n} {f}' for f, n in HORIZON_LIMITS.items() if f != 'monthly')})")),
        BeforeValidator(_integral)] = 12
    regressors: Annotated[list[RegressorValues], Field(min_length=1, max_length=MAX_STEPS)] | None = Field(
        None,
        description="one entry per forecast period; when omitted every period uses the median of "
        "the last season of training data (12 months; stated in the response's 'assumption')",
    )
    level: Levels = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    kind: Kind | None = None

    @model_validator(mode="after")
    def _regressors_match_horizon(self) -> ForecastRequest:
        if self.regressors is not None and len(self.regressors) != self.horizon:
            raise invalid(
                "regressors_length",
                f"'regressors' has {len(self.regressors)} entries; it needs one per month of "
                f"the horizon ({self.horizon})",
                "regressors",
            )
        return self


class Observation(_AtPeriod):
    model_config = _with_regressors("An observed value at a month (or period) and, as further properties, "
                                    "regressor values. " + REGRESSOR_DOC)

    value: Value


class AnomaliesRequest(BaseModel):
    model_config = _request({"domain": "Banking", "observations": [{"month": "2020-06", "value": 1200},
                                                                   {"month": "2020-07", "value": 4000}]})

    domain: Domain
    observations: Annotated[list[Observation], Field(min_length=1, max_length=MAX_INSTANCES)]
    level: Level = Field(99.0, description="interval level in percent; outside it = anomaly")
    kind: Kind | None = None


#: What GET /predictions and POST /forecast answer in (service.downloads writes the files), and their
#: row shapes: the JSON rows as they are, or statsforecast's forecast frame.
FORMATS = ("json", "csv", "xlsx")
SHAPES = ("rows", "nixtla")


def _choice(code: str, allowed: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and value not in allowed:
            raise invalid(code, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


class DownloadQuery(BaseModel):
    """Query parameters of a route whose answer is a table that can be downloaded."""

    model_config = ConfigDict(extra="forbid")

    format: Annotated[Literal[FORMATS], BeforeValidator(_choice("invalid_format", FORMATS))] | None = Field(
        None, description="json, csv or xlsx; without it the Accept header decides (text/csv, "
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; default JSON)")
    output: Annotated[Literal[SHAPES], BeforeValidator(_choice("invalid_output", SHAPES))] | None = Field(
        None, description="rows (default): the JSON rows' columns; nixtla: statsforecast's columns "
        "unique_id, ds, mean, then lo- and hi- per level (lo-80, lo-95, hi-80, hi-95); a table: CSV unless "
        "xlsx is asked for, format=json with it is refused")


# ---------------------------------------------------------------- responses


class ErrorDetail(BaseModel):
    model_config = _RESPONSE

    code: str
    message: str
    field: str | None


class ErrorResponse(BaseModel):
    model_config = _RESPONSE

    error: ErrorDetail


class PredictionRow(BaseModel):
    """One period of one series: ``month`` for monthly models, ``period`` (ISO 8601 UTC) for others;
    ``lower_<L>``/``upper_<L>`` for each requested level L, and the regressor values used, by name."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float]

    month: str | None = Field(None, description="YYYY-MM (monthly models)")
    period: str | None = Field(None, description="ISO 8601 UTC timestamp (models of other frequencies)")
    domain: str
    kind: str
    mean: float
    std: float
    fitted: bool = Field(description="true for a month inside the series' training data (a fitted value), "
                                     "false for a forecast")
    model_version: str


class PredictResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    assumption: str | None
    predictions: list[PredictionRow]


class ForecastResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    domain: str
    kind: str
    horizon: int
    assumption: str | None
    forecast: list[PredictionRow]


class AnomalyRow(BaseModel):
    """One observation scored; the regressor values used follow, by name."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float]

    month: str | None = Field(None, description="YYYY-MM (monthly models)")
    period: str | None = Field(None, description="ISO 8601 UTC timestamp (models of other frequencies)")
    value: float
    mean: float
    std: float
    lower: float
    upper: float
    z_score: float
    p_value: float
    anomaly: bool


class AnomaliesResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    domain: str
    kind: str
    level: float
    assumption: str | None
    observations: list[AnomalyRow]


class ModelEntry(BaseModel):
    model_config = _RESPONSE

    domain: str
    kind: str
    preferred: bool
    kernel: str | None
    regressors: list[str]
    log_marginal_likelihood: float | None
    holdout: dict[str, float | None] | None


class ModelInfo(BaseModel):
    model_config = _RESPONSE

    model_version: str
    trained_at: str
    train_start: str
    train_end: str
    loaded_at: str
    frequency: str
    series_count: int
    domains: list[str] = Field(description="the first 50 series (GET /series lists all)")
    kinds: list[str]
    regressors: list[str]
    preferred: dict[str, str]
    models: list[ModelEntry]
    library_versions: dict[str, str]


class SeriesEntry(BaseModel):
    model_config = _RESPONSE

    id: str
    first: str
    last: str
    months: int
    kind: str = Field(description="the kind served for the series")
    uses_regressors: bool
    mean_volume: float = Field(description="mean of the last 12 months")
    holdout_smape: float | None
    holdout_mase: float | None
    notes: list[str]


class SeriesDetail(SeriesEntry):
    assumed_regressors: dict[str, float] = Field(
        description="regressor values assumed for months after the window (median of the last 12)")


class SeriesPage(BaseModel):
    model_config = _RESPONSE

    model_version: str
    total: int
    series: list[SeriesEntry]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at the end")


class SeriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: str | None = Field(None, description="next_cursor from the previous page")
    order: Literal["data", "volume", "error"] = Field("data", description="data order, by recent volume "
                                                      "(largest first) or by holdout sMAPE (worst first)")
    q: Annotated[str, Field(max_length=MAX_SERIES_ID_LENGTH)] | None = Field(
        None, description="only ids starting with this text (case-insensitive), in name order")


class HealthResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["ok"]


class ReadyResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["ready", "not_ready"]
    model_version: str | None
    reason: str | None
    checks: dict[str, str] = Field(
        description="models, database: 'ok' or the problem (any makes it not_ready); manifest, while a "
        "model serves: 'ok', or why the manifest.json now on disk is refused (the served model goes "
        "on serving, so still ready)"
    )


class ReloadResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["reloaded", "unchanged"]
    previous_version: str | None
    model_version: str
