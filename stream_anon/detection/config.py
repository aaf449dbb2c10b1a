"""The configuration of free-text detection (``recognizers.yaml`` in this package): which recognizers
run, their patterns and scores, and the rules of record-aware detection.

What runs and with which scores is configuration, as in Presidio; code holds only what a configuration
file cannot say (checksums live in the detectors, the matching rules of known values in
``record_aware``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CONFIG = "recognizers.yaml"
PERSON = "PERSON"


class RecognizerConfigError(ValueError):
    """The recognizers file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NerConfig(_Strict):
    labels: dict[str, str]
    score: float = Field(default=0.85, ge=0.0, le=1.0)
    widen_person: bool = True
    # Words the small model takes for names that never are (weekdays and months of the locales).
    not_person: frozenset[str] = frozenset()


class PresidioRecognizerConfig(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)


class ValidatedDetectorsConfig(_Strict):
    score: float = Field(default=0.9, ge=0.0, le=1.0)


class PatternConfig(_Strict):
    name: str
    entity: str
    regex: str
    score: float = Field(ge=0.0, le=1.0)
    case_sensitive: bool = False
    context: list[str] = Field(default_factory=list)


class RecordAwareConfig(_Strict):
    """Names and their particles; numbers and other values follow ``text``'s one digit policy."""

    score: float = Field(default=1.0, ge=0.0, le=1.0)
    name_entities: frozenset[str] = frozenset({PERSON})
    min_name_part: int = Field(default=2, ge=1)
    name_particles: frozenset[str] = frozenset()


class DetectionConfig(_Strict):
    ner: NerConfig
    presidio: list[PresidioRecognizerConfig] = Field(default_factory=list)
    validated_detectors: ValidatedDetectorsConfig | None = None
    macros: dict[str, str] = Field(default_factory=dict)
    patterns: list[PatternConfig] = Field(default_factory=list)
    record_aware: RecordAwareConfig = Field(default_factory=lambda: RecordAwareConfig())

    @property
    def ner_entities(self) -> frozenset[str]:
        return frozenset(self.ner.labels.values())


def load_config(path: Path | None = None) -> DetectionConfig:
    """The detection configuration: ``path``, or the file shipped in the package."""
    where = str(path) if path is not None else f"stream_anon/detection/{DEFAULT_CONFIG}"
    try:
        if path is None:
            text = files("stream_anon.detection").joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text)
        config = DetectionConfig.model_validate(loaded)
    except (OSError, yaml.YAMLError) as exc:
        raise RecognizerConfigError(f"{where}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RecognizerConfigError(f"{where}: {problems}") from None
    for pattern in config.patterns:
        try:
            regex.compile(expand_macros(pattern.regex, config.macros))
        except regex.error as exc:
            raise RecognizerConfigError(f"{where}: pattern {pattern.name!r}: {exc}") from None
    return config


def expand_macros(pattern: str, macros: dict[str, str]) -> str:
    """``pattern`` with each ``{NAME}`` of ``macros`` replaced by its value, macros within macros too."""
    for _ in range(10):
        expanded = pattern
        for name, value in macros.items():
            expanded = expanded.replace("{" + name + "}", value)
        if expanded == pattern:
            return expanded
        pattern = expanded
    raise RecognizerConfigError("macros refer to each other in a cycle")
