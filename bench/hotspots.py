"""The pipeline alone (no Kafka), with and without candidate speed-ups, A/B in alternating processes.

    .venv/bin/python -m bench.hotspots [--schema structured|full] [--records N] [--rounds R]
                                       [--variant NAME=PATCH+PATCH ...]

Each round runs every variant once, each in a fresh process, in turn, so that a noisy neighbour hurts
all variants alike; the report is the median per variant of microseconds per record, per stage
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
from bench.data import STRUCTURED_SCHEMA, RAW_SCHEMA

BATCH = 500


def child(schema: str, records: int, patch_names: list[str]) -> dict[str, Any]:
    import shutil
    import tempfile

    from bench import patches

    patches.apply(patch_names)

    from stream_anon.app import build_pipeline
    from stream_anon.config import Settings
    from stream_anon.keys import Keys
    from stream_anon.logs import configure_logging
    from stream_anon.pipeline import InputRecord, Sanitized

    from bench.data import generate

    configure_logging("json", "warning")
    # CPU time, not wall time: on a shared machine it is what a change saves, and it is far less noisy
    import types

    import stream_anon.pipeline

    stream_anon.pipeline.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    work = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    try:
        (work / "schemas").mkdir()
        shutil.copy(STRUCTURED_SCHEMA if schema == "structured" else RAW_SCHEMA, work / "schemas" / "f.avsc")
        Keys.generate().save(work / "keys.json")
        pipeline = build_pipeline(Settings(schemas_dir=work / "schemas", keys_file=work / "keys.json"))
        data = generate(records + BATCH, seed=7)
        batch = [InputRecord("t", 0, i, 0, k, v) for i, (k, v) in enumerate(zip(data.keys, data.values))]
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


def cpu_seconds(run: Any) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def micro(records: int, repeats: int) -> dict[str, Any]:
    """Each patch's effect on the rule engine alone (``Plan.apply_batch``), on the verifier and on
    ``Plan.pii_values``, in CPU microseconds per record. Baseline and patched runs alternate (the patch
    is applied and undone in between) and the best of ``repeats`` of each counts: on a shared machine
    the least disturbed run is the closest to the code's own cost."""
    import json as json_module

    from stream_anon.datagen import generate_feedback
    from stream_anon.keys import Keys
    from stream_anon.rules import compile_plan
    from stream_anon.rules.plan import Plan, RuleFailure
    from stream_anon.verify import Verifier

    from bench import patches

    keys = Keys.generate()
    schema = json_module.loads(STRUCTURED_SCHEMA.read_text(encoding="utf-8"))
    data = generate_feedback(records, seed=7)
    verifier = Verifier()

    def runs(plan: Plan) -> dict[str, Any]:
        out = plan.apply_batch(data)
        pairs = [(raw, o) for raw, o in zip(data, out, strict=True) if not isinstance(o, RuleFailure)]
        return {
            "transform_us": lambda: plan.apply_batch(data),
            "verify_us": lambda: [verifier.check(plan, raw, o) for raw, o in pairs],
            "pii_values_us": lambda: [plan.pii_values(raw) for raw in data],
        }

    results: dict[str, Any] = {"records": records, "repeats": repeats}
    for name in patches.PATCHES:
        base_runs = runs(compile_plan(schema, keys))
        undo = patches.apply([name])
        patched_runs = runs(compile_plan(schema, keys))
        for u in undo:
            u()
        best: dict[str, dict[str, float]] = {"baseline": {}, "patched": {}}
        for _ in range(repeats):
            for label, chosen in (("baseline", base_runs), ("patched", patched_runs)):
                undo = patches.apply([name]) if label == "patched" else []
                for key, run in chosen.items():
                    us = 1e6 * cpu_seconds(run) / records
                    best[label][key] = min(best[label].get(key, us), us)
                for u in undo:
                    u()
        results[name] = {
            **best,
            "saved_us": {k: best["baseline"][k] - best["patched"][k] for k in best["baseline"]},
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", choices=("structured", "full"), default="structured")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PATCH+PATCH (see bench/patches.py); 'baseline' (no patch) is always run",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--micro", action="store_true", help="each patch on the rule engine and verifier alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        names = [n for n in args.child.split("+") if n]
        print(json.dumps(child(args.schema, args.records, names)))
        return
    if args.micro:
        text = json.dumps(micro(args.records, max(args.rounds, 5)), indent=2)
        if args.out:
            args.out.write_text(text + "\n", encoding="utf-8")
        print(text)
        return
    variants = {"baseline": ""}
    for spec in args.variant:
        name, _, patch = spec.partition("=")
        variants[name] = patch or name
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        for name, patch in variants.items():
            out = subprocess.run(
                [sys.executable, "-m", "bench.hotspots", "--schema", args.schema, "--records",
                 str(args.records), "--child", patch],
                cwd=REPO, capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(f"round {round_ + 1} {name}: {result['cpu_us_per_record']:.1f} CPU us/record", file=sys.stderr)
    summary: dict[str, Any] = {"schema": args.schema, "records": args.records, "rounds": args.rounds}
    base = statistics.median(r["cpu_us_per_record"] for r in runs["baseline"])
    for name, results in runs.items():
        us = statistics.median(r["cpu_us_per_record"] for r in results)
        stages = {k: statistics.median(r["stages_us"][k] for r in results) for k in results[0]["stages_us"]}
        summary[name] = {
            "patches": variants[name],
            "cpu_us_per_record": us,
            "vs_baseline": us / base,
            "stages_cpu_us": stages,
            "all_cpu_us": [r["cpu_us_per_record"] for r in results],
        }
    text = json.dumps(summary, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
