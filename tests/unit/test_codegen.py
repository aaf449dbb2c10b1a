"""Generated per-schema functions: names checked, source registered so tracebacks show it, dumpable."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from stream_anon.keys import Keys
from stream_anon.rules import compile_plan
from stream_anon.rules.plan import Ctx
from stream_anon.schema.codegen import DUMP_ENV, GeneratedCodeError, generate, literal, source_of


def test_a_traceback_through_generated_code_shows_its_line() -> None:
    def boom(value: object) -> None:
        raise RuntimeError("boom")

    fn = generate(
        "call", ["def call(value):", "    return boom(value)  # the generated line"], {"boom": boom}, "test"
    )
    with pytest.raises(RuntimeError) as caught:
        fn(1)
    shown = "".join(traceback.format_exception(caught.value))
    assert "return boom(value)  # the generated line" in shown
    assert "<generated test #" in shown


def test_names_that_are_not_identifiers_are_refused() -> None:
    with pytest.raises(GeneratedCodeError):
        generate("f", ["def f():", "    return 1"], {"not an identifier": 1}, "test")
    with pytest.raises(GeneratedCodeError):
        generate("class", ["def f():", "    return 1"], {}, "test")
    with pytest.raises(GeneratedCodeError):
        literal(3)  # type: ignore[arg-type]


def test_a_plans_record_function_source_is_kept_and_can_be_dumped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DUMP_ENV, str(tmp_path))
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "email", "type": "string", "anon": "redact"}],
    }
    plan = compile_plan(schema, Keys.generate())
    source = source_of(plan._apply)
    assert "out['email'] = f0(v0, ctx)" in source
    dumped = [p.read_text() for p in tmp_path.glob("*.py")]
    assert source in dumped
    assert plan._apply({"email": "x"}, Ctx({}, 0, [])) == {"email": "[REDACTED]"}
