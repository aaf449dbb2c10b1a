"""Free-text PII detection for the ``scan`` operation and the audit, a batch at a time.

``Scanner.detect_batch`` finds PII spans in a batch of texts: Presidio's analyzer (its pattern
recognizers, ours from ``recognizers.yaml``, the verifier's validated detectors, spaCy's named
entities) and record-aware detection (the raw values of each text's own record), all on the text
normalized (``text.normalize``), with spans mapped back to the text as written. ``spans.replace_spans``
writes the sanitized text. What makes it fast, in order of effect:

* spaCy runs only its ``ner`` component (the small English model's NER has its own token vectors, so
  the tagger, parser, lemmatizer and shared ``tok2vec`` are dead weight), over the batch with ``pipe``,
  and once per distinct text of a batch;
* Presidio runs only the recognizers a text can feed (``gates``): no email recognizer without an ``@``
  or a spelled "at", no phone or card recognizer without a run of seven digits, no national id without
  three digits in a row, none at all for a text that holds no candidate; its phone
  recognizer runs on the windows around runs of digits, not once per region over the whole text;
* texts without a word (numbers, emoji, empty) skip NER: the model tags lower-case names too, so
  capitalization is no safe reason to skip it.

The model loads once per process, on first use, and is shared by every ``Scanner`` with that model.
Each batch runs inside a spaCy memory zone, so the strings of the texts (names, emails) do not
accumulate in the model's vocabulary of a long-running worker.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stream_anon.detection.config import DetectionConfig, load_config
from stream_anon.detection.gates import Gates, has_word
from stream_anon.detection.recognizers import (
    LANGUAGE,
    ContextEnhancer,
    DocArtifacts,
    FixedRegistry,
    NerEntities,
    build_recognizers,
)
from stream_anon.detection.record_aware import RecordAware
from stream_anon.detection.settings import (
    DEFAULT_ENTITIES,
    DEFAULT_MODEL,
    ScanSettings,
    check_threshold,
)
from stream_anon.detection.spans import ScanError, ScannerUnavailable, Span, resolve
from stream_anon.detection.text import Normalized, normalize

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from spacy.language import Language
    from spacy.tokens import Doc

__all__ = ["DEFAULT_ENTITIES", "DEFAULT_MODEL", "ScanError", "ScanSettings", "Scanner", "Span", "detect"]

# Texts longer than this are analyzed in pieces cut at whitespace (spaCy refuses a million characters,
# and its memory grows with the document).
MAX_PIECE = 50_000


class Scanner:
    """Detects PII in batches of free text; the model loads on the first batch."""

    def __init__(self, settings: ScanSettings | None = None) -> None:
        self.settings = settings if settings is not None else ScanSettings()
        _require_installed(self.settings.model)
        _require_modules()
        self._engine: _Engine | None = None

    @property
    def engine(self) -> _Engine:
        if self._engine is None:
            self._engine = engine_for(self.settings.model)
        return self._engine

    @property
    def supported_entities(self) -> frozenset[str]:
        """Entities some recognizer finds; others are found only as known values of the record."""
        return self.engine.supported_entities

    def detect_batch(
        self,
        texts: Sequence[str],
        known: Sequence[Sequence[tuple[str, str]]],
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
    ) -> list[list[Span]]:
        """PII spans of each text, sorted and without overlaps.

        ``known[i]`` are the ``(entity, raw value)`` pairs of the ``"pii"`` fields of the record that
        ``texts[i]`` comes from; they are searched whatever ``entities`` says (they are that record's
        PII by declaration, and the leak verifier searches them too). ``entities`` and ``threshold``
        default to the settings'.
        """
        if len(known) != len(texts):
            raise ScanError(f"known has {len(known)} entries for {len(texts)} texts")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ScanError(f"text {index} is a {type(text).__name__}, not a string")
        wanted = self.settings.entities if entities is None else frozenset(entities)
        cutoff = self.settings.threshold if threshold is None else check_threshold(threshold)
        if not texts:
            return []
        normalized = [normalize(text) for text in texts]
        try:
            found = self.engine.analyze(
                [n.text for n in normalized], wanted, cutoff, self.settings.batch_size
            )
        except ImportError as exc:
            # A package that cannot be imported fails every text alike: no record's fault
            raise ScannerUnavailable(
                f"the free-text scanner cannot run ({type(exc).__name__}: {exc}); "
                "reinstall stream-anon with its dependencies"
            ) from exc
        record_aware = self.engine.record_aware
        for index, (norm, pairs) in enumerate(zip(normalized, known, strict=True)):
            if pairs:
                found[index].extend(
                    Span(start, end, entity, record_aware.config.score)
                    for start, end, entity in record_aware.find(norm.text, pairs)
                )
        return [resolve(_in_original(norm, spans)) for norm, spans in zip(normalized, found, strict=True)]


def detect(
    texts: Sequence[str],
    *,
    entities: frozenset[str] | None = None,
    threshold: float | None = None,
    settings: ScanSettings | None = None,
) -> list[list[Span]]:
    """Detection alone over arbitrary strings, without record context (the topic audit)."""
    return scanner_for(settings).detect_batch(
        texts, [()] * len(texts), entities=entities, threshold=threshold
    )


_SCANNERS: dict[ScanSettings, Scanner] = {}


def scanner_for(settings: ScanSettings | None = None) -> Scanner:
    """The process's scanner for ``settings`` (created once)."""
    settings = settings if settings is not None else ScanSettings()
    scanner = _SCANNERS.get(settings)
    if scanner is None:
        scanner = _SCANNERS.setdefault(settings, Scanner(settings))
    return scanner


def _in_original(norm: Normalized, spans: list[Span]) -> list[Span]:
    """Spans found in the normalized text, as spans of the text as written."""
    if norm.starts is None:
        return spans
    mapped = []
    for span in spans:
        start, end = norm.span(span.start, span.end)
        mapped.append(Span(start, end, span.entity, span.score))
    return mapped


_RECOGNIZER_ID = "recognizer_identifier"  # RecognizerResult.RECOGNIZER_IDENTIFIER_KEY


class _Engine:
    """One loaded model and analyzer, shared by every scanner of the process that uses the model."""

    def __init__(self, model: str, config: DetectionConfig) -> None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine

        self.config = config
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": LANGUAGE, "model_name": model}],
                "ner_model_configuration": {"model_to_presidio_entity_mapping": dict(config.ner.labels)},
            }
        )
        nlp_engine = provider.create_engine()
        if not isinstance(nlp_engine, SpacyNlpEngine):
            raise ScanError(f"spaCy model {model!r} did not load as a spaCy engine")
        self.nlp_engine = nlp_engine
        self.nlp: Language = nlp_engine.get_nlp(LANGUAGE)
        _keep_only_ner(self.nlp, model)
        recognizers, self.min_scores = build_recognizers(config)
        self.analyzer: AnalyzerEngine = AnalyzerEngine(
            registry=FixedRegistry(recognizers),
            nlp_engine=self.nlp_engine,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=ContextEnhancer(),
        )
        self.supported_entities = frozenset(e for r in recognizers for e in r.supported_entities)
        self.gates = Gates(recognizers)
        self.ner_entities = config.ner_entities
        self.ner = NerEntities(config)
        self.record_aware = RecordAware(config.record_aware)
        self._lock = threading.Lock()

    def analyze(
        self, texts: Sequence[str], entities: frozenset[str], threshold: float, batch_size: int
    ) -> list[list[Span]]:
        """Analyzer spans of each text (not yet merged), at or above ``threshold``."""
        found: list[list[Span]] = [[] for _ in texts]
        wanted = sorted(entities & self.supported_entities)
        if not wanted:
            return found
        run_ner = not self.ner_entities.isdisjoint(wanted)
        pieces = list(_pieces(texts))
        with self._lock, self.nlp.memory_zone():
            docs = self._ner_docs([p for _, _, p in pieces], batch_size) if run_ner else {}
            by_text: dict[str, list[Span]] = {}
            for index, offset, piece in pieces:
                spans = by_text.get(piece)
                if spans is None:
                    try:
                        spans = self._analyze_one(piece, wanted, docs.get(piece), threshold)
                    except ImportError:
                        raise  # a broken installation, not this text: Scanner.detect_batch says so
                    except Exception as exc:  # a recognizer's message may quote the text
                        raise ScanError(f"text {index}: detection failed ({type(exc).__name__})") from None
                    by_text[piece] = spans
                found[index].extend(spans if offset == 0 else [_shift(s, offset) for s in spans])
        return found

    def _ner_docs(self, texts: list[str], batch_size: int) -> dict[str, Doc]:
        distinct = [t for t in dict.fromkeys(texts) if has_word(t)]
        return dict(zip(distinct, self.nlp.pipe(distinct, batch_size=batch_size), strict=True))

    def _analyze_one(self, text: str, wanted: list[str], doc: Doc | None, threshold: float) -> list[Span]:
        candidates = self.gates.candidates(text, wanted)
        if not candidates:
            return []
        if doc is None:
            doc = self.nlp.make_doc(text)
            entities = []
        else:
            entities = self.ner.of(doc)
        artifacts = DocArtifacts(doc, entities, self.nlp_engine, self.config.ner.score)
        results = self.analyzer.analyze(
            text, LANGUAGE, entities=candidates, nlp_artifacts=artifacts, score_threshold=0.0
        )
        spans = []
        for result in results:
            score = result.score
            if self.min_scores and result.recognition_metadata:
                floor = self.min_scores.get(result.recognition_metadata.get(_RECOGNIZER_ID, ""), 0.0)
                score = max(score, floor)
            if score >= threshold and result.end > result.start:
                spans.append(Span(result.start, result.end, result.entity_type, score))
        return spans


_ENGINES: dict[str, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(model: str) -> _Engine:
    """The process's engine for ``model``, loaded on first use (about 2 s for the small English model)."""
    engine = _ENGINES.get(model)
    if engine is None:
        with _ENGINES_LOCK:
            engine = _ENGINES.get(model)
            if engine is None:
                _require_installed(model)
                engine = _ENGINES[model] = _Engine(model, load_config())
    return engine


def _require_installed(model: str) -> None:
    # Presidio would download a missing model; a worker must not fetch anything at run time.
    try:
        installed = importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):  # "a.b" without a package "a", or a relative name
        installed = False
    if not installed:
        raise ScanError(
            f"spaCy model {model!r} is not installed (pip install the package that provides it; "
            "nothing is downloaded at run time)"
        )


# Imported only when a text needs them (the word list costs about 19 MB), so a missing one would
# otherwise show up as one failed text after another instead of at start-up.
_LAZY_MODULES = ("presidio_analyzer", "spacy", "phonenumbers", "tldextract", "wordfreq")


def _require_modules() -> None:
    missing = [m for m in _LAZY_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"missing package(s): {', '.join(missing)}")


def _keep_only_ner(nlp: Language, model: str) -> None:
    """Disable every component the ``ner`` component does not listen to."""
    if "ner" not in nlp.pipe_names:
        raise ScanError(f"spaCy model {model!r} has no ner component")
    needed = {"ner"}
    for name in nlp.pipe_names:
        listeners: Any = getattr(nlp.get_pipe(name), "listening_components", ())
        if "ner" in listeners:
            needed.add(name)
    for name in nlp.pipe_names:
        if name not in needed:
            nlp.disable_pipe(name)


def _pieces(texts: Sequence[str]) -> Iterator[tuple[int, int, str]]:
    """``(text index, offset, piece)``: each text, or a long one in pieces cut at whitespace."""
    for index, text in enumerate(texts):
        if len(text) <= MAX_PIECE:
            yield index, 0, text
            continue
        start = 0
        while start < len(text):
            end = min(start + MAX_PIECE, len(text))
            if end < len(text):
                cut = max(
                    text.rfind(" ", start + MAX_PIECE // 2, end),
                    text.rfind("\n", start + MAX_PIECE // 2, end),
                )
                end = cut + 1 if cut > 0 else end
            yield index, start, text[start:end]
            start = end


def _shift(span: Span, offset: int) -> Span:
    return Span(span.start + offset, span.end + offset, span.entity, span.score)
