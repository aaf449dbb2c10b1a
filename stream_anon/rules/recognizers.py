"""The recognizers of free-text detection, built from a configuration file (``data/recognizers.yaml``).

Three sources feed ``scan``:

* Presidio's analyzer: its predefined recognizers, the pattern recognizers of the configuration file, the
  validated detectors the leak verifier also runs, and spaCy's named entities (``SpacyRecognizer``);
* the NER spans themselves, widened over the rest of a name the small model tags only in part;
* record-aware detection (``RecordAware``): the raw values of the record's own ``"pii"`` fields.

What runs and with which scores is configuration, as in Presidio; this module only holds what a
configuration file cannot say (checksums live in the recognizers, the matching rules of known values).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import regex
import tldextract
import yaml
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spacy.tokens import Doc, Token
from spacy.tokens import Span as SpacySpan

from stream_anon import detectors

DEFAULT_CONFIG = "recognizers.yaml"
LANGUAGE = "en"
PERSON = "PERSON"
PHONE_NUMBER = "PHONE_NUMBER"

# A tldextract that never downloads: the public suffix list comes from the snapshot in its package.
_OFFLINE_TLDEXTRACT = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class RecognizerConfigError(ValueError):
    """The recognizers file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NerConfig(_Strict):
    labels: dict[str, str]
    score: float = Field(0.85, ge=0.0, le=1.0)
    widen_person: bool = True


class PresidioRecognizerConfig(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    min_score: float | None = Field(None, ge=0.0, le=1.0)


class ValidatedDetectorsConfig(_Strict):
    score: float = Field(0.9, ge=0.0, le=1.0)


class PatternConfig(_Strict):
    name: str
    entity: str
    regex: str
    score: float = Field(ge=0.0, le=1.0)
    case_sensitive: bool = False
    context: list[str] = Field(default_factory=list)


class RecordAwareConfig(_Strict):
    score: float = Field(1.0, ge=0.0, le=1.0)
    digit_entities: frozenset[str] = frozenset({PHONE_NUMBER, "CREDIT_CARD", "US_SSN"})
    min_digits: int = Field(7, ge=1)
    name_entities: frozenset[str] = frozenset({PERSON})
    min_name_part: int = Field(2, ge=1)
    name_particles: frozenset[str] = frozenset()
    min_length: int = Field(4, ge=1)


class DetectionConfig(_Strict):
    ner: NerConfig
    presidio: list[PresidioRecognizerConfig] = Field(default_factory=list)
    validated_detectors: ValidatedDetectorsConfig | None = None
    macros: dict[str, str] = Field(default_factory=dict)
    patterns: list[PatternConfig] = Field(default_factory=list)
    record_aware: RecordAwareConfig = Field(default_factory=RecordAwareConfig)

    @property
    def ner_entities(self) -> frozenset[str]:
        return frozenset(self.ner.labels.values())


def load_config(path: Path | None = None) -> DetectionConfig:
    """The detection configuration: ``path``, or the file shipped in the package."""
    where = str(path) if path is not None else f"stream_anon/data/{DEFAULT_CONFIG}"
    try:
        if path is None:
            text = files("stream_anon").joinpath("data", DEFAULT_CONFIG).read_text(encoding="utf-8")
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


class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
    """Presidio's email recognizer, validating domains against tldextract's bundled suffix list.

    The stock recognizer calls ``tldextract.extract``, which downloads the public suffix list on first
    use: a pod without egress would print a traceback and wait for the timeout.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLDEXTRACT(pattern_text).fqdn)


class ValidatedDetectorsRecognizer(LocalRecognizer):  # type: ignore[misc]
    """``stream_anon.detectors`` as a Presidio recognizer: what the leak verifier flags, scan finds."""

    ENTITIES: ClassVar[list[str]] = [
        detectors.EMAIL_ADDRESS,
        detectors.PHONE_NUMBER,
        detectors.CREDIT_CARD,
        detectors.IBAN_CODE,
        detectors.US_SSN,
        detectors.IP_ADDRESS,
    ]

    def __init__(self, score: float) -> None:
        self.score = score
        super().__init__(supported_entities=list(self.ENTITIES), supported_language=LANGUAGE)

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            RecognizerResult(
                entity_type=finding.entity,
                start=finding.start,
                end=finding.end,
                score=self.score,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for finding in detectors.find(text)
            if finding.entity in entities
        ]


# Classes a configuration file may name besides Presidio's predefined recognizers.
_OWN_RECOGNIZERS: dict[str, type[EntityRecognizer]] = {"OfflineEmailRecognizer": OfflineEmailRecognizer}


def build_recognizers(config: DetectionConfig) -> tuple[list[EntityRecognizer], dict[str, float]]:
    """The recognizers of ``config`` and the minimum score of each recognizer name that has one."""
    from presidio_analyzer import predefined_recognizers

    recognizers: list[EntityRecognizer] = [
        SpacyRecognizer(
            supported_language=LANGUAGE,
            supported_entities=sorted(config.ner_entities),
            ner_strength=config.ner.score,
        )
    ]
    min_scores: dict[str, float] = {}
    for entry in config.presidio:
        cls = _OWN_RECOGNIZERS.get(entry.name) or getattr(predefined_recognizers, entry.name, None)
        if not (isinstance(cls, type) and issubclass(cls, EntityRecognizer)):
            raise RecognizerConfigError(f"presidio: no recognizer class named {entry.name!r}")
        try:
            recognizer = cls(supported_language=LANGUAGE, **entry.args)
        except TypeError as exc:
            raise RecognizerConfigError(f"presidio: {entry.name}: {exc}") from None
        recognizers.append(recognizer)
        if entry.min_score is not None:
            min_scores[recognizer.name] = entry.min_score
    if config.validated_detectors is not None:
        recognizers.append(ValidatedDetectorsRecognizer(config.validated_detectors.score))
    for pattern in config.patterns:
        flags = regex.DOTALL | regex.MULTILINE | (0 if pattern.case_sensitive else regex.IGNORECASE)
        recognizers.append(
            PatternRecognizer(
                supported_entity=pattern.entity,
                name=pattern.name,
                supported_language=LANGUAGE,
                patterns=[
                    Pattern(pattern.name, expand_macros(pattern.regex, config.macros), pattern.score)
                ],
                context=pattern.context or None,
                global_regex_flags=flags,
            )
        )
    return recognizers, min_scores


class NerEntities:
    """spaCy's entities of a document as Presidio sees them: mapped labels, PERSON spans widened."""

    def __init__(self, config: DetectionConfig) -> None:
        self.labels = dict(config.ner.labels)
        self.widen_person = config.ner.widen_person
        # Capitalized words that border a name without being part of it ("Thanks", "Dear", "Hello").
        not_name = config.macros.get("NOT_NAME")
        self._not_name = regex.compile(not_name, regex.IGNORECASE) if not_name else None
        self._particles = config.record_aware.name_particles

    def of(self, doc: Doc) -> list[SpacySpan]:
        spans: list[SpacySpan] = []
        for ent in doc.ents:
            label = self.labels.get(ent.label_)
            if label is None:
                continue
            start, end = ent.start, ent.end
            if label == PERSON and self.widen_person:
                start, end = self._widen(doc, start, end)
            spans.append(SpacySpan(doc, start, end, label=label))
        return _drop_contained(spans)

    def _widen(self, doc: Doc, start: int, end: int) -> tuple[int, int]:
        while end < len(doc):
            if self._name_like(doc[end]):
                end += 1
            elif (
                end + 1 < len(doc)
                and doc[end].lower_ in self._particles
                and self._name_like(doc[end + 1])
                and doc[end].whitespace_
            ):
                end += 2
            else:
                break
        while start > 0 and self._name_like(doc[start - 1]) and doc[start - 1].whitespace_:
            start -= 1
        return start, end

    def _name_like(self, token: Token) -> bool:
        text = token.text
        return (
            len(text) >= 2
            and text[0].isupper()
            and not text.isupper()
            and token.is_alpha
            and not token.is_stop
            and not (self._not_name is not None and self._not_name.fullmatch(text))
        )


def _drop_contained(spans: list[SpacySpan]) -> list[SpacySpan]:
    """Widening can make two entities overlap ("Mehmet" and "Nowak" both grow into "Mehmet Nowak")."""
    if len(spans) < 2:
        return spans
    spans.sort(key=lambda s: (s.start, -s.end))
    kept = [spans[0]]
    for span in spans[1:]:
        last = kept[-1]
        if span.start < last.end:
            if span.end > last.end:
                kept[-1] = SpacySpan(span.doc, last.start, span.end, label=last.label_)
            continue
        kept.append(span)
    return kept


# Digits and the punctuation numbers are written with; runs of them hold phone, card and SSN numbers.
_DIGIT_RUN = re.compile(r"\d(?:[ \t.\-/()]{0,3}\d)+")
_DIGIT_GROUP = re.compile(r"\d+")
_NOT_DIGIT = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[\W_]")
# Separators a written value may carry between its characters (an IBAN in groups of four).
_SEPARATOR = r"[ \t\-]?"
_WHITESPACE = re.compile(r"[\s\-]+")


class RecordAware:
    """Finds the raw values of a record's ``"pii"`` fields in its free text.

    Names are searched whole and part by part (first or last name alone), ignoring case and accents, as
    whole words; phone, card and SSN numbers digit by digit whatever their punctuation (a phone number
    also without its country code, or with a trunk ``0``); anything else as written, ignoring case and
    spaces or dashes between its characters.
    """

    def __init__(self, config: RecordAwareConfig) -> None:
        self.config = config

    def find(self, text: str, known: Sequence[tuple[str, str]]) -> list[tuple[int, int, str]]:
        """``(start, end, entity)`` of every occurrence of a known value in ``text``."""
        if not known or not text:
            return []
        found: list[tuple[int, int, str]] = []
        alternatives: list[tuple[str, str]] = []  # (pattern, entity), one regex for all of them
        numbers: list[tuple[str, str]] = []  # (digits, entity)
        for entity, value in known:
            value = value.strip()
            if not value:
                continue
            if entity in self.config.digit_entities:
                digits = _NOT_DIGIT.sub("", value)
                if len(digits) >= self.config.min_digits:
                    numbers.append((digits, entity))
            elif entity in self.config.name_entities:
                alternatives.extend((pattern, entity) for pattern in self._name_patterns(value))
            elif len(_NOT_ALNUM.sub("", value)) >= self.config.min_length:
                alternatives.append((_SEPARATOR.join(_letter(c) for c in value if not c.isspace()), entity))
        if alternatives:
            found.extend(self._find_alternatives(text, alternatives))
        if numbers:
            found.extend(self._find_numbers(text, numbers))
        return found

    def _name_patterns(self, name: str) -> Iterator[str]:
        words = [w for w in _WHITESPACE.split(name) if w]
        if len(words) > 1:
            yield r"[\s\-]+".join(_word(w) for w in words)
        for word in words:
            if len(word) >= self.config.min_name_part and word.lower() not in self.config.name_particles:
                yield _word(word)

    @staticmethod
    def _find_alternatives(text: str, alternatives: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
        # Longest first, so at one position the whole name wins over its first word.
        alternatives.sort(key=lambda a: len(a[0]), reverse=True)
        entities = [entity for _, entity in alternatives]
        pattern = re.compile(
            r"(?<!\w)(?:" + "|".join(f"({p})" for p, _ in alternatives) + r")(?!\w)", re.IGNORECASE
        )
        for match in pattern.finditer(text):
            yield match.start(), match.end(), entities[match.lastindex - 1 if match.lastindex else 0]

    def _find_numbers(self, text: str, numbers: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
        for run in _DIGIT_RUN.finditer(text):
            groups = [(m.start() + run.start(), m.end() + run.start()) for m in _DIGIT_GROUP.finditer(run[0])]
            i = 0
            while i < len(groups):
                hit = self._longest_at(text, groups, i, numbers)
                if hit is None:
                    i += 1
                    continue
                j, entity = hit
                yield _with_prefix(text, groups[i][0], groups[j][1]), groups[j][1], entity
                i = j + 1

    def _longest_at(
        self, text: str, groups: list[tuple[int, int]], i: int, numbers: list[tuple[str, str]]
    ) -> tuple[int, str] | None:
        """The last group ``j`` such that groups ``i..j`` spell a known number, and its entity."""
        digits = ""
        best: tuple[int, str] | None = None
        for j in range(i, len(groups)):
            digits += text[groups[j][0] : groups[j][1]]
            for known, entity in numbers:
                if self._same_number(digits, known, entity):
                    best = (j, entity)
        return best

    def _same_number(self, written: str, known: str, entity: str) -> bool:
        if written == known:
            return True
        if entity != PHONE_NUMBER:
            return False
        # "+44 20 7946 0958", "0044 20 7946 0958" and "020 7946 0958" are one number: compare without
        # leading zeros, allowing a country code of up to three digits on either side.
        a, b = written.lstrip("0"), known.lstrip("0")
        if min(len(a), len(b)) < self.config.min_digits or abs(len(a) - len(b)) > 3:
            return False
        return a.endswith(b) or b.endswith(a)


def _with_prefix(text: str, start: int, end: int) -> int:
    """Start of a number with the ``+`` or ``(`` written in front of it."""
    if start > 0 and (text[start - 1] == "+" or (text[start - 1] == "(" and ")" in text[start:end])):
        return start - 1
    return start


def _letter(char: str) -> str:
    """A pattern for ``char`` that also matches it without its accent (``é`` or ``e``)."""
    base = unicodedata.normalize("NFD", char)[0]
    if base != char and base.isalpha():
        return f"[{re.escape(char)}{re.escape(base)}]"
    if char in "'’":
        return "['’]"
    return re.escape(char)


def _word(word: str) -> str:
    return "".join(_letter(c) for c in word)
