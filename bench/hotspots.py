"""The pipeline alone (no Kafka), each round in a fresh process.

    .venv/bin/python -m bench.hotspots [--schema structured|full] [--records N] [--rounds R] [--micro]

The report is the median over the rounds of microseconds per record, per stage
(``Pipeline.stage_seconds``), in CPU time: on a shared machine wall time says more about the neighbours
than about the change. The first batch (plan compile, model load) is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.children import REPO
from bench.data import RAW_SCHEMA, STRUCTURED_SCHEMA

BATCH = 500


def child(schema: str, records: int) -> dict[str, Any]:
    import shutil
    import tempfile

    from bench.data import generate
    from stream_anon.app import build_pipeline
    from stream_anon.config import Settings
    from stream_anon.keys import Keys
    from stream_anon.logs import configure_logging
    from stream_anon.records import InputRecord, Sanitized

    configure_logging("json", "warning")
    work = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    try:
        (work / "schemas").mkdir()
        shutil.copy(STRUCTURED_SCHEMA if schema == "structured" else RAW_SCHEMA, work / "schemas" / "f.avsc")
        Keys.generate().save(work / "keys.json")
        pipeline = build_pipeline(Settings(schemas_dir=work / "schemas", keys_file=work / "keys.json"))
        # CPU time, not wall time: on a shared machine it is what a change saves, and it is far less noisy
        pipeline.timer = time.process_time
        data = generate(records + BATCH, seed=7)
        batch = [
            InputRecord("t", 0, i, 0, k, v)
            for i, (k, v) in enumerate(zip(data.keys, data.values, strict=True))
        ]
        pipeline.process(batch[:BATCH])  # compile, load, warm
        before = dict(pipeline.stage_seconds)
        sanitized = 0
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(BATCH, len(batch), BATCH):
            sanitized += sum(isinstance(o, Sanitized) for o in pipeline.process(batch[i : i + BATCH]))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "records": records,
        "sanitized": sanitized,
        "cpu_us_per_record": 1e6 * cpu / records,
        "stages_us": {k: 1e6 * (v - before[k]) / records for k, v in pipeline.stage_seconds.items()},
        "wall_us_per_record": 1e6 * wall / records,
    }


def best_us(run: Any, calls: int, repeats: int) -> float:
    """Microseconds per call of ``run`` (which makes ``calls`` calls), fastest of ``repeats`` runs: on a
    shared machine the least disturbed run is the closest to the code's own cost."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / calls


def micro(records: int, repeats: int) -> dict[str, Any]:
    """Per-record cost of each stage of the structured-rules pipeline, and per-value cost of each of its
    operations, each the fastest of ``repeats`` runs (no Kafka)."""
    import io
    import json as json_module

    import fastavro

    from bench.data import HEADER_BYTES, generate
    from stream_anon.datagen import generate_feedback
    from stream_anon.keys import Keys
    from stream_anon.ops import REGISTRY
    from stream_anon.ops.generalize import Generalize
    from stream_anon.ops.noise import Noise
    from stream_anon.rules import compile_plan
    from stream_anon.rules.plan import Ctx, RuleFailure
    from stream_anon.schema import strip_logical_types
    from stream_anon.verify import Verifier
    from stream_anon.wire import encode

    keys = Keys.generate()
    schema = json_module.loads(STRUCTURED_SCHEMA.read_text(encoding="utf-8"))
    records_ = generate_feedback(records, seed=7)
    values = generate(records, seed=7).values
    plan = compile_plan(schema, keys)
    out = [o for o in plan.apply_batch(records_) if not isinstance(o, RuleFailure)]
    pairs = list(zip(records_, out, strict=False))
    verifier = Verifier()
    writer = fastavro.parse_schema(strip_logical_types(schema))

    def decode_all() -> None:
        for v in values:
            body = io.BytesIO(v)
            body.seek(HEADER_BYTES)
            fastavro.schemaless_reader(body, writer, None)

    stages = {
        "decode (fastavro, writer schema)": best_us(decode_all, records, repeats),
        "transform (Plan.apply_batch)": best_us(lambda: plan.apply_batch(records_), records, repeats),
        "verify (Verifier.check)": best_us(
            lambda: [verifier.check(plan, r, o) for r, o in pairs], records, repeats
        ),
        "  verify, the full check alone (what the screen saves)": best_us(
            lambda: [verifier._full_check(plan, o, verifier._needles(plan.pii_values(r))) for r, o in pairs],
            records,
            repeats,
        ),
        "  of which Plan.pii_values": best_us(
            lambda: [plan.pii_values(r) for r in records_], records, repeats
        ),
        "encode (fastavro, derived schema)": best_us(
            lambda: [encode(b"", plan.parsed_derived, o) for o in out], records, repeats
        ),
    }
    timestamp = {"type": "long", "logicalType": "timestamp-millis"}
    user = [r["user"] for r in records_]
    ops: dict[str, tuple[dict[str, Any], Any, list[Any]]] = {
        "hmac (user_id)": ({"op": "hmac"}, "string", [u["user_id"] for u in user]),
        "hmac, normalize lower (email)": (
            {"op": "hmac", "normalize": "lower"}, "string", [u["email"] or "" for u in user]
        ),
        "tokenize (device_id)": ({"op": "tokenize"}, "string", [r["device_id"] for r in records_]),
        "generalize ip_prefix": (
            {"op": "generalize", "method": "ip_prefix"}, "string", [r["ip_address"] for r in records_]
        ),
        "mask keep_last 2 (phone)": (
            {"op": "mask", "keep_last": 2}, "string", [u["phone"] or "" for u in user]
        ),
        "generalize bucket (age)": (
            {"op": "generalize", "method": "bucket", "width": 10, "min": 18, "max": 80},
            "int",
            [u["age"] or 0 for u in user],
        ),
        "generalize time hour": (
            {"op": "generalize", "method": "time", "unit": "hour"},
            timestamp,
            [r["event_time"] for r in records_],
        ),
    }  # fmt: skip
    calls: dict[str, float] = {}
    for name, (spec, avro, inputs) in ops.items():
        fn = REGISTRY[spec["op"]](spec, avro, keys).build()
        calls[name] = best_us(
            lambda fn=fn, inputs=inputs: [fn(v, None) for v in inputs], len(inputs), repeats
        )
    shift = Generalize(
        {"op": "generalize", "method": "date_shift", "subject": "user.user_id", "max_days": 15},
        timestamp,
        keys,
    ).build()
    contexts = [Ctx(r, i, []) for i, r in enumerate(records_)]
    calls["generalize date_shift"] = best_us(
        lambda: [shift(c.record["user"]["signup_date"], c) for c in contexts], records, repeats
    )
    # the sampler's own cost: the record path only takes from the vectors its thread draws ahead
    noise = Noise({"op": "noise", "epsilon": 1.0, "bounds": [0, 120]}, "double", keys)
    import opendp.prelude as dp

    dp.enable_features("contrib")
    sampler = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=float, nan=False), size=noise.POOL),
        dp.l1_distance(T=float),
        float(noise.scale),
        k=-20,
    )
    zeros = [0.0] * noise.POOL
    calls["noise: OpenDP's sampler per value (on the noise thread)"] = best_us(
        lambda: sampler(zeros), noise.POOL, 3
    )
    return {
        "records": records,
        "repeats": repeats,
        "stages_us_per_record": stages,
        "calls_us": calls,
        "target_budget_us_per_record": _budget(stages, calls),
    }


# Case 3 at 70% of the codec floor's rate may cost 1/0.7 of the floor's time: 3/7 of it on top.
TARGET_SHARE = 0.7


def _budget(stages: dict[str, float], calls: dict[str, float]) -> dict[str, float]:
    """The issue's 70%-of-the-floor target as a budget, from this one run's figures: what the rules and
    the verifier may cost on top of decoding and encoding, against what they do cost. Kafka's own
    per-record work is left out of the floor, so the budget is generous: with it the floor is larger."""
    codec = stages["decode (fastavro, writer schema)"] + stages["encode (fastavro, derived schema)"]
    crypto = ["hmac (user_id)", "hmac, normalize lower (email)", "tokenize (device_id)"]
    crypto.append("generalize date_shift")  # an HMAC of the subject
    return {
        "allowed: (1/0.7 - 1) x (decode + encode)": codec * (1 / TARGET_SHARE - 1),
        "spent: transform + verify": (
            stages["transform (Plan.apply_batch)"] + stages["verify (Verifier.check)"]
        ),
        "  of which the three HMACs and the AES-SIV alone": sum(calls[name] for name in crypto),
        "  and OpenDP's sampler, on the noise thread (one value a record)": calls[
            "noise: OpenDP's sampler per value (on the noise thread)"
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schema", choices=("structured", "full"), default="structured")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--micro", action="store_true", help="the rule engine's stages and operations, call for call"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.schema, args.records)))
        return
    if args.micro:
        text = json.dumps(micro(args.records, max(args.rounds, 5)), indent=2)
        if args.out:
            args.out.write_text(text + "\n", encoding="utf-8")
        print(text)
        return
    results: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        out = subprocess.run(
            [sys.executable, "-m", "bench.hotspots", "--schema", args.schema, "--records",
             str(args.records), "--child"],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"round {round_ + 1}: {result['cpu_us_per_record']:.1f} CPU us/record", file=sys.stderr)
    summary: dict[str, Any] = {
        "schema": args.schema,
        "records": args.records,
        "rounds": args.rounds,
        "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in results),
        "stages_cpu_us": {
            k: statistics.median(r["stages_us"][k] for r in results) for k in results[0]["stages_us"]
        },
        "all_cpu_us": [r["cpu_us_per_record"] for r in results],
    }
    text = json.dumps(summary, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
