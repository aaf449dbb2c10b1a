"""The benchmark's data: generated feedback with planted PII, framed once, shared by every case.

Records come from ``stream_anon.datagen`` with a fixed seed, are written in Avro single-object encoding
with ``schemas/feedback.avsc`` (the fingerprint ignores annotations, so the structured-only schema of
case 3 reads the very same bytes), and are kept with what was planted in each comment for recall.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from stream_anon import datagen
from stream_anon.schema import strip_logical_types
from stream_anon.schemas import fingerprint
from stream_anon.wire import SINGLE_OBJECT_MAGIC, encode

REPO = Path(__file__).resolve().parent.parent
RAW_SCHEMA = REPO / "schemas" / "feedback.avsc"
STRUCTURED_SCHEMA = REPO / "bench" / "schemas" / "feedback-structured.avsc"
HEADER_BYTES = 10  # C3 01 + 8-byte fingerprint


@dataclass(frozen=True, slots=True)
class Planted:
    """One PII value typed into a record's comment."""

    entity: str
    value: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """Framed record values, their keys, and the PII planted in each comment (index-aligned)."""

    values: list[bytes]
    keys: list[bytes]
    comments: list[str | None]
    planted: list[list[Planted]]
    seed: int

    @property
    def mean_size(self) -> float:
        return sum(map(len, self.values)) / len(self.values)

    def head(self, n: int) -> Dataset:
        return Dataset(self.values[:n], self.keys[:n], self.comments[:n], self.planted[:n], self.seed)


def raw_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RAW_SCHEMA.read_text(encoding="utf-8"))
    return loaded


def _planted_of(record: dict[str, Any], truth: Any) -> list[Planted]:
    """Accept datagen's ground truth as objects with ``entity``/``value`` or with ``start``/``end`` spans."""
    found: list[Planted] = []
    comment = record.get("comment") or ""
    for item in truth or ():
        entity = getattr(item, "entity", None)
        value = getattr(item, "value", None)
        if value is None and hasattr(item, "start"):
            value = comment[item.start : item.end]
        if value is None and isinstance(item, tuple) and len(item) == 3:
            start, end, entity = item
            value = comment[start:end]
        if entity is not None and value:
            found.append(Planted(str(entity), str(value)))
    return found


def generate(n: int, seed: int) -> Dataset:
    schema = raw_schema()
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    header = SINGLE_OBJECT_MAGIC + fingerprint(schema)
    values: list[bytes] = []
    keys: list[bytes] = []
    comments: list[str | None] = []
    planted: list[list[Planted]] = []
    for record, truth in datagen.labelled(n, seed):
        values.append(encode(header, parsed, record))
        keys.append(str(record["user"]["user_id"]).encode())
        comments.append(record.get("comment"))
        planted.append(_planted_of(record, truth))
    return Dataset(values, keys, comments, planted, seed)


def save_values(dataset: Dataset, path: Path) -> None:
    """Length-prefixed key/value pairs, for the processes that produce them (paced load, warm-up)."""
    with path.open("wb") as out:
        for key, value in zip(dataset.keys, dataset.values, strict=True):
            out.write(struct.pack(">II", len(key), len(value)))
            out.write(key)
            out.write(value)


def load_values(path: Path, limit: int | None = None) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    with path.open("rb") as src:
        while limit is None or len(pairs) < limit:
            head = src.read(8)
            if len(head) < 8:
                break
            klen, vlen = struct.unpack(">II", head)
            pairs.append((src.read(klen), src.read(vlen)))
    return pairs


# -- recall -------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def caught(raw_comment: str, out_comment: str | None, value: str) -> bool:
    """Nothing of ``value`` is left: every word of it occurs in the output fewer times than in the input
    by at least its own count (a name also written elsewhere in the comment still has to go once)."""
    if out_comment is None:
        return True
    raw_words = Counter(_WORD.findall(raw_comment))
    out_words = Counter(_WORD.findall(out_comment))
    for word, count in Counter(_WORD.findall(value)).items():
        if out_words[word] > raw_words[word] - count:
            return False
    return True


@dataclass
class Recall:
    planted: Counter[str]
    caught: Counter[str]
    records: int

    @property
    def overall(self) -> float | None:
        total = sum(self.planted.values())
        return sum(self.caught.values()) / total if total else None

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "planted": sum(self.planted.values()),
            "caught": sum(self.caught.values()),
            "recall": self.overall,
            "by_entity": {
                e: {"planted": n, "caught": self.caught[e], "recall": self.caught[e] / n}
                for e, n in sorted(self.planted.items())
            },
        }


def recall(dataset: Dataset, outputs: dict[int, str | None]) -> Recall:
    """Recall of the planted comment PII over the records in ``outputs`` (index -> sanitized comment)."""
    planted: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    for index, out_comment in outputs.items():
        raw_comment = dataset.comments[index]
        for item in dataset.planted[index]:
            planted[item.entity] += 1
            if raw_comment is not None and caught(raw_comment, out_comment, item.value):
                hit[item.entity] += 1
    return Recall(planted, hit, len(outputs))
