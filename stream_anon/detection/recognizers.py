"""Presidio recognizers of free-text detection and spaCy's entities as Presidio sees them.

* ``OfflineEmailRecognizer`` and ``WindowedPhoneRecognizer``: Presidio's, made offline and fast;
* ``ValidatedDetectorsRecognizer``: the detectors the leak verifier runs (``validated``), so what the
  verifier would flag, the scan has already removed;
* ``build_recognizers``: the recognizers a ``DetectionConfig`` names, with pattern recognizers;
* ``FixedRegistry``: a registry of those recognizers that looks up a request's recognizers once;
* ``DocArtifacts`` and ``ContextEnhancer``: Presidio's context enhancement, paid for only by the results
  it can change;
* ``NerEntities``: spaCy's entities, ``PERSON`` spans widened over the rest of a name.
"""

from __future__ import annotations

import copy
import re
from functools import cache, cached_property
from typing import Any, ClassVar

import phonenumbers
import regex
import tldextract
from presidio_analyzer import (
    AnalysisExplanation,
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer, SpacyRecognizer
from spacy.tokens import Doc, Token
from spacy.tokens import Span as SpacySpan

from stream_anon.detection import contextual
from stream_anon.detection import validated as detectors
from stream_anon.detection.config import PERSON, DetectionConfig, RecognizerConfigError, expand_macros

LANGUAGE = "en"

# A tldextract that never downloads: the public suffix list comes from the snapshot in its package.
_OFFLINE_TLDEXTRACT = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating domains against tldextract's bundled suffix list.

    The stock recognizer calls ``tldextract.extract``, which downloads the public suffix list on first
    use: a pod without egress would print a traceback and wait for the timeout.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLDEXTRACT(pattern_text).fqdn)


class ValidatedDetectorsRecognizer(LocalRecognizer):
    """``validated`` detectors as a Presidio recognizer: what the leak verifier flags, scan finds."""

    ENTITIES: ClassVar[list[str]] = [
        detectors.EMAIL_ADDRESS,
        detectors.PHONE_NUMBER,
        detectors.CREDIT_CARD,
        detectors.IBAN_CODE,
        detectors.US_SSN,
        detectors.IP_ADDRESS,
        contextual.DATE_OF_BIRTH,
        contextual.STREET_ADDRESS,
        contextual.PROFILE_URL,
        contextual.PERSON,
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
            for finding in contextual.SCAN.find(text)
            if finding.entity in entities
        ]


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (python-phonenumbers), run only where a number can be.

    The stock recognizer runs a ``PhoneNumberMatcher`` over the whole text once per region (about 0.3 ms
    each). This one runs it on the window of each run of seven or more digits, skips a window that a
    validated detector has already claimed (a card number, a grouped phone number), and stops at the
    first region that matches (any region parses a number written with its country code). A region
    ``all`` in ``supported_regions`` stands for every other region python-phonenumbers knows.
    """

    _CANDIDATE = re.compile(r"[+(]?\d[\d \t.\-/()]{5,}\d(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,6})?", re.I)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        regions = list(self.supported_regions)
        if "all" in regions:
            at = regions.index("all")
            others = sorted(phonenumbers.SUPPORTED_REGIONS - set(regions))
            regions[at : at + 1] = others
        self.supported_regions = regions

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        claimed: list[detectors.Finding] | None = None
        results: list[RecognizerResult] = []
        leniency = 1 if self.leniency is None else self.leniency
        for candidate in self._CANDIDATE.finditer(text):
            if _inside_id(text, candidate.start(), candidate.end()):
                continue  # "INV-2024-00871": part of an id
            if sum(c.isdigit() for c in candidate[0]) < 7 or _DATE.search(candidate[0]):
                continue  # "13.21.83", "2024-03-15": a version or a date, which some region would parse
            if claimed is None:
                claimed = detectors.find(text)
            first_digit = candidate.start() + (not candidate[0][0].isdigit())
            if any(f.start <= first_digit and candidate.end() <= f.end for f in claimed):
                continue
            start, end = max(0, candidate.start() - 1), min(len(text), candidate.end() + 1)
            window = text[start:end]
            for region in self.supported_regions:
                matches = [
                    match
                    for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency)
                    if sum(c.isdigit() for c in match.raw_string) >= 7  # short codes of some regions
                ]
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


class DocArtifacts(NlpArtifacts):
    """Presidio's NLP artifacts of a text, its token offsets, lemmas and keywords worked out when first
    read.

    Only Presidio's context enhancer reads them, and only for a text with a result of a recognizer with
    context words (about four in ten of case 4's comments that reach it); the stock artifacts list them for
    every text, and the keywords (each lemma tested against the stop words and punctuation) cost more
    than some recognizers. The lemmas are the lower-case tokens: the NER-only pipeline has no
    lemmatizer.
    """

    def __init__(self, doc: Doc, entities: list[SpacySpan], nlp_engine: NlpEngine, score: float) -> None:
        # NlpArtifacts.__init__ is not called: it would compute what is lazy here.
        self.tokens = doc
        self.entities = entities
        self.nlp_engine = nlp_engine
        self.scores = [score] * len(entities)

    @cached_property
    def tokens_indices(self) -> list[int]:  # type: ignore[override]
        return [token.idx for token in self.tokens]

    @cached_property
    def lemmas(self) -> list[str]:  # type: ignore[override]
        return [token.lower_ for token in self.tokens]

    @cached_property
    def keywords(self) -> list[str]:  # type: ignore[override]
        keywords: list[str] = self.set_keywords(self.nlp_engine, self.lemmas, LANGUAGE)
        return keywords


class ContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context enhancer, handed only the results whose recognizer has context words.

    The stock one deep-copies every result before it looks at any, and leaves those of a recognizer
    without context words (the validated and contextual detectors, spaCy's entities) as they were: the
    copies cost more than the rest of the enhancement. The ones it is handed copy themselves field by
    field (``_CopiedCheaply``) instead of through a generic deep copy. Results keep their order.
    """

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        with_context = {r.id for r in recognizers if r.context}
        key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        chosen = [
            i
            for i, r in enumerate(raw_results)
            if r.recognition_metadata and r.recognition_metadata.get(key) in with_context
        ]
        if not chosen:
            return list(raw_results)
        enhanced = super().enhance_using_context(
            text, [_CopiedCheaply.of(raw_results[i]) for i in chosen], nlp_artifacts, recognizers, context
        )
        results = list(raw_results)
        for i, result in zip(chosen, enhanced, strict=True):
            results[i] = result
        return results


class _CopiedCheaply(RecognizerResult):
    """A result whose deep copy is a copy of its fields, its explanation and its metadata: all the
    mutable state a result has (the explanation's fields and the metadata's values are numbers, strings
    and None), so the copy is as independent as ``copy.deepcopy``'s. The enhancer writes the score and
    the explanation."""

    @classmethod
    def of(cls, result: RecognizerResult) -> _CopiedCheaply:
        cheap = cls.__new__(cls)
        cheap.__dict__.update(result.__dict__)
        return cheap

    def __deepcopy__(self, memo: dict[int, Any]) -> RecognizerResult:
        copied = RecognizerResult.__new__(RecognizerResult)
        copied.__dict__.update(self.__dict__)
        if self.analysis_explanation is not None:
            copied.analysis_explanation = copy.copy(self.analysis_explanation)
        if self.recognition_metadata is not None:
            copied.recognition_metadata = dict(self.recognition_metadata)
        return copied


class QuickPatterns(PatternRecognizer):
    """Mixed in front of a pattern recognizer whose results come only from its patterns: it first asks
    whether any pattern occurs in the text at all.

    Presidio's pattern pass costs 5-60 us on a text it cannot match (a timestamp and a debug record per
    pattern, then the results' bookkeeping); a search per pattern costs a microsecond or two, and most
    texts match none of the recognizers asked (the patterns for a person after a title or a greeting
    are asked on every text). Where no pattern matches, the recognizer would return nothing.
    """

    quick: tuple[regex.Pattern[str], ...] = ()

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        # flags of the call's own would compile the patterns differently
        if regex_flags is None and not any(pattern.search(text) is not None for pattern in self.quick):
            return []
        return super().analyze(text, entities, nlp_artifacts, regex_flags)


def finds_only_its_patterns(recognizer: EntityRecognizer) -> bool:
    """A Presidio pattern recognizer whose ``analyze`` is the stock one: its results are matches of its
    patterns. (A subclass that overrides it, like the IBAN recognizer, may find more.)"""
    return isinstance(recognizer, PatternRecognizer) and (
        isinstance(recognizer, QuickPatterns) or type(recognizer).analyze is PatternRecognizer.analyze
    )


def patterns_of(recognizer: PatternRecognizer) -> tuple[regex.Pattern[str], ...]:
    """The recognizer's patterns compiled as ``PatternRecognizer.analyze`` compiles them (the ``regex``
    module, the recognizer's flags), once: a quick recognizer keeps them."""
    if isinstance(recognizer, QuickPatterns) and recognizer.quick:
        return recognizer.quick
    patterns: list[Pattern] = getattr(recognizer, "patterns")  # noqa: B009 (untyped in Presidio)
    flags = recognizer.global_regex_flags or 0
    return tuple(regex.compile(pattern.regex, flags=flags) for pattern in patterns)


@cache
def _quick_class(cls: type[PatternRecognizer]) -> type[QuickPatterns]:
    # the same name: Presidio names a recognizer (and its results' metadata) after its class
    return type(cls.__name__, (QuickPatterns, cls), {"__module__": cls.__module__})


def quick(recognizer: EntityRecognizer) -> EntityRecognizer:
    """``recognizer``, asking its patterns first if it finds only their matches; else unchanged."""
    if finds_only_its_patterns(recognizer) and not isinstance(recognizer, QuickPatterns):
        assert isinstance(recognizer, PatternRecognizer)
        recognizer.__class__ = _quick_class(type(recognizer))
        assert isinstance(recognizer, QuickPatterns)
        recognizer.quick = patterns_of(recognizer)
    return recognizer


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
        recognizers.append(quick(recognizer))
        if entry.min_score is not None:
            min_scores[recognizer.id] = entry.min_score
    if config.validated_detectors is not None:
        recognizers.append(ValidatedDetectorsRecognizer(config.validated_detectors.score))
    for pattern in config.patterns:
        flags = regex.DOTALL | regex.MULTILINE | (0 if pattern.case_sensitive else regex.IGNORECASE)
        source = expand_macros(pattern.regex, config.macros)
        recognizer = PatternRecognizer(
            supported_entity=pattern.entity,
            name=pattern.name,
            supported_language=LANGUAGE,
            patterns=[Pattern(pattern.name, source, pattern.score)],
            context=list(pattern.context),
            global_regex_flags=flags,
        )
        recognizers.append(quick(recognizer))
    return recognizers, min_scores


class FixedRegistry(RecognizerRegistry):
    """A registry that looks up the recognizers of each distinct request once.

    Presidio's lookup tests every recognizer against every requested entity on every ``analyze`` call
    (about 90 us for the default entities). The engine does not change its recognizers once built; a
    lookup is keyed on their number all the same, so one added or removed later is not missed.
    """

    _MAX_REQUESTS = 4096  # distinct entity lists are few (subsets the gates leave); bounded all the same

    def __init__(self, recognizers: list[EntityRecognizer]) -> None:
        super().__init__(recognizers=recognizers, supported_languages=[LANGUAGE])
        self._requests: dict[tuple[int, str, tuple[str, ...]], list[EntityRecognizer]] = {}

    def get_recognizers(
        self,
        language: str,
        entities: list[str] | None = None,
        all_fields: bool = False,
        ad_hoc_recognizers: list[EntityRecognizer] | None = None,
    ) -> list[EntityRecognizer]:
        if all_fields or entities is None or ad_hoc_recognizers:
            return super().get_recognizers(language, entities, all_fields, ad_hoc_recognizers)
        key = (sum(1 for _ in self.recognizers), language, tuple(entities))
        found = self._requests.get(key)
        if found is None:
            if len(self._requests) >= self._MAX_REQUESTS:
                self._requests.clear()
            found = self._requests[key] = super().get_recognizers(language, entities)
        return list(found)


class NerEntities:
    """spaCy's entities of a document as Presidio sees them: mapped labels, PERSON spans widened."""

    def __init__(self, config: DetectionConfig) -> None:
        self.labels = dict(config.ner.labels)
        self.widen_person = config.ner.widen_person
        # Capitalized words that border a name without being part of it ("Thanks", "Dear", "Hello").
        not_name = config.macros.get("NOT_NAME")
        self._not_name = regex.compile(not_name, regex.IGNORECASE) if not_name else None
        self._particles = config.record_aware.name_particles
        self._not_person = frozenset(word.casefold() for word in config.ner.not_person)

    def of(self, doc: Doc) -> list[SpacySpan]:
        spans: list[SpacySpan] = []
        for ent in doc.ents:
            label = self.labels.get(ent.label_)
            if label is None:
                continue
            start, end = ent.start, ent.end
            if label == PERSON:
                if not self._plausible_person(doc, start, end):
                    continue
                if self.widen_person:
                    start, end = self._widen(doc, start, end)
            spans.append(SpacySpan(doc, start, end, label=label))
        return _drop_contained(spans)

    def _plausible_person(self, doc: Doc, start: int, end: int) -> bool:
        """Whether a PERSON entity of the model can be a name: the small model also tags ids
        ("Order MA-31245"), versions, weekdays in other languages and product names ("Wollen Z400")."""
        tokens = doc[start:end]
        if any(any(c.isdigit() for c in t.text) for t in tokens):
            return False
        if all(t.text.casefold() in self._not_person or not t.is_alpha for t in tokens):
            return False
        if start > 0 and doc[start - 1].lower_ in _DETERMINERS:
            return False  # "the Galaxy Tab", "my Pixel Buds": a thing
        if len(tokens) == 1 and tokens[0].text.islower():
            return False  # a lone lower-case word; lower-case names are found by record or context
        # A model code within three words after it ("Vert océan foncé Race R000"): a product's name.
        return not any(_MODEL_CODE.fullmatch(t.text) for t in doc[end : end + 4])

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


def _inside_id(text: str, start: int, end: int) -> bool:
    before = start >= 2 and text[start - 1] in "-./_" and text[start - 2].isalnum()
    after = end + 1 < len(text) and text[end] in "-./_" and text[end + 1].isalnum()
    return before or after or (start > 0 and text[start - 1].isalnum())


_DATE = re.compile(r"(?:^|\D)(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?:\D|$)")
_DETERMINERS = frozenset(
    ["the", "a", "an", "this", "that", "these", "those", "my", "your", "our", "his", "her", "their", "its"]
)

# A product's model code right after a span ("Wollen Z400", "Galaxy S23"): the span names a product.
_MODEL_CODE = re.compile(r"[A-Z]{0,3}-?\d{2,5}[A-Za-z]{0,2}")


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
