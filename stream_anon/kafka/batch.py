"""A consumed batch and its offsets, and cutting a batch so that suspect records travel alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_anon.records import InputRecord, Outcome

SourceKey = tuple[str, int, int]  # topic, partition, offset
"""Which input record: an outcome's source, a failed write's origin."""


@dataclass(slots=True)
class Batch:
    records: list[InputRecord]
    # first offset per partition, to rewind to after an abort
    start: dict[tuple[str, int], int] = field(default_factory=dict)
    # next offset to commit per partition
    end: dict[tuple[str, int], int] = field(default_factory=dict)


def batch_of(records: list[InputRecord]) -> Batch:
    batch = Batch(records)
    for rec in records:
        tp = (rec.topic, rec.partition)
        batch.start.setdefault(tp, rec.offset)
        batch.end[tp] = rec.offset + 1
    return batch


def merge(batches: list[Batch]) -> Batch:
    """The batch that spans all of ``batches`` (for rewinding past several of them)."""
    return batch_of([r for b in batches for r in b.records])


def split_around(
    batch: Batch, outcomes: list[Outcome], suspects: set[SourceKey]
) -> list[tuple[Batch, list[Outcome]]]:
    """The batch as one segment, or cut so that each suspect record travels alone, in order: the
    records between suspects stay together, each with its own offsets to commit."""
    if not suspects or not any((r.topic, r.partition, r.offset) in suspects for r in batch.records):
        return [(batch, outcomes)]
    segments: list[tuple[Batch, list[Outcome]]] = []
    run: list[int] = []
    for i, rec in enumerate(batch.records):
        if (rec.topic, rec.partition, rec.offset) in suspects:
            if run:
                segments.append((batch_of([batch.records[j] for j in run]), [outcomes[j] for j in run]))
                run = []
            segments.append((batch_of([rec]), [outcomes[i]]))
        else:
            run.append(i)
    if run:
        segments.append((batch_of([batch.records[j] for j in run]), [outcomes[j] for j in run]))
    return segments
