"""Issue 22: Avro features one at a time, each handled (outputs fit the derived schema) or refused by
``lint`` with the field path, never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from click.testing import CliRunner

from stream_anon.cli import main
from stream_anon.keys import Keys
from stream_anon.rules import SchemaRulesError, compile_plan
from stream_anon.rules.plan import RuleFailure

KEYS = Keys.generate()


def record_schema(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": list(fields), **extra}


def sanitized(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The record through the compiled plan, checked against the derived schema."""
    plan = compile_plan(schema, KEYS)
    (out,) = plan.apply_batch([record])
    assert not isinstance(out, RuleFailure), out
    assert fastavro.validation.validate(out, plan.parsed_derived)
    return out


def problems(schema: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(schema, KEYS)
    return [(p.path, p.code) for p in caught.value.problems]


USER = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS"},
        {"name": "country", "type": "string"},
    ],
}


# --- item 3: record-level anon.default ---------------------------------------------------------------


def test_a_record_default_of_keep_does_not_keep_a_nested_record_whole() -> None:
    # The nested record's unannotated PII field must meet the strict check, not ride along with keep.
    schema = record_schema(
        {"name": "id", "type": "string"}, {"name": "user", "type": USER}, **{"anon.default": "keep"}
    )
    assert problems(schema) == [("user.email", "unannotated_field"), ("user.country", "unannotated_field")]


def test_a_record_default_reaches_its_own_leaves_and_nested_records_use_their_own() -> None:
    user = {
        **USER,
        "anon.default": "keep",
        "fields": [{**USER["fields"][0], "anon": "hmac"}, USER["fields"][1]],
    }
    schema = record_schema(
        {"name": "id", "type": "string"},
        {"name": "users", "type": {"type": "array", "items": user}},
        **{"anon.default": "hmac"},
    )
    out = sanitized(schema, {"id": "a-1", "users": [{"email": "jo@example.com", "country": "DE"}]})
    assert out["id"].startswith("hm1.")
    assert out["users"][0]["email"].startswith("hm1.") and out["users"][0]["country"] == "DE"


@pytest.mark.parametrize("default", ["redact", "mask", "hmac", "tokenize", "drop"])
def test_any_record_default_compiles_or_is_refused_with_paths(default: str) -> None:
    schema = record_schema(
        {"name": "id", "type": "string"},
        {"name": "n", "type": "int"},
        {"name": "flag", "type": "boolean"},
        {"name": "user", "type": {**USER, "anon.default": "drop"}},
        **{"anon.default": default},
    )
    try:
        plan = compile_plan(schema, KEYS)
    except SchemaRulesError as exc:
        assert exc.problems and all(p.path in {"id", "n", "flag"} for p in exc.problems)
        return
    (out,) = plan.apply_batch(
        [{"id": "a", "n": 1, "flag": True, "user": {"email": "j@x.io", "country": "DE"}}]
    )
    assert not isinstance(out, RuleFailure)
    assert fastavro.validation.validate(out, plan.parsed_derived)


# --- item 4: named records used twice, recursive types -------------------------------------------------

ANNOTATED_USER = {
    **USER,
    "fields": [{**USER["fields"][0], "anon": "hmac"}, {**USER["fields"][1], "anon": "keep"}],
}


def test_a_named_record_kept_after_an_annotated_use_is_refused_with_its_path() -> None:
    schema = record_schema(
        {"name": "author", "type": ANNOTATED_USER}, {"name": "reviewer", "type": "t.User", "anon": "keep"}
    )
    assert problems(schema) == [("reviewer", "invalid_rule")]


def test_a_named_record_kept_first_and_annotated_later_is_refused_not_a_traceback() -> None:
    # Before: fastavro's "redefined named type" traceback from the derived schema.
    schema = record_schema(
        {"name": "reviewer", "type": USER, "anon": "keep"}, {"name": "author", "type": "t.User"}
    )
    assert problems(schema) == [("author", "invalid_rule")]


def test_a_named_record_kept_twice_is_defined_once() -> None:
    schema = record_schema(
        {"name": "a", "type": USER, "anon": "keep"}, {"name": "b", "type": "t.User", "anon": "keep"}
    )
    user = {"email": "j@x.io", "country": "DE"}
    assert sanitized(schema, {"a": user, "b": user}) == {"a": user, "b": user}


NODE = {
    "type": "record",
    "name": "Node",
    "namespace": "t",
    "fields": [
        {"name": "label", "type": "string", "pii": "PERSON", "anon": "hmac"},
        {"name": "next", "type": ["null", "Node"], "anon": "keep"},
    ],
}


def test_a_recursive_type_kept_inside_its_anonymized_self_is_refused_with_its_path() -> None:
    assert problems(NODE) == [("next", "invalid_rule")]


def test_a_recursive_type_kept_inside_an_unchanged_self_is_handled() -> None:
    schema = {**NODE, "fields": [{**NODE["fields"][0], "anon": "keep"}, NODE["fields"][1]]}
    record = {"label": "a", "next": {"label": "b", "next": None}}
    assert sanitized(schema, record) == record


def test_a_recursive_type_annotated_field_by_field_is_refused_with_a_clear_message() -> None:
    schema = {**NODE, "fields": [NODE["fields"][0], {"name": "next", "type": ["null", "Node"]}]}
    with pytest.raises(SchemaRulesError, match="contains itself") as caught:
        compile_plan(schema, KEYS)
    assert [p.path for p in caught.value.problems] == ["next"]


# --- item 5: the leak check grows linearly with a record's values -------------------------------------------

MAILING = record_schema(
    {
        "name": "recipients",
        "type": {"type": "array", "items": "string"},
        "pii": "EMAIL_ADDRESS",
        "anon": "hmac",
    },
    {"name": "notes", "type": {"type": "array", "items": "string"}, "anon": "keep"},
)


def calls_to_check_a_leaky_mailing(count: int) -> int:
    """Python function calls the verifier makes on one record of ``count`` addresses, each also copied
    into a kept array: a count of work, the same on every machine (no timing)."""
    import sys

    from stream_anon.verify import Verifier

    plan = compile_plan(MAILING, KEYS)
    emails = [f"user{i}.name@example{i % 97}.com" for i in range(count)]
    raw = {"recipients": emails, "notes": ["sent"]}
    (out,) = plan.apply_batch([raw])
    assert isinstance(out, dict)
    leaky = {**out, "notes": list(emails)}
    verifier = Verifier()
    verifier.check(plan, raw, dict(leaky))  # compiles the walker and screen once, outside the count
    calls = 0

    def count_calls(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count_calls)
    try:
        result = verifier.check(plan, raw, dict(leaky))
    finally:
        sys.setprofile(None)
    assert result.leaks and {leak.path for leak in result.leaks} == {"notes[]"}
    return calls


def test_the_leak_check_does_linear_work_in_the_number_of_pii_values() -> None:
    # Before: every value found was searched for in every string, values x strings calls (the issue's
    # 100,000 addresses took 103 s). Twice the values must cost about twice the calls, not four times.
    small, large = calls_to_check_a_leaky_mailing(200), calls_to_check_a_leaky_mailing(400)
    assert large <= 2.3 * small, (small, large)


# --- item 6: bytes ----------------------------------------------------------------------------------------


def test_the_verifier_finds_the_records_own_email_in_a_kept_bytes_field() -> None:
    from stream_anon.verify import Leak, Verifier

    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "blob", "type": "bytes", "anon": "keep"},
        {"name": "maybe", "type": ["null", "bytes"], "anon": "keep"},
    )
    plan = compile_plan(schema, KEYS)
    raw = {"email": "Jo.Doe@Example.com", "blob": b"\xff\x00 contact jo.doe@example.com", "maybe": b"ok"}
    (out,) = plan.apply_batch([dict(raw)])
    assert isinstance(out, dict)
    assert Verifier().check(plan, raw, dict(out)).leaks == [Leak("EMAIL_ADDRESS", "blob")]
    redacted = Verifier("redact").check(plan, raw, dict(out)).record
    assert redacted["blob"] == b"\xff\x00 contact <EMAIL_ADDRESS>"
    assert fastavro.validation.validate(redacted, plan.parsed_derived)
    clean = {**out, "blob": b"\x00\x01binary", "maybe": b"see ann@example.org"}
    assert Verifier().check(plan, raw, clean).leaks == [Leak("EMAIL_ADDRESS", "maybe")]


EMAIL = "jo.doe@example.com"  # 18 bytes of UTF-8
EMAIL_FIXED = {"type": "fixed", "name": "Contact", "size": len(EMAIL)}


def verified(schema: dict[str, Any], raw: dict[str, Any], on_leak: str = "dead_letter") -> Any:
    """The record through the plan and the verifier, as the worker runs them."""
    from stream_anon.verify import Verifier

    plan = compile_plan(schema, KEYS)
    (out,) = plan.apply_batch([copy.deepcopy(raw)])
    assert isinstance(out, dict), out
    result = Verifier(on_leak).check(plan, raw, out)  # type: ignore[arg-type]
    return plan, result


@pytest.mark.parametrize(
    ("written", "value", "pii", "path"),
    [
        (EMAIL_FIXED, EMAIL.encode(), EMAIL, "kept"),
        (["null", EMAIL_FIXED], EMAIL.encode(), EMAIL, "kept"),
        ({"type": "array", "items": EMAIL_FIXED}, [b"\x00" * len(EMAIL), EMAIL.encode()], EMAIL, "kept[]"),
        ({"type": "map", "values": EMAIL_FIXED}, {"k": EMAIL.encode()}, EMAIL, "kept{}"),
        ({**EMAIL_FIXED, "logicalType": "decimal", "precision": 40}, EMAIL.encode(), EMAIL, "kept"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 40}, EMAIL.encode(), EMAIL, "kept"),
        (
            {"type": "fixed", "name": "Wait", "size": 12, "logicalType": "duration"},
            b"jo@exam.com ",
            "jo@exam.com",
            "kept",
        ),
    ],
    ids=[
        "fixed",
        "[null, fixed]",
        "array<fixed>",
        "map<fixed>",
        "decimal-fixed",
        "decimal-bytes",
        "duration",
    ],
)
def test_the_verifier_reads_kept_fixed_and_decimal_and_duration_values_as_text(
    written: Any, value: Any, pii: str, path: str
) -> None:
    # The worker and file mode read a decimal, a duration or a fixed as its bytes: the record's own
    # address in them is caught as it is in a bytes field, and redacting keeps a fixed value's size.
    from stream_anon.verify import Leak

    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "kept", "type": written, "anon": "keep"},
    )
    raw = {"email": pii, "kept": value}
    _, result = verified(schema, raw)
    assert result.leaks == [Leak("EMAIL_ADDRESS", path)]
    plan, redacted = verified(schema, raw, "redact")
    assert fastavro.validation.validate(redacted.record, plan.parsed_derived)
    assert pii.encode() not in repr(redacted.record["kept"]).encode()


def test_a_fixed_value_redacted_keeps_its_size() -> None:
    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "short", "type": EMAIL_FIXED, "anon": "keep"},
        {"name": "long", "type": {"type": "fixed", "name": "Long", "size": 40}, "anon": "keep"},
    )
    raw = {"email": EMAIL, "short": EMAIL.encode(), "long": (EMAIL + " " * 22).encode()}
    plan, result = verified(schema, raw, "redact")
    # "<EMAIL_ADDRESS>" is 15 bytes: padded with zero bytes to 18, or followed by the value's rest in 40.
    assert result.record["short"] == b"<EMAIL_ADDRESS>\x00\x00\x00"
    assert result.record["long"] == b"<EMAIL_ADDRESS>" + b" " * 22 + b"\x00\x00\x00"
    assert fastavro.validation.validate(result.record, plan.parsed_derived)


def test_binary_fixed_values_and_decimals_are_not_leaks() -> None:
    from decimal import Decimal

    from stream_anon.verify import Verifier

    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 4}, "anon": "keep"},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            "anon": "keep",
        },
    )
    raw = {"email": EMAIL, "code": b"\xff\x00\x12\x34", "price": b"\x04\xd2"}
    assert verified(schema, raw)[1].leaks == []
    # A reader that applies logical types gives the decimal as a number: numbers are not read.
    plan = compile_plan(schema, KEYS)
    decoded = {"email": "hm1.x", "code": b"\xff\x00\x12\x34", "price": Decimal("12.34")}
    assert Verifier().check(plan, raw, decoded).leaks == []


def test_a_pii_bytes_fields_value_is_searched_for_elsewhere() -> None:
    from stream_anon.verify import Leak

    schema = record_schema(
        {"name": "name", "type": "bytes", "pii": "PERSON", "anon": "hmac"},
        {"name": "note", "type": "string", "anon": "keep"},
    )
    # No detector finds a name: only the record's own value, read from its bytes, does.
    raw = {"name": b"Zebulon Quartermaine", "note": "signed: zebulon quartermaine"}
    assert verified(schema, raw)[1].leaks == [Leak("PERSON", "note")]


def test_bytes_inside_a_recursive_type_are_read_as_text() -> None:
    from stream_anon.verify import Leak

    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "blob", "type": "bytes", "anon": "keep"},
            {"name": "next", "type": ["null", "Node"], "anon": "keep"},
        ],
    }
    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "chain", "type": node, "anon": "keep"},
    )
    raw = {"email": EMAIL, "chain": {"blob": b"x", "next": {"blob": EMAIL.encode(), "next": None}}}
    plan, result = verified(schema, raw)
    assert result.leaks == [Leak("EMAIL_ADDRESS", "chain.next.blob")]
    plan, redacted = verified(schema, raw, "redact")
    assert redacted.record["chain"]["next"]["blob"] != EMAIL.encode()
    assert fastavro.validation.validate(redacted.record, plan.parsed_derived)


def test_the_worker_and_file_mode_dead_letter_a_kept_fixed_holding_the_records_email(tmp_path: Path) -> None:
    from kafkatools import Framer

    from stream_anon.app import CompileOnlyScanner
    from stream_anon.pipeline import Pipeline
    from stream_anon.records import DeadLetter, InputRecord, Reason
    from stream_anon.schemas import DirectorySchemas, SchemaResolver
    from stream_anon.verify import Verifier

    schema = record_schema(
        {"name": "email", "type": "string", "pii": "EMAIL_ADDRESS", "anon": "hmac"},
        {"name": "kept", "type": EMAIL_FIXED, "anon": "keep"},
    )
    raw = {"email": EMAIL, "kept": EMAIL.upper().encode()}
    (tmp_path / "s.avsc").write_text(json.dumps(schema))
    pipeline = Pipeline(
        resolver=SchemaResolver(DirectorySchemas(tmp_path), None),
        compile_plan=lambda s: compile_plan(s, KEYS, scanner=CompileOnlyScanner()),
        verifier=Verifier(),
        output_topic="out",
    )
    (outcome,) = pipeline.process([InputRecord("raw", 0, 0, 0, None, Framer(schema)(raw))])
    assert isinstance(outcome, DeadLetter) and outcome.reason is Reason.LEAK_DETECTED
    assert outcome.extra.get("stream-anon.leak.path") == "kept"
    keys = tmp_path / "keys.json"
    KEYS.save(keys)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"email": EMAIL, "kept": EMAIL.upper()}) + "\n")
    dlq = tmp_path / "dlq.jsonl"
    schema_file = str(tmp_path / "s.avsc")
    args = [
        "anonymize",
        "--schema",
        schema_file,
        "--keys",
        str(keys),
        "--input",
        str(data),
        "--dlq",
        str(dlq),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert [json.loads(line)["reason"] for line in dlq.read_text().splitlines()] == ["leak_detected"]


# --- item 8 -------------------------------------------------------------------------------------------

TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def test_date_shift_with_a_subject_that_names_no_field_is_refused_with_its_path() -> None:
    shift = {"op": "generalize", "method": "date_shift", "subject": "user.id"}
    schema = record_schema(
        {"name": "user_id", "type": "string", "anon": "hmac"},
        {"name": "at", "type": TIMESTAMP, "anon": shift},
    )
    assert problems(schema) == [("at", "invalid_rule")]
    fixed = record_schema(
        {"name": "user_id", "type": "string", "anon": "hmac"},
        {"name": "at", "type": TIMESTAMP, "anon": {**shift, "subject": "user_id"}},
    )
    assert sanitized(fixed, {"user_id": "u-1", "at": 1_700_000_000_000})["at"] != 1_700_000_000_000


@pytest.mark.parametrize("op", ["mask", "redact", "tokenize"])
def test_an_anonymized_uuid_is_a_plain_string_in_the_derived_schema(op: str) -> None:
    schema = record_schema({"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "anon": op})
    plan = compile_plan(schema, KEYS)
    assert plan.derived_schema["fields"][0]["type"] == "string"
    (out,) = plan.apply_batch([{"id": "5f0c2a9e-61b8-4c1e-9d3f-0a7b6c5d4e3f"}])
    assert roundtrips(out, plan.derived_schema)


DATE = {"type": "int", "logicalType": "date"}


@pytest.mark.parametrize(("unit", "expected"), [("month", "1984-07-01"), ("year", "1984-01-01")])
def test_a_date_of_birth_is_generalized_to_its_month_or_year(unit: str, expected: str) -> None:
    from datetime import date

    born = (date(1984, 7, 19) - date(1970, 1, 1)).days
    schema = record_schema(
        {"name": "born", "type": DATE, "anon": {"op": "generalize", "method": "time", "unit": unit}}
    )
    out = sanitized(schema, {"born": born})
    assert date(1970, 1, 1).fromordinal(date(1970, 1, 1).toordinal() + out["born"]).isoformat() == expected


def test_a_time_of_day_is_generalized_to_its_hour_and_a_date_refuses_hours() -> None:
    time_of_day = {"type": "int", "logicalType": "time-millis"}
    spec = {"op": "generalize", "method": "time", "unit": "hour"}
    assert (
        sanitized(record_schema({"name": "t", "type": time_of_day, "anon": spec}), {"t": 37_800_123})["t"]
        == 36_000_000
    )
    assert problems(record_schema({"name": "born", "type": DATE, "anon": spec})) == [("born", "invalid_rule")]


def roundtrips(record: dict[str, Any], derived: dict[str, Any]) -> bool:
    """Written and read back with the derived schema, logical types included (as a consumer reads it)."""
    import io

    parsed = fastavro.parse_schema(copy.deepcopy(derived))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    try:
        fastavro.schemaless_reader(buffer, parsed)
    except (ValueError, TypeError):
        return False
    return True


def write_schemas(folder: Path) -> tuple[Path, Path, Path]:
    # One schema that crashed lint before (kept first, annotated later: "redefined named type"), one
    # with a plain problem, one good: lint reports the first two and checks the third.
    kept_first = record_schema(
        {"name": "reviewer", "type": USER, "anon": "keep"}, {"name": "author", "type": "t.User"}
    )
    unannotated = record_schema({"name": "email", "type": "string"})
    good = record_schema({"name": "email", "type": "string", "anon": "hmac"})
    paths = folder / "a_kept_first.avsc", folder / "b_unannotated.avsc", folder / "c_good.avsc"
    for path, schema in zip(paths, (kept_first, unannotated, good), strict=True):
        path.write_text(json.dumps(schema))
    return paths


def test_lint_on_a_folder_reports_every_schema(tmp_path: Path) -> None:
    kept_first, unannotated, _good = write_schemas(tmp_path)
    result = CliRunner().invoke(main, ["lint", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert f"{kept_first}: author: invalid_rule:" in result.output
    assert f"{unannotated}: email: unannotated_field:" in result.output
    assert "3 schema(s), 2 problem(s)" in result.output


def test_a_compiler_bug_on_one_schema_is_reported_and_lint_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_anon.cli import rules as cli_rules

    _kept_first, unannotated, _good = write_schemas(tmp_path)
    real = cli_rules.compile_plan

    def crashing(schema: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if schema["fields"][0]["name"] == "reviewer":
            raise KeyError("boom")
        return real(schema, *args, **kwargs)

    monkeypatch.setattr(cli_rules, "compile_plan", crashing)
    result = CliRunner().invoke(main, ["lint", str(tmp_path)])
    assert result.exit_code == 1
    assert "internal_error: KeyError" in result.output and f"{unannotated}: email:" in result.output


def test_schemas_derive_answers_with_lints_messages(tmp_path: Path) -> None:
    kept_first, _unannotated, good = write_schemas(tmp_path)
    result = CliRunner().invoke(main, ["schemas", "derive", str(kept_first)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{kept_first}: author: invalid_rule: record t.User is also used at reviewer" in result.output
    derived = CliRunner().invoke(main, ["schemas", "derive", str(good)])
    assert derived.exit_code == 0 and json.loads(derived.output)["fields"][0]["type"] == "string"
    catalog = CliRunner().invoke(main, ["catalog", str(kept_first)])
    assert catalog.exit_code == 1 and f"{kept_first}: author: invalid_rule:" in catalog.output


# --- every Avro type and logical type against every operation --------------------------------------------

# (column name, written type, a decoded value as the worker sees it: logical types are read as their base)
ISO = "2024-03-15T10:30:00+00:00"  # a string every string operation takes, generalize time included
TYPES: list[tuple[str, Any, Any]] = [
    ("null", "null", None),
    ("boolean", "boolean", True),
    ("int", "int", 7),
    ("long", "long", 7),
    ("float", "float", 1.5),
    ("double", "double", 1.5),
    ("bytes", "bytes", b"jo@example.com"),
    ("string", "string", ISO),
    ("enum", {"type": "enum", "name": "E", "symbols": ["A", "B"]}, "A"),
    ("fixed", {"type": "fixed", "name": "F", "size": 4}, b"abcd"),
    ("array<string>", {"type": "array", "items": "string"}, [ISO]),
    ("map<string>", {"type": "map", "values": "string"}, {"k": ISO}),
    ("array<enum>", {"type": "array", "items": {"type": "enum", "name": "E", "symbols": ["A"]}}, ["A"]),
    ("map<enum>", {"type": "map", "values": {"type": "enum", "name": "E", "symbols": ["A"]}}, {"k": "A"}),
    ("[null, enum]", ["null", {"type": "enum", "name": "E", "symbols": ["A"]}], "A"),
    ("[null, string]", ["null", "string"], ISO),
    ("[string, long]", ["string", "long"], 7),
    ("record", {"type": "record", "name": "In", "fields": [{"name": "a", "type": "string"}]}, {"a": "x"}),
    ("decimal (bytes)", {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}, b"\x01"),
    (
        "decimal (fixed)",
        {"type": "fixed", "name": "D", "size": 4, "logicalType": "decimal", "precision": 5, "scale": 2},
        b"\x00\x00\x00\x01",
    ),
    ("uuid", {"type": "string", "logicalType": "uuid"}, "5f0c2a9e-61b8-4c1e-9d3f-0a7b6c5d4e3f"),
    ("date", {"type": "int", "logicalType": "date"}, 19000),
    ("time-millis", {"type": "int", "logicalType": "time-millis"}, 3_600_000),
    ("time-micros", {"type": "long", "logicalType": "time-micros"}, 3_600_000_000),
    ("timestamp-millis", {"type": "long", "logicalType": "timestamp-millis"}, 1_700_000_000_000),
    ("timestamp-micros", {"type": "long", "logicalType": "timestamp-micros"}, 1_700_000_000_000_000),
    ("local-timestamp-millis", {"type": "long", "logicalType": "local-timestamp-millis"}, 1_700_000_000_000),
    (
        "local-timestamp-micros",
        {"type": "long", "logicalType": "local-timestamp-micros"},
        1_700_000_000_000_000,
    ),
    ("duration", {"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}, b"\x00" * 12),
    # Avro 1.12's logical types (fastavro reads them as their base values)
    ("big-decimal", {"type": "bytes", "logicalType": "big-decimal"}, b"\x01\x02"),
    ("timestamp-nanos", {"type": "long", "logicalType": "timestamp-nanos"}, 1_700_000_000_000_000_000),
    (
        "local-timestamp-nanos",
        {"type": "long", "logicalType": "local-timestamp-nanos"},
        1_700_000_000_000_000_000,
    ),
]

OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("keep", {"op": "keep"}),
    ("drop", {"op": "drop"}),
    ("redact", {"op": "redact"}),
    ("mask", {"op": "mask"}),
    ("hmac", {"op": "hmac"}),
    ("tokenize", {"op": "tokenize"}),
    ("generalize time", {"op": "generalize", "method": "time", "unit": "hour"}),
    ("generalize time (year)", {"op": "generalize", "method": "time", "unit": "year"}),
    ("generalize bucket", {"op": "generalize", "method": "bucket", "width": 10}),
    ("generalize round", {"op": "generalize", "method": "round", "decimals": 1}),
    ("generalize prefix", {"op": "generalize", "method": "prefix", "length": 3}),
    ("generalize ip_prefix", {"op": "generalize", "method": "ip_prefix"}),
    ("generalize date_shift", {"op": "generalize", "method": "date_shift", "subject": "subject"}),
    ("noise", {"op": "noise", "epsilon": 1.0, "bounds": [0, 100]}),
    ("scan", {"op": "scan"}),
]
IP = "203.0.113.7"  # the string value ip_prefix is given instead of ISO


class NoSpans:
    """A scanner that finds nothing: the table asks which types ``scan`` takes, not what it detects."""

    def detect_batch(
        self, texts: Any, known: Any, *, entities: Any = None, threshold: Any = None
    ) -> list[list[Any]]:
        return [[] for _ in texts]


def _with_ip(value: Any) -> Any:
    if value == ISO:
        return IP
    if isinstance(value, list):
        return [_with_ip(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_ip(v) for k, v in value.items()}
    return value


def outcome(written: Any, value: Any, spec: dict[str, Any]) -> str:
    """``yes`` (compiles, and the output fits the derived schema, logical types included), ``refused``
    (by the compiler, with the field's path); anything else is a bug the table test reports."""
    # ``subject`` is the field date_shift keys its shift by; every other operation ignores it
    schema = record_schema(
        {"name": "f", "type": written, "anon": spec}, {"name": "subject", "type": "string", "anon": "keep"}
    )
    if spec.get("method") == "ip_prefix":
        value = _with_ip(value)
    try:
        plan = compile_plan(schema, KEYS, scanner=NoSpans())
    except SchemaRulesError as exc:
        assert all(p.path.startswith("f") for p in exc.problems), exc.problems
        return "refused"
    (out,) = plan.apply_batch([{"f": value, "subject": "user-1"}])
    if isinstance(out, RuleFailure):
        return f"fails per record: {out}"
    if not fastavro.validation.validate(out, plan.parsed_derived, raise_errors=False) or not roundtrips(
        out, plan.derived_schema
    ):
        return f"output does not fit: {out!r}"
    return "yes"


def support_table() -> str:
    lines = [
        "| type | " + " | ".join(name for name, _ in OPERATIONS) + " |",
        "|---|" + "---|" * len(OPERATIONS),
    ]
    for type_name, written, value in TYPES:
        cells = [outcome(written, value, spec) for _, spec in OPERATIONS]
        lines.append(f"| {type_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLE_START, TABLE_END = (
    "<!-- support table: tests/unit/test_avro_spec.py -->",
    "<!-- end of support table -->",
)


def test_every_type_and_logical_type_is_handled_or_refused_as_docs_annotations_md_says() -> None:
    table = support_table()
    assert "fails" not in table and "does not fit" not in table, table
    docs = (Path(__file__).resolve().parents[2] / "docs" / "annotations.md").read_text()
    documented = docs.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert documented == table, "docs/annotations.md is out of date: python tests/unit/test_avro_spec.py"


if __name__ == "__main__":
    print(support_table())


# --- items 1 and 2 through the commands -----------------------------------------------------------------


def test_redact_on_enum_and_fixed_and_hmac_on_enums_in_containers_pass_lint_derive_and_catalog(
    tmp_path: Path,
) -> None:
    enum = {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}
    schema = record_schema(
        {"name": "tier", "type": enum, "anon": "redact"},
        {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 4}, "anon": "redact"},
        {
            "name": "price",
            "type": {"type": "fixed", "name": "Price", "size": 4, "logicalType": "decimal", "precision": 6},
            "anon": "redact",
        },
        {
            "name": "wait",
            "type": {"type": "fixed", "name": "Wait", "size": 12, "logicalType": "duration"},
            "anon": "redact",
        },
        {"name": "tiers", "type": {"type": "array", "items": "Tier"}, "anon": "hmac"},
        {"name": "by_site", "type": {"type": "map", "values": "Tier"}, "anon": "hmac"},
        {"name": "maybe", "type": ["null", "Tier"], "anon": "hmac"},
    )
    path = tmp_path / "enums.avsc"
    path.write_text(json.dumps(schema))
    runner = CliRunner()
    assert runner.invoke(main, ["lint", str(path)]).exit_code == 0
    derived = runner.invoke(main, ["schemas", "derive", str(path)])
    assert derived.exit_code == 0
    catalog = runner.invoke(main, ["catalog", str(path)])
    assert catalog.exit_code == 0
    assert (
        "| `tier` | Tier |  | redact |" in catalog.output
        and "| `by_site{}` | Tier |  | hmac | string |" in catalog.output
    )
    plan = compile_plan(schema, KEYS)
    record = {
        "tier": "GOLD",
        "code": b"abcd",
        "price": b"\x00\x00\x04\xd2",
        "wait": b"\x00" * 12,
        "tiers": ["GOLD", "SILVER"],
        "by_site": {"a": "SILVER"},
        "maybe": "GOLD",
    }
    (out,) = plan.apply_batch([record])
    assert isinstance(out, dict) and roundtrips(out, json.loads(derived.output))
    assert all(
        isinstance(v, str) and v.startswith("hm1.")
        for v in [*out["tiers"], *out["by_site"].values(), out["maybe"]]
    )
