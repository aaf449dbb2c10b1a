"""How the pipeline treats the registry's answers about a derived schema (no Kafka, no registry here: the
registry's real answers are tested in tests/broker/test_registry_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kafkatools import Framer

from stream_anon import pipeline as pipeline_module
from stream_anon.app import CompileOnlyScanner
from stream_anon.keys import Keys
from stream_anon.pipeline import Pipeline
from stream_anon.records import DeadLetter, InputRecord, Reason, Sanitized
from stream_anon.registry import DerivedSchemaRejected, RegistryUnavailable
from stream_anon.rules import compile_plan
from stream_anon.schemas import DirectorySchemas, SchemaResolver
from stream_anon.verify import Verifier

SCHEMA = {
    "type": "record",
    "name": "Ticket",
    "namespace": "test.registry",
    "fields": [{"name": "id", "type": "string", "anon": "keep"}],
}


class Registry(SchemaResolver):
    """The directory for writer schemas; the derived schema's registration answers as scripted."""

    def __init__(self, directory: DirectorySchemas, answers: list[Exception | None]) -> None:
        super().__init__(directory, None)
        self.answers = answers
        self.asked = 0

    def derived_header(self, derived: dict[str, Any], topic: str) -> bytes:
        self.asked += 1
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return super().derived_header(derived, topic)


def pipeline_with(tmp_path: Path, answers: list[Exception | None]) -> tuple[Pipeline, Registry]:
    (tmp_path / "ticket.avsc").write_text(json.dumps(SCHEMA))
    resolver = Registry(DirectorySchemas(tmp_path), answers)
    keys = Keys.ephemeral()
    rejected: list[DerivedSchemaRejected] = []
    pipeline = Pipeline(
        resolver=resolver,
        compile_plan=lambda schema: compile_plan(schema, keys, scanner=CompileOnlyScanner()),
        verifier=Verifier(),
        output_topic="out",
        on_rejected=rejected.append,
    )
    return pipeline, resolver


def records(n: int) -> list[InputRecord]:
    framer = Framer(SCHEMA)
    return [InputRecord("raw", 0, i, 0, None, framer({"id": f"t{i}"})) for i in range(n)]


REFUSED = DerivedSchemaRejected("out-value", 409, "Incompatible artifact: reader type STRING not compatible")


def test_a_refused_derived_schema_dead_letters_with_the_subject_and_the_answer(tmp_path: Path) -> None:
    pipeline, _ = pipeline_with(tmp_path, [REFUSED])
    outcomes = pipeline.process(records(3))
    assert all(isinstance(o, DeadLetter) for o in outcomes)
    letter = outcomes[0]
    assert isinstance(letter, DeadLetter)
    assert letter.reason is Reason.DERIVED_SCHEMA_REJECTED
    assert letter.extra["stream-anon.registry.subject"] == "out-value"
    assert "Incompatible artifact" in letter.extra["stream-anon.registry.message"]


def test_a_refusal_is_kept_for_the_retry_interval(tmp_path: Path) -> None:
    pipeline, resolver = pipeline_with(tmp_path, [REFUSED])
    assert isinstance(pipeline.process(records(1))[0], DeadLetter)
    assert isinstance(pipeline.process(records(1))[0], DeadLetter)
    assert resolver.asked == 1, "not asked again within REGISTRY_RETRY_S"


def test_after_the_interval_the_registry_is_asked_again_and_a_change_of_mind_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_module, "REGISTRY_RETRY_S", 0.0)
    pipeline, resolver = pipeline_with(tmp_path, [REFUSED, None])
    assert isinstance(pipeline.process(records(1))[0], DeadLetter)
    # the operator fixed the subject: the next batch registers the derived schema and is sanitized
    assert all(isinstance(o, Sanitized) for o in pipeline.process(records(2)))
    assert resolver.asked == 2


def test_an_unavailable_registry_condemns_nothing(tmp_path: Path) -> None:
    pipeline, resolver = pipeline_with(tmp_path, [RegistryUnavailable("down")])
    with pytest.raises(RegistryUnavailable):
        pipeline.process(records(2))
    # the schema was not cached as broken: the retried batch is sanitized
    assert all(isinstance(o, Sanitized) for o in pipeline.process(records(2)))
    assert resolver.asked == 2
