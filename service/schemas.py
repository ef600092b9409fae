"""Request and response models: the one schema source for validation and for /openapi.json.

Strict types: numbers must be JSON numbers ("4" is refused, not coerced), months are strings
"YYYY-MM" (a full date "YYYY-MM-DD" is accepted and normalised to its month). Validators that
find a problem raise :func:`invalid`, whose ``code`` becomes the error code clients see.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from MLPipeline.config import DEFAULT_LEVELS, DOMAINS, KINDS
from MLPipeline.months import format_month, parse_month

MAX_INSTANCES = 1000  # items in one /predict batch or one /anomalies request
MAX_HORIZON = 60  # months: /forecast horizon, and how far past the training window /predict reaches
MAX_LEVELS = 8  # interval levels in one request
#: Upper bound for phone lines / channels: far above anything in the data; values beyond it are
#: almost certainly typos, and the GP would only extrapolate nonsense from them.
MAX_REGRESSOR = 1_000_000.0
MAX_ABS_VALUE = 1e12  # observed volumes for /anomalies

MONTH_PATTERN = r"^\d{4}-\d{2}(-\d{2})?$"


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


def _integral(value: Any) -> Any:
    """JSON Schema's "integer" includes 12.0; accept that, still refuse 12.5, "12" and true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


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
Regressor = Annotated[float, Field(ge=0, le=MAX_REGRESSOR, allow_inf_nan=False)]
Level = Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)]
Levels = Annotated[
    list[Level],
    Field(min_length=1, max_length=MAX_LEVELS, description="interval levels in percent"),
    AfterValidator(_unique),
]
Domain = Literal[DOMAINS]
Kind = Literal[KINDS]
Value = Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)]

_REQUEST = ConfigDict(strict=True, extra="forbid")
_RESPONSE = ConfigDict(extra="forbid")
#: What /predict, /forecast and /anomalies say when they had to assume regressor values.
REGRESSOR_DOC = (
    "phone_lines/channels; optional. When omitted: the training data's value for a month inside "
    "the training window, else the median of the last 12 training months (see 'assumption')."
)


# ---------------------------------------------------------------- requests


class Instance(BaseModel):
    model_config = _REQUEST

    month: Month
    phone_lines: Regressor | None = Field(None, description=REGRESSOR_DOC)
    channels: Regressor | None = Field(None, description=REGRESSOR_DOC)


class PredictRequest(BaseModel):
    """Either one instance inline (month, phone_lines, channels) or ``instances``."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        # The one-of rule below (_one_form), stated in the schema too.
        json_schema_extra={
            "oneOf": [
                {"required": ["month"], "not": {"required": ["instances"]}},
                {
                    "required": ["instances"],
                    "not": {"anyOf": [{"required": [name]} for name in ("month", "phone_lines", "channels")]},
                },
            ]
        },
    )

    month: Month | None = None
    phone_lines: Regressor | None = Field(None, description=REGRESSOR_DOC)
    channels: Regressor | None = Field(None, description=REGRESSOR_DOC)
    instances: Annotated[list[Instance], Field(min_length=1, max_length=MAX_INSTANCES)] | None = None
    domains: Annotated[list[Domain], Field(min_length=1), AfterValidator(_unique)] | None = Field(
        None, description="default: all domains"
    )
    level: Levels = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    kind: Kind | None = Field(None, description="default: the kind the manifest prefers per domain")

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        if self.instances is None and self.month is None:
            raise invalid("missing_field", "give 'month' (one instance) or 'instances'", "month")
        if self.instances is not None and (
            self.month is not None or self.phone_lines is not None or self.channels is not None
        ):
            raise invalid(
                "conflicting_fields",
                "give either 'instances' or month/phone_lines/channels at the top level, not both",
                "instances",
            )
        return self

    def instance_list(self) -> list[Instance]:
        if self.instances is not None:
            return self.instances
        return [Instance(month=self.month, phone_lines=self.phone_lines, channels=self.channels)]

    def field_prefix(self) -> str | None:
        """Where per-instance errors point: "instances[i]." for a batch, top level otherwise."""
        return "instances" if self.instances is not None else None


class RegressorValues(BaseModel):
    model_config = _REQUEST

    phone_lines: Regressor
    channels: Regressor


class ForecastRequest(BaseModel):
    model_config = _REQUEST

    domain: Domain
    horizon: Annotated[int, Field(ge=1, le=MAX_HORIZON), BeforeValidator(_integral)] = 12
    regressors: Annotated[list[RegressorValues], Field(min_length=1, max_length=MAX_HORIZON)] | None = Field(
        None,
        description="one entry per forecast month; when omitted every month uses the median of "
        "the last 12 training months (stated in the response's 'assumption')",
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


class Observation(BaseModel):
    model_config = _REQUEST

    month: Month
    value: Value
    phone_lines: Regressor | None = Field(None, description=REGRESSOR_DOC)
    channels: Regressor | None = Field(None, description=REGRESSOR_DOC)


class AnomaliesRequest(BaseModel):
    model_config = _REQUEST

    domain: Domain
    observations: Annotated[list[Observation], Field(min_length=1, max_length=MAX_INSTANCES)]
    level: Level = Field(99.0, description="interval level in percent; outside it = anomaly")
    kind: Kind | None = None


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
    """One month of one domain; ``lower_<L>``/``upper_<L>`` for each requested level L."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float]

    month: str
    domain: Domain
    kind: Kind
    mean: float
    std: float
    phone_lines: float | None
    channels: float | None
    model_version: str


class PredictResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    assumption: str | None
    predictions: list[PredictionRow]


class ForecastResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    domain: Domain
    kind: Kind
    horizon: int
    assumption: str | None
    forecast: list[PredictionRow]


class AnomalyRow(BaseModel):
    model_config = _RESPONSE

    month: str
    value: float
    mean: float
    std: float
    lower: float
    upper: float
    z_score: float
    p_value: float
    anomaly: bool
    phone_lines: float | None
    channels: float | None


class AnomaliesResponse(BaseModel):
    model_config = _RESPONSE

    model_version: str
    domain: Domain
    kind: Kind
    level: float
    assumption: str | None
    observations: list[AnomalyRow]


class ModelEntry(BaseModel):
    model_config = _RESPONSE

    domain: Domain
    kind: Kind
    preferred: bool
    kernel: str
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
    domains: list[str]
    kinds: list[str]
    regressors: list[str]
    preferred: dict[str, str]
    models: list[ModelEntry]
    library_versions: dict[str, str]


class HealthResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["ok"]


class ReadyResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["ready", "not_ready"]
    model_version: str | None
    reason: str | None
    checks: dict[str, str]


class ReloadResponse(BaseModel):
    model_config = _RESPONSE

    status: Literal["reloaded", "unchanged"]
    previous_version: str | None
    model_version: str
