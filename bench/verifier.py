"""Cost of the in-line verifier per record, on generated feedback-like records.

    .venv/bin/python -m bench.verifier [--records 20000]
    .venv/bin/python -m bench.verifier --scaling 1000 10000 100000

Prints microseconds per record for clean records (the common case) and for records with a leak.
``--scaling`` instead times one record holding N e-mail addresses (an array of ``"pii"`` strings under
``hmac``, through the compiled plan) for each N: the plan's apply and the verifier's check, clean and
with every address leaked into a kept array, in CPU time (best of ``--repeats``), with the ratio to the
row above, so the growth with the number of values shows.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import fastavro

from stream_anon.verify import Verifier

DERIVED = {
    "type": "record",
    "name": "Feedback",
    "namespace": "bench",
    "fields": [
        {"name": "feedback_id", "type": "string"},
        {"name": "created_at", "type": "long"},
        {"name": "rating", "type": "int"},
        {"name": "locale", "type": "string"},
        {"name": "product_sku", "type": "string"},
        {"name": "app_version", "type": "string"},
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "User",
                "fields": [
                    {"name": "user_token", "type": "string"},
                    {"name": "email", "type": "string"},
                    {"name": "name", "type": "string"},
                    {"name": "phone", "type": ["null", "string"]},
                    {"name": "country", "type": "string"},
                ],
            },
        },
        {"name": "ip", "type": "string"},
        {"name": "comment", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
    ],
}
GENERATED = frozenset({"user.user_token", "user.email", "user.name", "user.phone", "ip"})
_TEXT = (
    "the app crashes when I open settings and the sync takes forever after update but support was "
    "helpful and quick checkout works fine on my phone dark mode please more filters love it"
)
WORDS = _TEXT.split()


@dataclass
class FakePlan:
    parsed_derived: Any = field(default_factory=lambda: fastavro.parse_schema(DERIVED))
    generated_paths: frozenset[str] = GENERATED
    pii_getters: None = None  # lists its values only (pii_values), does not say where it reads them

    def pii_values(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        user = record["user"]
        values = [
            ("EMAIL_ADDRESS", "user.email", user["email"]),
            ("PERSON", "user.name", user["name"]),
            ("IP_ADDRESS", "ip", record["ip"]),
        ]
        if user["phone"] is not None:
            values.append(("PHONE_NUMBER", "user.phone", user["phone"]))
        return values


def _token(rng: random.Random) -> str:
    return "tok_" + "".join(rng.choices("0123456789abcdef", k=24))


def make_pair(
    rng: random.Random, leak: bool, words_min: int = 12, words_max: int = 40
) -> tuple[dict[str, Any], dict[str, Any]]:
    first = rng.choice(["Anna", "Jonas", "Maria", "Wei", "Fatima", "Lucas"])
    last = rng.choice(["Schmidt", "Garcia", "Okafor", "Nguyen", "Rossi"])
    email = f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com"
    phone = f"+49 151 {rng.randint(1000000, 9999999)}"
    ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    words = rng.choices(WORDS, k=rng.randint(words_min, words_max))
    # Numbers that are not PII, as feedback carries them: order ids, dates, ratings, versions.
    if rng.random() < 0.3:
        date = f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        words.insert(rng.randrange(len(words)), f"order ORD-{rng.randint(10000, 99999)} on {date}")
    if rng.random() < 0.3:
        version = f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        words.insert(rng.randrange(len(words)), f"{rng.randint(1, 5)}/5 stars {version}")
    comment = " ".join(words)
    raw = {
        "feedback_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "created_at": 1_700_000_000_000,
        "rating": rng.randint(1, 5),
        "locale": "de-DE",
        "product_sku": "SKU-" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8)),
        "app_version": f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        "user": {
            "user_token": "",
            "email": email,
            "name": f"{first} {last}",
            "phone": phone,
            "country": "DE",
        },
        "ip": ip,
        "comment": comment,
        "tags": rng.sample(["ios", "android", "web", "billing", "sync", "ui"], k=2),
        "attrs": {"channel": "app", "campaign": "spring"},
    }
    sanitized = {
        **raw,
        "user": {
            "user_token": _token(rng),
            "email": _token(rng),
            "name": _token(rng),
            "phone": "*** *** ****" + phone[-2:],
            "country": "DE",
        },
        "ip": ip.rsplit(".", 1)[0] + ".0/24",
        "comment": comment + (f" write me at {email}" if leak else ""),
        "tags": list(raw["tags"]),
        "attrs": dict(raw["attrs"]),
    }
    return raw, sanitized


def measure(verifier: Verifier, plan: FakePlan, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> float:
    start = time.perf_counter()
    for raw, sanitized in pairs:
        verifier.check(plan, raw, sanitized)
    return (time.perf_counter() - start) / len(pairs) * 1e6


SCALING_SCHEMA = {
    "type": "record",
    "name": "Mailing",
    "namespace": "bench",
    "fields": [
        {
            "name": "recipients",
            "type": {"type": "array", "items": "string"},
            "pii": "EMAIL_ADDRESS",
            "anon": {"op": "hmac"},
        },
        {"name": "notes", "type": {"type": "array", "items": "string"}, "anon": "keep"},
    ],
}


def scaling(counts: list[int], repeats: int) -> None:
    # Imported here: the default mode times the verifier alone, without the rule engine.
    from stream_anon.keys import Keys
    from stream_anon.rules import compile_plan

    plan = compile_plan(SCALING_SCHEMA, Keys.generate())
    verifier = Verifier("dead_letter")
    print(
        f"CPU milliseconds of this process, best of {repeats}, garbage collector off while timing "
        "(leaky: every address also in a kept array; x: against the row above; linear reference: a dict "
        "of the addresses casefolded, work linear by construction, so its x is what this machine gives "
        "linear work)"
    )
    print("values   apply ms   check clean ms      x   check leaky ms      x   linear reference ms      x")
    before: tuple[float, float, float] | None = None
    for count in counts:
        emails = [f"user{i}.name@example{i % 97}.com" for i in range(count)]
        raw = {"recipients": emails, "notes": ["sent"]}
        sanitized = plan.apply_batch([raw])[0]
        assert isinstance(sanitized, dict)
        leaky_record = {**sanitized, "notes": list(emails)}
        applied = _best_cpu(partial(plan.apply_batch, [raw]), repeats)
        clean = _best_cpu(partial(_check, verifier, plan, raw, sanitized, False), repeats)
        leaky = _best_cpu(partial(_check, verifier, plan, raw, leaky_record, True), repeats)
        linear = _best_cpu(partial(_linear_reference, emails), repeats)
        now = (clean, leaky, linear)
        grew = ["" if before is None else f"{a / b:.1f}" for a, b in zip(now, before or now, strict=True)]
        print(
            f"{count:>7}   {applied * 1e3:>8.1f}   {clean * 1e3:>14.1f}   {grew[0]:>4}"
            f"   {leaky * 1e3:>14.1f}   {grew[1]:>4}   {linear * 1e3:>19.2f}   {grew[2]:>4}"
        )
        before = now


def _linear_reference(values: list[str]) -> None:
    index = {value.casefold(): value for value in values}
    assert len(index) == len(values)


def _check(verifier: Verifier, plan: Any, raw: dict[str, Any], record: dict[str, Any], leaks: bool) -> None:
    # A copy each time: the full check may not change the record (dead_letter), but the walk is real.
    result = verifier.check(plan, raw, dict(record))
    assert result.clean is not leaks


def _best_cpu(work: Callable[[], object], repeats: int) -> float:
    """The least CPU time (``time.process_time``) of ``repeats`` runs of ``work``."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            work()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scaling", type=int, nargs="+", metavar="N", help="time one record of N values")
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--comment-words", type=int, nargs=2, default=(12, 40), metavar=("MIN", "MAX"))
    args = parser.parse_args()
    if args.scaling:
        scaling(args.scaling, args.repeats)
        return
    rng = random.Random(7)
    plan = FakePlan()
    verifier = Verifier("dead_letter")
    low, high = args.comment_words
    clean = [make_pair(rng, False, low, high) for _ in range(args.records)]
    leaky = [make_pair(rng, True, low, high) for _ in range(args.records // 10)]
    # The records are long-lived: keep the collector from rescanning them, as a worker's heap would not
    # hold them at all.
    gc.freeze()
    flagged = sum(1 for raw, san in clean if verifier.check(plan, raw, san).leaks)
    missed = sum(1 for raw, san in leaky if not verifier.check(plan, raw, san).leaks)
    for name, pairs in (("clean", clean), ("leaky", leaky)):
        runs = [measure(verifier, plan, pairs) for _ in range(args.repeats)]
        spread = f"min {min(runs):.1f}, max {max(runs):.1f}"
        print(f"{name}: median {statistics.median(runs):.1f} µs/record ({spread})")
    print(f"clean records flagged: {flagged}/{len(clean)}; leaky records missed: {missed}/{len(leaky)}")


if __name__ == "__main__":
    main()
