"""Context enhancement as the scanner does it finds what Presidio's stock enhancer finds.

The scanner hands Presidio's enhancer only the results of recognizers with context words, copied
field by field (``ContextEnhancer``), with NLP artifacts whose token lists and keywords are made when
first read (``DocArtifacts``). Whatever the analyzer finds in a text, with the same recognizers, is the
same with the stock enhancer and the stock artifacts: the same spans, scores, explanations (the context
word that raised a score) and metadata, in the same order; and the recognizers' own results are left as
they were.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from presidio_analyzer import AnalyzerEngine, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.tokens import Doc

from stream_anon.detection.recognizers import LANGUAGE, ContextEnhancer, DocArtifacts
from stream_anon.detection.scanner import DEFAULT_MODEL, engine_for

ENGINE = engine_for(DEFAULT_MODEL)
EVERY_ENTITY = sorted(ENGINE.supported_entities)
STOCK = AnalyzerEngine(
    registry=ENGINE.analyzer.registry,
    nlp_engine=ENGINE.nlp_engine,
    supported_languages=[LANGUAGE],
    context_aware_enhancer=LemmaContextAwareEnhancer(),
)

VALUES = [
    "078-05-1120", "+44 20 7946 0958", "(555) 010-4477", "4111 1111 1111 1111", "192.168.0.1",
    "DE89 3704 0044 0532 0130 00", "ann@example.com", "123 456 782", "2234 56789 1", "S1234567D",
    "943 476 5919", "Dr. Anna Smith", "my colleague anna smith",
]  # fmt: skip
WORDS = [
    "phone", "call me", "mobile", "email", "mail", "card", "credit", "visa", "ssn", "social security",
    "iban", "bank", "ip", "address", "tax", "medicare", "id", "number", "the", "app", "is", "my", "and",
]  # fmt: skip
texts = st.lists(st.sampled_from(VALUES + WORDS), min_size=1, max_size=10).map(" ".join)


def _described(results: list[RecognizerResult]) -> list[tuple[Any, ...]]:
    return [
        (
            r.entity_type,
            r.start,
            r.end,
            r.score,
            None if r.analysis_explanation is None else dict(vars(r.analysis_explanation)),
            None if r.recognition_metadata is None else dict(r.recognition_metadata),
        )
        for r in results
    ]


def _stock_artifacts(text: str, doc: Doc | None = None) -> NlpArtifacts:
    doc = ENGINE.nlp.make_doc(text) if doc is None else doc
    return NlpArtifacts(
        entities=[],
        tokens=doc,
        tokens_indices=[token.idx for token in doc],
        lemmas=[token.lower_ for token in doc],
        nlp_engine=ENGINE.nlp_engine,
        language=LANGUAGE,
    )


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_scanner_enhances_what_the_stock_enhancer_enhances(text: str) -> None:
    ours = ENGINE.analyzer.analyze(
        text,
        LANGUAGE,
        entities=EVERY_ENTITY,
        nlp_artifacts=DocArtifacts(ENGINE.nlp.make_doc(text), [], ENGINE.nlp_engine, 0.85),
        score_threshold=0.0,
        return_decision_process=True,  # keeps the explanations
    )
    stock = STOCK.analyze(
        text,
        LANGUAGE,
        entities=EVERY_ENTITY,
        nlp_artifacts=_stock_artifacts(text),
        score_threshold=0.0,
        return_decision_process=True,
    )
    assert _described(ours) == _described(stock)


def test_a_context_word_raises_a_score_and_the_raw_result_is_left_as_it_was() -> None:
    # without this the property above could hold with no enhancement at all
    text = "my sin 123 456 782"
    artifacts = DocArtifacts(ENGINE.nlp.make_doc(text), [], ENGINE.nlp_engine, 0.85)
    recognizers = ENGINE.analyzer.registry.get_recognizers(LANGUAGE, entities=["CA_SIN"])
    (sin,) = [r for r in recognizers if r.context]
    raw = sin.analyze(text, ["CA_SIN"], artifacts)
    for result in raw:
        result.recognition_metadata = {
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: sin.id,
            RecognizerResult.RECOGNIZER_NAME_KEY: sin.name,
        }
    before = _described(raw)
    (enhanced,) = ContextEnhancer().enhance_using_context(text, raw, artifacts, recognizers)
    assert _described(raw) == before
    assert enhanced.score > raw[0].score
    assert enhanced.analysis_explanation is not None
    assert enhanced.analysis_explanation.supportive_context_word == "sin"


def test_the_lazy_artifacts_hold_every_attribute_of_presidio_s_with_the_same_values() -> None:
    # DocArtifacts does not run NlpArtifacts.__init__: an attribute a later Presidio adds there would
    # be missing, and this says so
    text = "Call Anna at 943 476 5919, she is the owner."
    doc = ENGINE.nlp.make_doc(text)
    stock = _stock_artifacts(text, doc)
    ours = DocArtifacts(doc, [], ENGINE.nlp_engine, 0.85)
    for name, value in vars(stock).items():
        assert getattr(ours, name) == value, name
    assert stock.keywords  # the comparison compared something
