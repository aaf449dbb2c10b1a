"""Instructions per record of the leak verifier's check, counted by valgrind: a figure the neighbours on a
shared machine move far less than they move time, for comparing two versions of the verifier.

    .venv/bin/python -m bench.instructions [--repeat R]

The child builds case 3's pipeline (structured rules), runs 2,200 records through it while recording
each ``Verifier.check`` call, then repeats the last 1,000 calls ``R`` times with the verifier's memory of
clean strings emptied first, as a worker meets fresh records. It runs twice under ``valgrind
--tool=cachegrind`` (once without the repeats); the difference in instructions, over ``R * 1000``, is the
check's cost per record. Keys are fixed, the noise pool's thread is left to settle before the count and
the collector is off during it. Runs still vary: one version read 89,783, 102,746 and 106,262 here, so
compare versions over several runs each. Needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from bench.children import REPO

RECORDS = 2200
COUNTED = 1000
SETTLE_S = 15.0
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def child(repeat: int) -> None:
    import gc
    import secrets
    import shutil
    import tempfile
    from pathlib import Path
    from typing import Any

    def fixed_bytes(nbytes: int | None = None) -> bytes:
        return b"\x07" * (nbytes or 32)

    secrets.token_bytes = fixed_bytes  # the same keys, so the same pseudonyms, in every run

    from bench.data import STRUCTURED_SCHEMA, generate
    from stream_anon.app import build_pipeline
    from stream_anon.config import Settings
    from stream_anon.keys import Keys
    from stream_anon.logs import configure_logging
    from stream_anon.records import InputRecord
    from stream_anon.verify import Verifier

    configure_logging("json", "warning")
    work = Path(tempfile.mkdtemp())
    (work / "schemas").mkdir()
    shutil.copy(STRUCTURED_SCHEMA, work / "schemas" / "feedback.avsc")
    Keys.generate().save(work / "keys.json")
    pipeline = build_pipeline(Settings(schemas_dir=work / "schemas", keys_file=work / "keys.json"))
    data = generate(RECORDS, seed=7)
    pairs = zip(data.keys, data.values, strict=True)
    batch = [InputRecord("t", 0, i, 0, key, value) for i, (key, value) in enumerate(pairs)]
    calls: list[tuple[Any, Any, Any, Any]] = []
    check = Verifier.check

    def recording(self: Any, plan: Any, raw: Any, out: Any) -> Any:
        calls.append((self, plan, raw, out))
        return check(self, plan, raw, out)

    Verifier.check = recording  # type: ignore[method-assign,assignment]
    for start in range(0, RECORDS, 100):
        pipeline.process(batch[start : start + 100])
    Verifier.check = check  # type: ignore[method-assign]
    counted = calls[-COUNTED:]
    # The noise op's pool refills on a background thread; whether a refill falls in one run or the
    # other would swamp the count (one run beside a test suite read a quarter of the real figure). It keeps
    # two vectors ready, so a few seconds of sleep (valgrind runs it about 50 times slower) let it
    # finish before the counting; the check itself draws no noise.
    time.sleep(SETTLE_S)
    gc.collect()
    gc.disable()  # a collection falling in one run and not the other would swamp the count
    for _ in range(repeat):
        verifier = counted[0][0]
        if hasattr(verifier, "_clean"):
            verifier._clean = type(verifier._clean)()
        for self, plan, raw, out in counted:
            check(self, plan, raw, out)


def _instructions(repeat: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*VALGRIND, sys.executable, "-m", "bench.instructions", "--child", str(repeat)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="times the 1,000 calls are repeated")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    subprocess.run([sys.executable, "-m", "bench.instructions", "--child", "0"], cwd=REPO, check=True)  # .pyc
    print("counting (two runs under valgrind, a few minutes)...", file=sys.stderr, flush=True)
    without = _instructions(0)
    print("  without the repeats: done", file=sys.stderr, flush=True)
    with_repeats = _instructions(args.repeat)
    per_record = (with_repeats - without) / (args.repeat * COUNTED)
    print(f"Verifier.check: {per_record:,.0f} instructions per record ({args.repeat} x {COUNTED:,} records)")


if __name__ == "__main__":
    main()
