"""The rule engine, specified by example: each operation, containers, strict mode, derived schemas."""

from __future__ import annotations

import copy
import json
import math
import statistics
from pathlib import Path
from typing import Any

import fastavro
import pytest
import structlog.testing

from stream_anon.keys import Keys
from stream_anon.rules import SchemaRulesError, TokenError, compile_plan, detokenize
from stream_anon.rules.plan import RuleFailure
from stream_anon.schema import strip_logical_types
from stream_anon.walk import compile_screen

REPO = Path(__file__).resolve().parents[2]
KEYS = Keys.generate()


def schema(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": list(fields), **extra}


def one(field: dict[str, Any], value: Any, keys: Keys = KEYS) -> Any:
    plan = compile_plan(schema(field), keys)
    (out,) = plan.apply_batch([{field["name"]: value}])
    assert not isinstance(out, RuleFailure), out
    return out.get(field["name"], "<dropped>")


def roundtrip_valid(plan: Any, record: dict[str, Any]) -> None:
    """The sanitized record encodes with the derived schema (what the worker writes)."""
    assert fastavro.validation.validate(record, plan.parsed_derived)


# --- operations -----------------------------------------------------------------------------------


def test_keep_and_drop() -> None:
    plan = compile_plan(
        schema({"name": "a", "type": "int", "anon": "keep"}, {"name": "b", "type": "string", "anon": "drop"}),
        KEYS,
    )
    assert plan.apply_batch([{"a": 1, "b": "secret"}]) == [{"a": 1}]
    assert [f["name"] for f in plan.derived_schema["fields"]] == ["a"]


@pytest.mark.parametrize(
    ("avro", "value", "expected", "derived"),
    [
        ("string", "jane", "[REDACTED]", "string"),
        ("int", 42, None, ["null", "int"]),
        ("double", 1.5, None, ["null", "double"]),
    ],
)
def test_redact_is_a_constant_for_strings_and_null_otherwise(
    avro: str, value: Any, expected: Any, derived: Any
) -> None:
    plan = compile_plan(schema({"name": "v", "type": avro, "anon": "redact"}), KEYS)
    assert plan.apply_batch([{"v": value}]) == [{"v": expected}]
    assert plan.derived_schema["fields"][0]["type"] == derived


def test_redact_with_a_replacement() -> None:
    assert one({"name": "v", "type": "string", "anon": {"op": "redact", "replacement": "***"}}, "x") == "***"


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"op": "mask", "keep_last": 4}, "4155550132", "******0132"),
        ({"op": "mask", "keep_first": 2, "keep_last": 0, "char": "#"}, "secret", "se####"),
        ({"op": "mask", "mode": "email"}, "jane.doe@example.com", "j*******@example.com"),
        ({"op": "mask", "keep_last": 4}, "abc", "***"),
    ],
)
def test_mask(spec: dict[str, Any], value: str, expected: str) -> None:
    assert one({"name": "v", "type": "string", "anon": spec}, value) == expected


def test_hmac_is_deterministic_keyed_and_normalized() -> None:
    field = {"name": "v", "type": "string", "anon": {"op": "hmac", "normalize": "lower"}}
    a, b = one(field, "Jane@Example.com"), one(field, " jane@example.com")
    assert a == b and a.startswith("hm1.default.1.")
    assert one(field, "jane@example.com", Keys.generate()) != a, "another key, another pseudonym"
    phone = {"name": "v", "type": "string", "anon": {"op": "hmac", "normalize": "digits"}}
    assert one(phone, "(415) 555-0132") == one(phone, "415.555.0132")


def test_hmac_key_rotation_names_the_version_and_old_versions_stay_readable() -> None:
    keys = Keys.generate()
    field = {"name": "v", "type": "string", "anon": "hmac"}
    before = one(field, "u-1", keys)
    keys = keys.rotate("default")  # a new Keys: the loaded one never changes under a running plan
    after = one(field, "u-1", keys)
    assert before.startswith("hm1.default.1.") and after.startswith("hm1.default.2.")
    assert before != after
    assert keys.versions("default") == [1, 2]


def test_tokenize_round_trip_and_tamper_rejection() -> None:
    token = one({"name": "v", "type": "string", "anon": "tokenize"}, "dev-00ff")
    assert token.startswith("tk1.default.1.")
    assert one({"name": "v", "type": "string", "anon": "tokenize"}, "dev-00ff") == token, "deterministic"
    assert detokenize(KEYS, token) == "dev-00ff"
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        detokenize(KEYS, tampered)
    with pytest.raises(TokenError):
        detokenize(Keys.generate(), token)


@pytest.mark.parametrize(
    ("spec", "avro", "value", "expected"),
    [
        ({"method": "ip_prefix"}, "string", "203.0.113.77", "203.0.113.0/24"),
        ({"method": "ip_prefix", "ipv4_prefix": 16}, "string", "203.0.113.77", "203.0.0.0/16"),
        ({"method": "ip_prefix"}, "string", "2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ({"method": "prefix", "length": 3}, "string", "94110", "941"),
        ({"method": "round", "decimals": 1}, "double", 37.7749, 37.8),
        ({"method": "bucket", "width": 10}, "int", 34, "30-39"),
        ({"method": "bucket", "width": 10, "min": 18, "max": 80}, "int", 15, "<18"),
        ({"method": "bucket", "width": 10, "min": 18, "max": 80}, "int", 85, "80+"),
        (
            {"method": "time", "unit": "hour"},
            {"type": "long", "logicalType": "timestamp-millis"},
            1_764_003_723_456,
            1_764_003_600_000,
        ),
        (
            {"method": "time", "unit": "month"},
            {"type": "long", "logicalType": "timestamp-millis"},
            1_764_003_723_456,
            1_761_955_200_000,
        ),
        (
            {"method": "time", "unit": "day"},
            "string",
            "2025-11-24T17:02:03+00:00",
            "2025-11-24T00:00:00+00:00",
        ),
    ],
)
def test_generalize(spec: dict[str, Any], avro: Any, value: Any, expected: Any) -> None:
    assert one({"name": "v", "type": avro, "anon": {"op": "generalize", **spec}}, value) == expected


def test_date_shift_is_the_same_for_one_subject_and_bounded() -> None:
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    plan = compile_plan(
        schema(
            {"name": "user", "type": "string", "anon": "hmac"},
            {
                "name": "t",
                "type": ts,
                "anon": {"op": "generalize", "method": "date_shift", "subject": "user", "max_days": 10},
            },
        ),
        KEYS,
    )
    day = 86_400_000
    out = plan.apply_batch([{"user": "a", "t": 0}, {"user": "a", "t": 5 * day}, {"user": "b", "t": 0}])
    shift_a = out[0]["t"]
    assert out[1]["t"] - 5 * day == shift_a, "one subject, one shift: intervals are preserved"
    assert shift_a % day == 0 and 0 < abs(shift_a) <= 10 * day
    shifts = {plan.apply_batch([{"user": f"u{i}", "t": 0}])[0]["t"] for i in range(50)}  # type: ignore[index]
    assert len(shifts) > 5, "different subjects get different shifts"


def test_noise_matches_its_epsilon() -> None:
    eps, lo, hi = 1.0, 0.0, 10.0
    plan = compile_plan(
        schema({"name": "v", "type": "double", "anon": {"op": "noise", "epsilon": eps, "bounds": [lo, hi]}}),
        KEYS,
    )
    n = 20_000
    out = [r["v"] - 5.0 for r in plan.apply_batch([{"v": 5.0}] * n)]  # type: ignore[index]
    scale = (hi - lo) / eps
    # Laplace(b): mean 0, mean absolute deviation b, variance 2b^2; tolerances ~5 standard errors
    assert abs(statistics.fmean(out)) < 5 * math.sqrt(2) * scale / math.sqrt(n)
    mad = statistics.fmean(abs(x) for x in out)
    assert abs(mad - scale) < 5 * scale / math.sqrt(n)
    assert abs(statistics.pvariance(out) - 2 * scale**2) < 0.1 * 2 * scale**2


def test_noise_on_integers_is_integer_and_clamps_first() -> None:
    plan = compile_plan(
        schema({"name": "v", "type": "int", "anon": {"op": "noise", "epsilon": 5.0, "bounds": [1, 5]}}), KEYS
    )
    out = [r["v"] for r in plan.apply_batch([{"v": 1000}] * 2000)]  # type: ignore[index]
    assert all(isinstance(v, int) for v in out)
    assert abs(statistics.fmean(out) - 5) < 0.2, "1000 is clamped to the upper bound 5 before noise"


# --- containers -------------------------------------------------------------------------------------


def test_nullable_arrays_maps_and_nested_records() -> None:
    s = schema(
        {
            "name": "emails",
            "type": {"type": "array", "items": "string"},
            "anon": {"op": "mask", "mode": "email"},
        },
        {"name": "attrs", "type": {"type": "map", "values": "string"}, "anon": "redact"},
        {"name": "maybe", "type": ["null", "string"], "anon": "hmac"},
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "U",
                "fields": [
                    {"name": "name", "type": "string", "pii": "PERSON", "anon": "drop"},
                    {
                        "name": "ip",
                        "type": ["null", "string"],
                        "anon": {"op": "generalize", "method": "ip_prefix"},
                    },
                ],
            },
        },
        {
            "name": "kept",
            "type": {"type": "record", "name": "K", "fields": [{"name": "x", "type": "int"}]},
            "anon": "keep",
        },
    )
    plan = compile_plan(s, KEYS)
    records = [
        {
            "emails": ["ab@x.org"],
            "attrs": {"k": "v"},
            "maybe": None,
            "user": {"name": "N", "ip": "10.1.2.3"},
            "kept": {"x": 1},
        },
        {"emails": [], "attrs": {}, "maybe": "m", "user": {"name": "N", "ip": None}, "kept": {"x": 2}},
    ]
    out = plan.apply_batch(copy.deepcopy(records))
    assert out[0] == {
        "emails": ["a*@x.org"],
        "attrs": {"k": "[REDACTED]"},
        "maybe": None,
        "user": {"ip": "10.1.2.0/24"},
        "kept": {"x": 1},
    }
    assert out[1]["maybe"].startswith("hm1.")  # type: ignore[index]
    assert out[1]["user"] == {"ip": None}  # type: ignore[index]
    for rec in out:
        roundtrip_valid(plan, rec)  # type: ignore[arg-type]
    assert plan.pii_fields[0].path == "user.name"
    assert {"emails[]", "attrs{}", "maybe", "user.ip"} <= plan.generated_paths


def test_record_default_and_tag_policy_cover_fields() -> None:
    s = schema(
        {"name": "a", "type": "string"},
        {"name": "b", "type": "string", "confluent:tags": ["PII"]},
        {"name": "c", "type": "string", "anon": "keep"},
        **{"anon.default": "redact"},
    )
    plan = compile_plan(s, KEYS, tag_policy={"PII": "hmac"})
    (out,) = plan.apply_batch([{"a": "x", "b": "y", "c": "z"}])
    assert out["a"] == "[REDACTED]" and out["b"].startswith("hm1.") and out["c"] == "z"  # type: ignore[index]


def test_a_rule_that_fails_on_one_value_fails_that_record_only() -> None:
    plan = compile_plan(
        schema({"name": "ip", "type": "string", "anon": {"op": "generalize", "method": "ip_prefix"}}), KEYS
    )
    ok, bad = plan.apply_batch([{"ip": "1.2.3.4"}, {"ip": "not-an-ip 10.0.0.1"}])
    assert ok == {"ip": "1.2.3.0/24"}
    assert isinstance(bad, RuleFailure) and bad.path == "ip"
    assert "10.0.0.1" not in bad.message


def test_a_failure_is_reported_at_the_innermost_path_and_a_non_record_is_a_schema_mismatch() -> None:
    ip = {"op": "generalize", "method": "ip_prefix"}
    ip_field = {"name": "ip", "type": ["null", "string"], "anon": ip}
    inner = {"type": "record", "name": "U", "fields": [ip_field]}
    plan = compile_plan(
        schema(
            {"name": "ips", "type": {"type": "array", "items": "string"}, "anon": ip},
            {"name": "u", "type": ["null", inner]},
        ),
        KEYS,
    )
    in_array, in_record, fine, not_a_record = plan.apply_batch(
        [
            {"ips": ["1.2.3.4", "x"], "u": None},
            {"ips": [], "u": {"ip": "bad"}},
            {"ips": ["2001:db8::1"], "u": {"ip": None}},
            {"ips": [], "u": "not a record"},
        ]
    )
    assert isinstance(in_array, RuleFailure) and in_array.path == "ips[]"
    assert isinstance(in_record, RuleFailure) and in_record.path == "u.ip"
    assert fine == {"ips": ["2001:db8::/48"], "u": {"ip": None}}
    assert isinstance(not_a_record, RuleFailure)
    assert not_a_record.message == "record does not match its schema"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("user.email", "user.email"),  # would share its path with the nested field below
        ("", ""),
        ("1st", "1st"),
        ("naïve", "naïve"),
        ("x'] = 1; exit(3) #\"\\\n", "x'] = 1; exit(3) #\"\\\n"),
    ],
)
def test_field_names_that_are_not_avro_names_are_rejected_with_their_paths(name: str, path: str) -> None:
    # fastavro reads any string as a field name. Paths join names with dots, and the per-record code
    # is generated from names: only names of the Avro specification's form get that far.
    s = schema(
        {"name": name, "type": "string", "anon": "drop"},
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "U",
                "fields": [
                    {"name": "email", "type": "string", "anon": "drop"},
                    {"name": f"{name}2", "type": "string", "anon": "drop"},
                ],
            },
        },
    )
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(s, KEYS)
    problems = [(p.path, p.code) for p in caught.value.problems]
    assert problems == [(path, "invalid_rule"), (f"user.{name}2", "invalid_rule")]
    assert "not an Avro name" in caught.value.problems[0].message


def test_field_names_are_data_in_the_verifiers_generated_screen() -> None:
    # The screen is generated from any derived schema it is given; a name reaches its source only
    # through repr, so even a name no plan accepts neither breaks it nor runs as code.
    odd = "x'] = 1; exit(3) #\"\\\n"
    derived = {
        "type": "record",
        "name": "R",
        "fields": [{"name": odd, "type": "string"}, {"name": "note", "type": "string"}],
    }
    screen = compile_screen(derived, frozenset({odd}))
    assert screen is not None
    assert screen({odd: "made", "note": "kept"}) == (["kept"], ["made"])


# --- strict mode ------------------------------------------------------------------------------------


def test_unannotated_leaves_are_rejected_with_their_paths() -> None:
    s = schema(
        {"name": "ok", "type": "string", "anon": "keep"},
        {"name": "phone", "type": "string"},
        {
            "name": "user",
            "type": {"type": "record", "name": "U", "fields": [{"name": "email", "type": "string"}]},
        },
    )
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(s, KEYS)
    problems = {(p.path, p.code) for p in caught.value.problems}
    assert problems == {("phone", "unannotated_field"), ("user.email", "unannotated_field")}


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ({"name": "v", "type": "int", "anon": "mask"}, "cannot apply to type int"),
        ({"name": "v", "type": "string", "anon": "nonsense"}, "unknown operation"),
        ({"name": "v", "type": "string", "anon": {"op": "mask", "keep_first": -1}}, "keep_first"),
        ({"name": "v", "type": "string", "anon": {"op": "hmac", "key": "missing"}}, "missing"),
        ({"name": "v", "type": "double", "anon": {"op": "noise", "epsilon": 0, "bounds": [0, 1]}}, "epsilon"),
        ({"name": "v", "type": "double", "anon": {"op": "noise", "epsilon": 1, "bounds": [1, 0]}}, "bounds"),
        ({"name": "v", "type": "string", "anon": {"op": "generalize", "method": "warp"}}, "method"),
        ({"name": "v", "type": "long", "anon": {"op": "generalize", "method": "time"}}, "timestamp"),
        ({"name": "v", "type": "string", "anon": {"op": "mask", "colour": "red"}}, "unknown parameter"),
        ({"name": "v", "type": "string", "anon": 42}, "operation name"),
    ],
)
def test_bad_rules_are_caught_at_compile_time(field: dict[str, Any], words: str) -> None:
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(schema(field), KEYS)
    (problem,) = caught.value.problems
    assert problem.path == "v" and problem.code == "invalid_rule"
    assert words in problem.message


# --- the shipped example ----------------------------------------------------------------------------


def test_the_example_schema_compiles_and_every_record_fits_its_derived_schema() -> None:
    from stream_anon.datagen import generate_feedback

    class NoFindings:
        def detect_batch(self, texts: Any, known: Any, *, entities: Any = None, threshold: Any = None) -> Any:
            return [[] for _ in texts]

    example = json.loads((REPO / "schemas" / "feedback.avsc").read_text())
    plan = compile_plan(example, KEYS, scanner=NoFindings())
    out = plan.apply_batch(generate_feedback(300))
    assert not [o for o in out if isinstance(o, RuleFailure)]
    parsed = fastavro.parse_schema(strip_logical_types(plan.derived_schema))
    for rec in out:
        assert fastavro.validation.validate(rec, parsed)
    derived_names = {f["name"] for f in plan.derived_schema["fields"]}
    assert "anon" not in json.dumps(plan.derived_schema)
    assert derived_names >= {"feedback_id", "user", "comment", "rating"}


def test_a_detector_that_raises_fails_only_the_record_it_raises_on() -> None:
    class Brittle:
        def detect_batch(self, texts: Any, known: Any, *, entities: Any = None, threshold: Any = None) -> Any:
            if any("boom" in t for t in texts):
                raise AttributeError("detector bug")
            return [[] for _ in texts]

    plan = compile_plan(schema({"name": "c", "type": "string", "anon": "scan"}), KEYS, scanner=Brittle())
    with structlog.testing.capture_logs() as logs:
        ok, bad, ok2 = plan.apply_batch([{"c": "fine"}, {"c": "boom"}, {"c": "also fine"}])
    assert ok == {"c": "fine"} and ok2 == {"c": "also fine"}
    assert isinstance(bad, RuleFailure) and bad.path == "c" and "boom" not in bad.message
    # the batch's failure is logged (text by text is slower), without the text
    (event,) = [e for e in logs if e["event"] == "scan_batch_failed"]
    assert event["error"] == "AttributeError" and event["texts"] == 3 and "boom" not in str(event)


def test_the_real_scanner_handles_context_words_next_to_numbers() -> None:
    from stream_anon.detection.scanner import Scanner

    text = "Ask for Rhys if you call, she set up the account. My number: 098865 54947"
    plan = compile_plan(schema({"name": "c", "type": "string", "anon": "scan"}), KEYS, scanner=Scanner())
    (out,) = plan.apply_batch([{"c": text}])
    assert not isinstance(out, RuleFailure)
    assert "54947" not in out["c"] and "Rhys" not in out["c"]
