"""``AggregateSettings``: the ``aggregate`` section of the configuration, typed and validated.

The section arrives as a plain mapping (``Settings.aggregate``); ``aggregate_settings`` turns it into this
model, fills the source topic from the worker's ``output_topic`` and resolves a relative ledger path
against the configuration file's directory.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream_anon.config import ConfigError, Settings

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(value: Any) -> int:
    """``"1d"``, ``"12h"``, ``"15m"``, ``"30s"``, ``"500ms"``, or a number of seconds, as milliseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '1d', '12h', '15m'")
    if isinstance(value, int | float):
        return round(value * 1000)
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNIT_MS[match.group(2)]
    raise ValueError("a duration is a number of seconds or a string such as '1d', '12h', '15m'")


class NumericField(BaseModel):
    """A numeric field whose sum and mean are published: its clamping bounds and its epsilon."""

    model_config = ConfigDict(extra="forbid")

    min: float
    max: float
    epsilon: float = Field(gt=0)
    # The value a record without this field (null or absent) contributes; the bounds' midpoint if unset.
    impute: float | None = None

    @model_validator(mode="after")
    def _check(self) -> NumericField:
        if not self.min < self.max:
            raise ValueError("min must be below max")
        if self.impute is not None and not self.min <= self.impute <= self.max:
            raise ValueError("impute must lie within [min, max]")
        return self

    @property
    def fill(self) -> float:
        return self.impute if self.impute is not None else (self.min + self.max) / 2

    @property
    def magnitude(self) -> float:
        """The largest absolute value one clamped record adds to the sum."""
        return max(abs(self.min), abs(self.max))


class Epsilons(BaseModel):
    """Epsilon of each published count; numeric fields carry their own."""

    model_config = ConfigDict(extra="forbid")

    count: float = Field(gt=0)
    distinct_users: float = Field(gt=0)


class Budget(BaseModel):
    """The totals the ledger refuses to exceed."""

    model_config = ConfigDict(extra="forbid")

    # Sum of every figure's epsilon (and delta) released for one window.
    per_window: float = Field(gt=0)
    per_window_delta: float = Field(1e-6, ge=0, lt=1)
    # Most epsilon charged to one person over all windows of this job (its ledger): a person's records
    # count in at most lifetime / per-window epsilon windows; later ones are left out.
    lifetime: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, value: Any) -> Any:
        if isinstance(value, dict) and "per_user_group" in value:
            raise ValueError(
                "per_user_group was replaced by lifetime (epsilon per person over all windows): a "
                "per-cohort budget let a cohort's publication reveal who had been in it"
            )
        return value


class AggregateSettings(BaseModel):
    """Everything ``stream-anon aggregate`` reads; see docs/privacy.md for what each bound means."""

    model_config = ConfigDict(extra="forbid")

    source_topic: str = ""  # "" = the worker's output_topic (filled by aggregate_settings)
    aggregates_topic: str = "feedback.aggregates"
    group_id: str = "stream-anon-aggregate"
    # Fixed (no hostname): a second instance of the same job fences the first, so one publishes at a time.
    transactional_id: str | None = None
    window_ms: int = Field(86_400_000, alias="window", gt=0)
    allowed_lateness_ms: int = Field(3_600_000, alias="allowed_lateness", ge=0)
    # Event time in epoch milliseconds; None = the Kafka record timestamp.
    event_time_field: str | None = None
    group_by: list[str] = Field(min_length=1)
    # Optional known values of every grouping field: all their combinations are published (zeros too),
    # which makes the release pure epsilon-DP; records outside them are skipped.
    cohort_values: dict[str, list[str]] | None = None
    user_field: str
    max_records_per_user: int = Field(ge=1, le=10_000)
    bounding_seed: int = 0
    epsilon: Epsilons
    numeric: dict[str, NumericField] = Field(default_factory=dict)
    suppress_below: int = Field(ge=0)
    budget: Budget
    ledger: Path
    metrics_port: int = Field(9401, ge=0, le=65535)
    batch_size: int = Field(500, ge=1, le=100_000)
    poll_timeout_s: float = Field(0.5, gt=0)
    commit_interval_s: float = Field(30.0, gt=0)

    @field_validator("window_ms", "allowed_lateness_ms", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration_ms(value)

    @model_validator(mode="after")
    def _check(self) -> AggregateSettings:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by lists a field twice")
        if self.user_field in self.group_by or self.user_field in self.numeric:
            raise ValueError("user_field must not also be a grouping or numeric field")
        if self.cohort_values is not None:
            if set(self.cohort_values) != set(self.group_by):
                raise ValueError("cohort_values must list values for exactly the group_by fields")
            if any(not values for values in self.cohort_values.values()):
                raise ValueError("cohort_values: every grouping field needs at least one value")
        if self.window_epsilon > self.budget.per_window:
            raise ValueError(
                f"the figures of one window spend epsilon {self.window_epsilon:g}, "
                f"more than budget.per_window {self.budget.per_window:g}"
            )
        if self.window_epsilon > self.budget.lifetime:
            raise ValueError(
                f"budget.lifetime {self.budget.lifetime:g} is below the epsilon of a single window "
                f"({self.window_epsilon:g}): no one could contribute to any window"
            )
        return self

    @property
    def window_epsilon(self) -> float:
        """Epsilon one window's release spends (basic composition of its figures)."""
        return (
            self.epsilon.count + self.epsilon.distinct_users + sum(f.epsilon for f in self.numeric.values())
        )

    @property
    def effective_transactional_id(self) -> str:
        return self.transactional_id or self.group_id


def aggregate_settings(settings: Settings, base_dir: Path | None = None) -> AggregateSettings:
    """Validate the ``aggregate`` section; raises ``ConfigError`` naming the key at fault."""
    if settings.aggregate is None:
        raise ConfigError("the configuration has no 'aggregate' section")
    try:
        parsed = AggregateSettings.model_validate(settings.aggregate)
    except ValidationError as exc:
        problems = "; ".join(
            "aggregate." + ".".join(str(p) for p in err["loc"]) + f": {err['msg']}"
            if err["loc"]
            else f"aggregate: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    updates: dict[str, Any] = {}
    if not parsed.source_topic:
        updates["source_topic"] = settings.output_topic
    if base_dir is not None and not parsed.ledger.is_absolute():
        updates["ledger"] = base_dir / parsed.ledger
    if updates:
        parsed = parsed.model_copy(update=updates)
    if parsed.aggregates_topic in (parsed.source_topic, *settings.input_topics):
        raise ConfigError(
            "invalid configuration: aggregate.aggregates_topic must differ from the input topics"
        )
    return parsed
