"""Re-identification risk of a topic: k-anonymity and l-diversity over chosen quasi-identifiers.

``assess`` is a pure function over decoded records. Records are grouped into equivalence classes by
their quasi-identifier values (a missing or null value is a value of its own; values of different types
stay apart: 1, 1.0 and true are three values). k-anonymity is the number of distinct people in the
smallest class, people being told apart by a declared person field (without one, each record counts as
a person, which overstates k for anyone with several records); records in classes of fewer than ``k``
people are the ones an adversary who knows those attributes singles out among fewer than ``k`` people.
l-diversity counts the distinct values of a sensitive field within each class: a class with one value
discloses it for everyone in the class. A null or missing sensitive value is not a value (it discloses
nothing to learn), so it does not count toward l; a class whose sensitive values are all missing has l 0.

``read_topic`` is the Kafka front: a bounded window of a topic from its beginning. The report holds
figures only, never a record's values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stream_anon.kafka.reader import TopicReader
from stream_anon.wire import WireError

# Fields whose path does not exist and null values share this marker, so they form a class of their own.
_MISSING = "\x00missing"


def field_value(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for name in path.split("."):
        if not isinstance(value, Mapping) or name not in value:
            return _MISSING
        value = value[name]
        if value is None:
            return _MISSING
    return value


def _class_value(value: Any) -> Any:
    """A value as a class key, its type kept: Python's 1 == 1.0 == True would merge three classes."""
    if value is _MISSING:
        return value
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, sort_keys=True, default=str))  # JSON keeps 1, 1.0, true apart
    return (type(value).__name__, value)


@dataclass(frozen=True, slots=True)
class RiskReport:
    records: int
    quasi_identifiers: list[str]
    classes: int
    k: int
    smallest_class: int
    classes_below_k: int
    records_below_k: int
    share_below_k: float
    unique_records: int  # records of a class of one person: re-identifiable from the quasi-identifiers
    person: str | None = None  # the field telling people apart; None: every record counts as a person
    people: int | None = None  # distinct people read (records without a person value count one each)
    sensitive: str | None = None
    l: int | None = None  # noqa: E741 - the name of the property
    smallest_l: int | None = None
    classes_below_l: int | None = None
    records_below_l: int | None = None
    share_below_l: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess(
    records: Iterable[Mapping[str, Any]],
    quasi_identifiers: Sequence[str],
    *,
    k: int = 5,
    sensitive: str | None = None,
    l: int = 2,  # noqa: E741
    person: str | None = None,
) -> RiskReport:
    """k-anonymity (and l-diversity when ``sensitive`` is given) of ``records``; k counts distinct
    values of ``person`` when given, else records."""
    if not quasi_identifiers:
        raise ValueError("at least one quasi-identifier is needed")
    if k < 1 or l < 1:
        raise ValueError("k and l must be at least 1")
    records_in: dict[tuple[Any, ...], int] = {}
    people_in: dict[tuple[Any, ...], set[Any]] = {}
    values: dict[tuple[Any, ...], set[Any]] = {}
    everyone: set[Any] = set()
    total = 0
    for record in records:
        total += 1
        key = tuple(_class_value(field_value(record, path)) for path in quasi_identifiers)
        records_in[key] = records_in.get(key, 0) + 1
        who = _class_value(field_value(record, person)) if person is not None else _MISSING
        if who is _MISSING:
            who = ("record", total)  # no person value: a person of its own (never merged)
        people_in.setdefault(key, set()).add(who)
        everyone.add(who)
        if sensitive is not None:
            distinct = values.setdefault(key, set())
            value = field_value(record, sensitive)
            if value is not _MISSING:
                distinct.add(_class_value(value))
    sizes = {key: len(people) for key, people in people_in.items()}
    below_k = [records_in[key] for key, size in sizes.items() if size < k]
    report = RiskReport(
        records=total,
        quasi_identifiers=list(quasi_identifiers),
        classes=len(sizes),
        k=k,
        smallest_class=min(sizes.values(), default=0),
        classes_below_k=len(below_k),
        records_below_k=sum(below_k),
        share_below_k=sum(below_k) / total if total else 0.0,
        unique_records=sum(records_in[key] for key, size in sizes.items() if size == 1),
        person=person,
        people=len(everyone) if person is not None else None,
    )
    if sensitive is None:
        return report
    below_l = [records_in[key] for key, distinct in values.items() if len(distinct) < l]
    return RiskReport(
        **{
            **report.as_dict(),
            "sensitive": sensitive,
            "l": l,
            "smallest_l": min((len(v) for v in values.values()), default=0),
            "classes_below_l": len(below_l),
            "records_below_l": sum(below_l),
            "share_below_l": sum(below_l) / total if total else 0.0,
        }
    )


def format_table(report: RiskReport, undecodable: int = 0) -> str:
    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.2f}%" if whole else "0.00%"

    n = report.records
    rows = [
        ("records read", f"{n}" + (f" ({undecodable} undecodable, not counted)" if undecodable else "")),
        ("quasi-identifiers", ", ".join(report.quasi_identifiers)),
        ("equivalence classes", str(report.classes)),
        (
            "people",
            f"{report.people} (by {report.person})"
            if report.person is not None
            else "not declared (--person): each record counts as a person, k may be overstated",
        ),
        ("k-anonymity (smallest class)", str(report.smallest_class)),
        (
            f"records in classes below k={report.k}",
            f"{report.records_below_k} ({share(report.records_below_k, n)}) "
            f"in {report.classes_below_k} classes",
        ),
        (
            "unique records (class of 1 person)",
            f"{report.unique_records} ({share(report.unique_records, n)})",
        ),
    ]
    if report.sensitive is not None:
        rows += [
            ("sensitive field", report.sensitive),
            ("l-diversity (smallest l)", str(report.smallest_l)),
            (
                f"records in classes below l={report.l}",
                f"{report.records_below_l} ({share(report.records_below_l or 0, n)}) "
                f"in {report.classes_below_l} classes",
            ),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


@dataclass(slots=True)
class TopicWindow:
    """How a bounded read of a topic went."""

    read: int = 0
    undecodable: int = 0


def read_topic(
    kafka: dict[str, Any],
    topic: str,
    decode: Callable[[bytes], dict[str, Any]],
    max_records: int,
    stats: TopicWindow,
    idle_timeout_s: float = 10.0,
) -> Iterator[dict[str, Any]]:
    """Decoded records of ``topic`` from the beginning up to ``max_records`` or the end offsets at start.

    Reads committed records only and commits nothing; raises ``TopicReadError`` (an ``OSError``) if
    the topic cannot be read.
    """
    with TopicReader(kafka, topic, purpose="risk", idle_timeout_s=idle_timeout_s) as reader:
        for message in reader:
            try:
                record = decode(message.value() or b"")
            except WireError:
                stats.undecodable += 1
            else:
                stats.read += 1
                yield record
            if stats.read + stats.undecodable >= max_records:
                return
