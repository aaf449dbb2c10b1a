"""Spans of detected PII, the one scanner protocol, and the one way a text's spans are replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Mode = Literal["tag", "hmac", "remove"]


class ScanError(ValueError):
    """Detection cannot run as asked: a bad setting or argument. Messages never contain text."""


class ScannerUnavailable(RuntimeError):
    """The NLP stack cannot load (a missing package or model). No record is at fault, so no record may
    be dead-lettered for it: the worker stops, naming the cause, and its input stays uncommitted."""


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` holds an ``entity`` (Presidio's names), detected with ``score`` in [0, 1]."""

    start: int
    end: int
    entity: str
    score: float = 1.0


class TextScanner(Protocol):
    """Detection over a batch of texts: what the scan op, the audit and the assembly depend on.

    ``known[i]`` are the ``(entity, raw value)`` pairs of the ``"pii"`` fields of the record that
    ``texts[i]`` comes from. Each text's spans come back sorted and without overlaps.
    """

    def detect_batch(
        self,
        texts: Sequence[str],
        known: Sequence[Sequence[tuple[str, str]]],
        *,
        entities: frozenset[str] | None = None,
        threshold: float | None = None,
    ) -> list[list[Span]]: ...


def replace_spans(
    text: str,
    spans: Sequence[Span],
    mode: Mode = "tag",
    pseudonym: Callable[[str, str], str] | None = None,
) -> str:
    """``text`` with each span replaced: ``<ENTITY>`` (tag), ``pseudonym(entity, span text)`` (hmac),
    or nothing (remove). Overlapping spans are merged first; the longer one names the entity."""
    if mode not in ("tag", "hmac", "remove"):
        raise ScanError(f"unknown replacement mode {mode!r}: tag, hmac or remove")
    if mode == "hmac" and pseudonym is None:
        raise ScanError("replacement mode hmac needs a pseudonym function")
    for span in spans:
        if not 0 <= span.start < span.end <= len(text):
            raise ScanError(f"span {span.start}..{span.end} does not fit a text of {len(text)} characters")
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for span in resolve(list(spans)):
        pieces.append(text[position : span.start])
        if mode == "tag":
            pieces.append(f"<{span.entity}>")
        elif mode == "hmac":
            assert pseudonym is not None
            pieces.append(pseudonym(span.entity, text[span.start : span.end]))
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


def resolve(spans: list[Span]) -> list[Span]:
    """Sorted spans with overlapping ones merged into their union, named by the longest (then surest)."""
    if len(spans) < 2:
        return spans
    spans.sort(key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    group = [spans[0]]
    end = spans[0].end
    for span in spans[1:]:
        if span.start < end:
            group.append(span)
            end = max(end, span.end)
            continue
        merged.append(_union(group, end))
        group, end = [span], span.end
    merged.append(_union(group, end))
    return merged


def _union(group: list[Span], end: int) -> Span:
    if len(group) == 1:
        return group[0]
    best = max(group, key=lambda s: (s.end - s.start, s.score))
    return Span(group[0].start, end, best.entity, max(s.score for s in group))
