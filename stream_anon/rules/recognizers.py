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

import phonenumbers
import regex
import tldextract
import yaml
from presidio_analyzer import (
    AnalysisExplanation,
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer, SpacyRecognizer
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
    score: float = Field(default=0.85, ge=0.0, le=1.0)
    widen_person: bool = True


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
    score: float = Field(default=1.0, ge=0.0, le=1.0)
    digit_entities: frozenset[str] = frozenset({PHONE_NUMBER, "CREDIT_CARD", "US_SSN"})
    min_digits: int = Field(default=7, ge=1)
    name_entities: frozenset[str] = frozenset({PERSON})
    min_name_part: int = Field(default=2, ge=1)
    name_particles: frozenset[str] = frozenset()
    min_length: int = Field(default=4, ge=1)


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


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating domains against tldextract's bundled suffix list.

    The stock recognizer calls ``tldextract.extract``, which downloads the public suffix list on first
    use: a pod without egress would print a traceback and wait for the timeout.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLDEXTRACT(pattern_text).fqdn)


class ValidatedDetectorsRecognizer(LocalRecognizer):
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
                # Presidio's context enhancer writes into the explanation: without one it raises
                analysis_explanation=AnalysisExplanation(type(self).__name__, self.score),
            )  # the analyzer adds the recognizer's name and id
            for finding in detectors.find(text)
            if finding.entity in entities
        ]


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (python-phonenumbers), run only where a number can be.

    The stock recognizer runs a ``PhoneNumberMatcher`` over the whole text once per region (about 0.3 ms
    each). This one runs it on the window of each run of seven or more digits, skips a window that a
    validated detector has already claimed (a card number, a grouped phone number), and stops at the
    first region that matches (any region parses a number written with its country code).
    """

    _CANDIDATE = re.compile(r"[+(]?\d[\d \t.\-/()]{5,}\d")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        claimed: list[detectors.Finding] | None = None
        results: list[RecognizerResult] = []
        leniency = 1 if self.leniency is None else self.leniency
        for candidate in self._CANDIDATE.finditer(text):
            if claimed is None:
                claimed = detectors.find(text)
            first_digit = candidate.start() + (not candidate[0][0].isdigit())
            if any(f.start <= first_digit and candidate.end() <= f.end for f in claimed):
                continue
            start, end = max(0, candidate.start() - 1), min(len(text), candidate.end() + 1)
            window = text[start:end]
            for region in self.supported_regions:
                matches = list(phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency))
                for match in matches:
                    results.append(self._result(start + match.start, start + match.end))
                if matches:
                    break
        return EntityRecognizer.remove_duplicates(results)

    def _result(self, start: int, end: int) -> RecognizerResult:
        # the analyzer adds the recognizer's name and id
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=self.SCORE,
            analysis_explanation=AnalysisExplanation(
                type(self).__name__, self.SCORE
            ),  # the context enhancer needs it
        )


# Classes a configuration file may name besides Presidio's predefined recognizers.
_OWN_RECOGNIZERS: dict[str, type[EntityRecognizer]] = {
    "OfflineEmailRecognizer": OfflineEmailRecognizer,
    "WindowedPhoneRecognizer": WindowedPhoneRecognizer,
}


def build_recognizers(config: DetectionConfig) -> tuple[list[EntityRecognizer], dict[str, float]]:
    """The recognizers of ``config`` and the minimum score of each recognizer (by id) that has one."""
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
            min_scores[recognizer.id] = entry.min_score
    if config.validated_detectors is not None:
        recognizers.append(ValidatedDetectorsRecognizer(config.validated_detectors.score))
    for pattern in config.patterns:
        flags = regex.DOTALL | regex.MULTILINE | (0 if pattern.case_sensitive else regex.IGNORECASE)
        recognizers.append(
            PatternRecognizer(
                supported_entity=pattern.entity,
                name=pattern.name,
                supported_language=LANGUAGE,
                patterns=[Pattern(pattern.name, expand_macros(pattern.regex, config.macros), pattern.score)],
                context=list(pattern.context),
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
        while start > 0 and doc[start - 1].whitespace_:
            if self._name_like(doc[start - 1]):
                start -= 1
            elif start > 1 and doc[start - 1].lower_ in self._particles and self._name_like(doc[start - 2]):
                start -= 2
            else:
                break
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
_DIGITS = re.compile(r"\d+")
_NOT_DIGIT = re.compile(r"\D")
# Words as names are written: letters and digits, with apostrophes inside ("O'Connor").
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# Runs of letters and digits, with single spaces or dashes between them (an IBAN in groups of four).
_ALNUM_RUN = re.compile(r"[^\W_]+(?:[ \t\-][^\W_]+)*")
_ALNUM = re.compile(r"[^\W_]+")
_NAME_SEPARATOR = re.compile(r"[\s\-]+")
_SPACES_AND_DASHES = re.compile(r"[\s\-]+")


class RecordAware:
    """Finds the raw values of a record's ``"pii"`` fields in its free text.

    Names are searched whole and word by word (first or last name alone), ignoring case and accents, as
    whole words; phone, card and SSN numbers digit by digit whatever their punctuation (a phone number
    also without its country code, or with a trunk ``0``); values of letters, digits, spaces and dashes
    (an IBAN, a device id) ignoring case, spaces and dashes; anything else (an email) as written, ignoring
    case, as a whole word. Nothing is compiled per record: a worker sees a new name in every record.
    """

    def __init__(self, config: RecordAwareConfig) -> None:
        self.config = config

    def find(self, text: str, known: Sequence[tuple[str, str]]) -> list[tuple[int, int, str]]:
        """``(start, end, entity)`` of every occurrence of a known value in ``text``."""
        if not known or not text:
            return []
        names: list[tuple[tuple[str, ...], str]] = []  # (folded words of a name or of one part, entity)
        numbers: list[tuple[str, str]] = []  # (digits, entity)
        compact: list[tuple[str, str]] = []  # (upper-case letters and digits, entity)
        literal: list[tuple[str, str]] = []  # (lower-case value, entity)
        config = self.config
        for entity, raw in known:
            value = raw.strip()
            if entity in config.digit_entities:
                digits = _NOT_DIGIT.sub("", value)
                if len(digits) >= config.min_digits:
                    numbers.append((digits, entity))
            elif entity in config.name_entities:
                words = tuple(_fold(m[0]) for m in _WORD.finditer(value))
                if len(words) > 1:
                    names.append((words, entity))
                names.extend(
                    ((w,), entity)
                    for w in words
                    if len(w) >= config.min_name_part and w not in config.name_particles
                )
            elif len(value) >= config.min_length:
                squeezed = _SPACES_AND_DASHES.sub("", value)
                if squeezed.isalnum():
                    compact.append((squeezed.upper(), entity))
                else:
                    literal.append((value.lower(), entity))
        found: list[tuple[int, int, str]] = []
        if names:
            found.extend(_find_names(text, names))
        if numbers:
            found.extend(self._find_numbers(text, numbers))
        if compact:
            found.extend(_find_compact(text, compact))
        if literal:
            found.extend(_find_literal(text, literal))
        return found

    def _find_numbers(self, text: str, numbers: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
        for run in _DIGIT_RUN.finditer(text):
            groups = [(m.start() + run.start(), m.end() + run.start()) for m in _DIGITS.finditer(run[0])]
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


def _find_names(text: str, names: list[tuple[tuple[str, ...], str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of whole names or single parts, as whole words; the longest name at a word wins."""
    words = [(m.start(), m.end(), _fold(m[0])) for m in _WORD.finditer(text)]
    names = sorted(names, key=lambda n: len(n[0]), reverse=True)
    i = 0
    while i < len(words):
        for parts, entity in names:
            n = len(parts)
            if i + n <= len(words) and all(
                words[i + k][2] == parts[k]
                and (k == 0 or _NAME_SEPARATOR.fullmatch(text[words[i + k - 1][1] : words[i + k][0]]))
                for k in range(n)
            ):
                yield words[i][0], words[i + n - 1][1], entity
                i += n
                break
        else:
            i += 1


def _find_compact(text: str, values: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of values compared without case, spaces and dashes, starting and ending at words."""
    for run in _ALNUM_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _ALNUM.finditer(run[0])]
        upper = [text[a:b].upper() for a, b in groups]
        i = 0
        while i < len(groups):
            for value, entity in values:
                j, spelled = i, ""
                while j < len(groups) and value.startswith(spelled + upper[j]):
                    spelled += upper[j]
                    if spelled == value:
                        break
                    j += 1
                if spelled == value:
                    yield groups[i][0], groups[j][1], entity
                    i = j
                    break
            i += 1


def _find_literal(text: str, values: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
    """Occurrences of values as written, ignoring case, not inside a longer word."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few letters change length with their case ("İ")
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    for value, entity in values:
        start = lowered.find(value)
        while start >= 0:
            end = start + len(value)
            if not _inside_word(text, start, end):
                yield start, end, entity
            start = lowered.find(value, end)


def _inside_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
        end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
    )


def _fold(word: str) -> str:
    """``word`` without case and accents: "Zoë" and "zoe" are one name."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFD", word.replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _with_prefix(text: str, start: int, end: int) -> int:
    """Start of a number with the ``+`` or ``(`` written in front of it."""
    if start > 0 and (text[start - 1] == "+" or (text[start - 1] == "(" and ")" in text[start:end])):
        return start - 1
    return start
