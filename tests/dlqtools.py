"""Dead letters for unit tests: a sealing keys file, a dead letter of a record holding PII, and what the
summary and the replay read back from a record written with given headers."""

from __future__ import annotations

from stream_anon.dlq.letter import Letter, Place, Unreadable, parse_headers
from stream_anon.keys import Keys
from stream_anon.records import DeadLetter, InputRecord, Reason

RAW_KEY = b"customer-4711"
RAW_VALUE = b"\xc3\x01fingerprtJane Doe jane.doe@example.com +44 20 7946 0958"


def sealing_keys() -> Keys:
    return Keys.generate(["default"]).sealing_dead_letters_with("dlq")


def dead_letter(
    value: bytes | None = RAW_VALUE, key: bytes | None = RAW_KEY, offset: int = 7, replays: int = 0
) -> DeadLetter:
    source = InputRecord("raw", 2, offset, 1_700_000_000_000, key, value, replays)
    return DeadLetter(
        source, Reason.UNANNOTATED_FIELD, "SchemaRulesError", "1 problem(s) at phone", "fp:ab12"
    )


def read_back(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], place: Place | None = None
) -> Letter | Unreadable:
    """What the summary and the replay see of a record written with these headers."""
    return parse_headers(
        place or Place(0, 41, 1_700_000_001_000), {n: v.decode() for n, v in headers}, key, value
    )
