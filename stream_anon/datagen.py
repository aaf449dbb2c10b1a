"""Realistic feedback records with planted PII, from a fixed seed (demo, tests, benchmark).

PII sits in the structured fields (name, email, phone, IP, device id) and, in some records, is typed
into the free-text comment too, the way users do ("call me at (415) 555-0132, Maria"). ``labelled``
returns what was planted in each comment, for recall measurements.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Wei",
    "Olga",
    "Carlos",
    "Priya",
    "Kenji",
    "Fatima",
    "Liam",
    "Sofia",
    "Mateo",
    "Chloé",
    "Jürgen",
    "Siobhan",
    "Thabo",
    "Ngozi",
    "Hiroshi",
    "Ana",
    "Dmitri",
    "Emma",
    "Noah",
    "Zainab",
    "Lars",
    "Giulia",
    "Mohammed",
    "Yuki",
    "Isabella",
    "Oluwaseun",
    "Søren",
]
LAST = [
    "Garcia",
    "Smith",
    "Khan",
    "Zhang",
    "Ivanova",
    "Rodriguez",
    "Patel",
    "Tanaka",
    "Haddad",
    "O'Brien",
    "Rossi",
    "Fernández",
    "Dubois",
    "Müller",
    "Murphy",
    "Nkosi",
    "Okafor",
    "Sato",
    "Silva",
    "Petrov",
    "Johnson",
    "Brown",
    "Ahmed",
    "Nilsen",
    "Bianchi",
    "Hassan",
    "Kobayashi",
    "Martinez",
    "Adeyemi",
    "Yılmaz",
]
DOMAINS = ["example.com", "mail.example.org", "inbox.example.net", "corp.example.co.uk", "example.de"]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "JP", "BR", "NG", "ZA", "ES", "IT", "SE"]
VERSIONS = ["3.12.1", "3.12.2", "3.13.0", "4.0.0-beta.2", "4.0.1"]
TAGS = ["checkout", "search", "login", "performance", "ui", "billing", "notifications", "sync"]
PLATFORMS = ["IOS", "ANDROID", "WEB"]

CLEAN_COMMENTS = [
    "The app crashes when I open the settings page after the update.",
    "Love the new dark mode, much easier on the eyes at night.",
    "Search results take forever to load on my phone.",
    "Checkout worked fine but the confirmation email never arrived.",
    "Please bring back the old layout, the new one is confusing.",
    "Sync between my tablet and laptop is broken since version 3.12.",
    "Five stars, the latest release fixed every issue I reported.",
    "Notifications arrive twice for every message.",
    "I can't find where to change my password anymore.",
    "Great support team, they solved my billing problem in a day.",
]
PII_TEMPLATES = [
    ("Please call me at {phone}, I'd like to explain the bug.", ("PHONE_NUMBER",)),
    ("Hi, this is {name}. The export button does nothing.", ("PERSON",)),
    ("Contact me at {email} if you need more details.", ("EMAIL_ADDRESS",)),
    ("{first} here, my account still shows the wrong plan.", ("PERSON",)),
    ("My colleague {other} has the same problem on her laptop.", ("PERSON_OTHER",)),
    ("Reach me on {phone} or {email}, thanks! - {first}", ("PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON")),
    ("The login fails from my office IP {ip}, please whitelist it.", ("IP_ADDRESS",)),
    ("Regards, {name}", ("PERSON",)),
    ("I was charged twice on card {card}, please refund.", ("CREDIT_CARD",)),
    ("thanks {first_lower}, the fix works now", ("PERSON",)),
]


@dataclass(frozen=True, slots=True)
class Planted:
    entity: str
    value: str


def _phone(rng: random.Random) -> str:
    area, mid, end = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    formats = [
        f"({area}) {mid}-{end:04d}",
        f"{area}-{mid}-{end:04d}",
        f"{area}.{mid}.{end:04d}",
        f"+1 {area} {mid} {end:04d}",
        f"+44 20 7{mid} {end:04d}",
        f"+49 30 {mid}{end:04d}",
        f"0049 30 {mid} {end:04d}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
    ]
    return rng.choice(formats)


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        first = rng.choice([203, 198, 192, 100, 81, 62])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"2001:db8:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def _card(rng: random.Random) -> str:
    digits = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d2 = d * 2 if i % 2 == 0 else d
        total += d2 - 9 if d2 > 9 else d2
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def _ascii(text: str) -> str:
    table = str.maketrans("éüıøöñáçÿ'", "euioonacy-")
    return text.lower().translate(table).replace("-", "")


def labelled(n: int, seed: int = 7, schema_version: int = 1) -> list[tuple[dict[str, Any], list[Planted]]]:
    """``n`` records and, for each, the PII planted in its comment."""
    rng = random.Random(seed)
    out: list[tuple[dict[str, Any], list[Planted]]] = []
    base_time = 1_764_000_000_000
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
        phone = _phone(rng)
        ip = _ip(rng)
        planted: list[Planted] = []
        if rng.random() < 0.45:
            template, entities = rng.choice(PII_TEMPLATES)
            other = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            card = _card(rng)
            values = {
                "phone": phone,
                "name": name,
                "email": email,
                "first": first,
                "other": other,
                "ip": ip,
                "card": card,
                "first_lower": first.lower(),
            }
            comment = template.format(**values)
            for entity in entities:
                if entity == "PERSON":
                    value = name if "{name}" in template else first
                    planted.append(
                        Planted("PERSON", value if "{first_lower}" not in template else first.lower())
                    )
                elif entity == "PERSON_OTHER":
                    planted.append(Planted("PERSON", other))
                else:
                    key = {
                        "PHONE_NUMBER": "phone",
                        "EMAIL_ADDRESS": "email",
                        "IP_ADDRESS": "ip",
                        "CREDIT_CARD": "card",
                    }[entity]
                    planted.append(Planted(entity, values[key]))
            if rng.random() < 0.5:
                comment = rng.choice(CLEAN_COMMENTS) + " " + comment
        else:
            comment = rng.choice(CLEAN_COMMENTS)
        record: dict[str, Any] = {
            "feedback_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_time": base_time + i * 1_000 + rng.randint(0, 999),
            "user": {
                "user_id": f"u-{rng.randint(1, max(10, n // 3)):07d}",
                "name": name,
                "email": email if rng.random() < 0.9 else None,
                "phone": phone if rng.random() < 0.7 else None,
                "age": rng.randint(14, 90) if rng.random() < 0.8 else None,
                "signup_date": base_time - rng.randint(1, 1000) * 86_400_000,
            },
            "ip_address": ip,
            "device_id": f"dev-{rng.getrandbits(64):016x}",
            "country": rng.choice(COUNTRIES),
            "postal_code": f"{rng.randint(10000, 99999)}" if rng.random() < 0.8 else None,
            "geo": {"lat": rng.uniform(-60, 70), "lon": rng.uniform(-180, 180)}
            if rng.random() < 0.6
            else None,
            "rating": rng.randint(1, 5),
            "session_minutes": round(rng.uniform(0.5, 90), 2),
            "app_version": rng.choice(VERSIONS),
            "platform": rng.choice(PLATFORMS),
            "comment": comment if rng.random() < 0.95 else None,
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "attributes": {
                "theme": rng.choice(["dark", "light"]),
                "locale_hint": rng.choice(["en", "de", "fr"]),
            },
        }
        if record["comment"] is None:
            planted = []
        if schema_version >= 2:
            record["locale"] = rng.choice(["en-US", "de-DE", "fr-FR", None])
        out.append((record, planted))
    return out


def generate_feedback(n: int, seed: int = 7, schema_version: int = 1) -> list[dict[str, Any]]:
    """``n`` feedback records matching ``schemas/feedback.avsc`` (or ``feedback-v2.avsc``)."""
    return [record for record, _ in labelled(n, seed, schema_version)]
