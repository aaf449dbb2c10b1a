"""Two checkouts' in-process pipelines compared in lockstep: the same records, CPU time, alternating.

    .venv/bin/python -m bench.lockstep /path/to/other/checkout [--rounds 10] [--chunk 1000] [--no-ner]
        [--schema full|structured]

On a shared machine the CPU time of one chunk of records drifts by ±30% within a minute, far more than
the few percent two versions differ by, and runs of the full harness minutes apart see different
machines. Here each checkout runs in its own long-lived process (its own ``stream_anon`` and
``bench.data`` on ``PYTHONPATH``), builds the pipeline of case 4's schema (full rules with the scan; case
3's structured rules with ``--schema structured``) once,
and then processes the same chunk of generated records on command, turn about (ABBA within a round), so
both see the machine as it is in the same few seconds. Each round prints the two CPU times and their
ratio; the summary is the median ratio over the rounds. ``--no-ner`` replaces spaCy's NER with its
tokenizer in both, to compare everything but the model. No Kafka: the worker's own stages are the
harness's business.

The serving side runs this file by path with the other checkout first on ``PYTHONPATH``, so it uses only
what every checkout since the restructuring of issue 17 has: ``bench.data``, ``stream_anon.app``,
``stream_anon.config``, ``stream_anon.keys``, ``stream_anon.logs`` and ``stream_anon.records``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent


def serve(chunk: int, total: int, no_ner: bool, schema: str) -> None:
    """Build the pipeline, then process the next ``chunk`` records for each line read; print CPU seconds."""
    import shutil
    import tempfile
    import time

    from bench.data import RAW_SCHEMA, STRUCTURED_SCHEMA, generate
    from stream_anon.app import build_pipeline
    from stream_anon.config import Settings
    from stream_anon.keys import Keys
    from stream_anon.logs import configure_logging
    from stream_anon.records import InputRecord

    configure_logging("json", "warning")
    work = Path(tempfile.mkdtemp(prefix="lockstep-"))
    (work / "schemas").mkdir()
    shutil.copy(RAW_SCHEMA if schema == "full" else STRUCTURED_SCHEMA, work / "schemas" / "feedback.avsc")
    Keys.generate().save(work / "keys.json")
    pipeline = build_pipeline(Settings(schemas_dir=work / "schemas", keys_file=work / "keys.json"))
    data = generate(total, seed=7)
    records = [
        InputRecord("raw", 0, i, 0, k, v) for i, (k, v) in enumerate(zip(data.keys, data.values, strict=True))
    ]
    for start in range(0, 500, 100):  # loads the model, compiles the plan, warms the caches
        pipeline.process(records[start : start + 100])
    if no_ner:
        engines = [e for m in list(sys.modules.values()) for e in getattr(m, "_ENGINES", {}).values()]
        for engine in engines:
            nlp = engine.nlp
            nlp.pipe = lambda texts, batch_size=64, nlp=nlp: (nlp.make_doc(t) for t in texts)
    shutil.rmtree(work)
    print("ready", flush=True)
    at = 0
    for _ in sys.stdin:
        if at + chunk > total:
            at = 0
        began = time.process_time()
        for start in range(at, at + chunk, 250):
            pipeline.process(records[start : min(start + 250, at + chunk)])
        print(f"{time.process_time() - began:.6f}", flush=True)
        at += chunk


class Side:
    """One checkout's serving process."""

    def __init__(self, checkout: Path, chunk: int, total: int, no_ner: bool, schema: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        # -P: not this file's folder first on sys.path, where bench/profile.py would shadow the standard one
        command = [sys.executable, "-P", str(Path(__file__).resolve()), "--serve", str(chunk), str(total)]
        command += ["--schema", schema]
        self.process = subprocess.Popen(
            command + (["--no-ner"] if no_ner else []),
            cwd=checkout,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise SystemExit(f"lockstep: the pipeline of {checkout} did not start (see above)")

    @property
    def _stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def run(self) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self._stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", nargs="?", type=Path, help="the checkout to compare this one with")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=1000, help="records per turn (default 1000)")
    parser.add_argument("--no-ner", action="store_true", help="spaCy's tokenizer instead of its NER, both")
    parser.add_argument(
        "--schema",
        choices=("full", "structured"),
        default="full",
        help="case 4's schema with the scan (default), or case 3's structured rules",
    )
    parser.add_argument("--serve", nargs=2, type=int, metavar=("CHUNK", "TOTAL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], args.no_ner, args.schema)
        return 0
    if args.base is None or not (args.base / "stream_anon").is_dir():
        parser.error("give the path of another stream-anon checkout")
    total = max(6000, args.chunk * 2)
    print(
        f"lockstep: {REPO} against {args.base}, {args.schema} schema, {args.rounds} rounds of 4 x "
        f"{args.chunk} records"
    )
    this = Side(REPO, args.chunk, total, args.no_ner, args.schema)
    other = Side(args.base, args.chunk, total, args.no_ner, args.schema)
    ratios: list[float] = []
    times: dict[str, list[float]] = {"this": [], "base": []}
    for number in range(args.rounds):
        order = [this, other, other, this] if number % 2 == 0 else [other, this, this, other]
        spent: dict[Any, float] = {this: 0.0, other: 0.0}
        for side in order:
            seconds = side.run()
            spent[side] += seconds
            times["this" if side is this else "base"].append(seconds)
        ratios.append(spent[this] / spent[other])
        print(
            f"round {number + 1}/{args.rounds}: this {spent[this] / 2:.3f} s, base {spent[other] / 2:.3f} s "
            f"a chunk; ratio {ratios[-1]:.3f}",
            flush=True,
        )
    this.close()
    other.close()
    per_record = {name: 1e6 * statistics.median(values) / args.chunk for name, values in times.items()}
    print(
        f"CPU a record, median of turns: this {per_record['this']:.0f} us, base {per_record['base']:.0f} us; "
        f"ratio this/base: median {statistics.median(ratios):.3f}, "
        f"range {min(ratios):.3f}-{max(ratios):.3f} over {len(ratios)} rounds"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
