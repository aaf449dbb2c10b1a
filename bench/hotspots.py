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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        names = [n for n in args.child.split("+") if n]
        print(json.dumps(child(args.schema, args.records, names)))
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
