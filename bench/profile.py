"""Where a worker's time goes: py-spy samples of a case process, summarized per stage and per function.

``bench/run.sh --profile --only 3,4`` runs the case processes under ``py-spy record`` (raw collapsed
stacks, in ``build/bench/profiles``); this module reads them. Only samples taken inside the measured
loop count (``Worker.run``, or the naive peer's loop): start-up, imports and warm-up are left out.
Each sample goes to the innermost stage it is in, so a verifier call inside the pipeline is ``verify``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

# (stage, a substring of a frame that puts a sample in it); the innermost match wins
STAGE_FRAMES = (
    ("consume", "Source.poll_batch ("),
    ("consume", "Consumer.poll"),
    ("pipeline (other)", "Pipeline.process ("),
    ("pipeline (other)", "CodecFloor.process ("),
    ("decode", "parse_frame ("),
    ("decode", "decode_payload ("),
    ("decode", "SchemaResolver.lookup ("),
    ("transform", "Plan.apply_batch ("),
    ("scan (other)", "Scanner.detect_batch ("),
    ("scan: spaCy NER, batched", "_Engine._ner_docs ("),
    ("scan: record-aware search", "RecordAware.find ("),
    ("Presidio AnalyzerEngine.analyze (recognizers)", "AnalyzerEngine.analyze ("),
    ("spaCy pipeline, one record at a time", "SpacyNlpEngine.process_text ("),
    ("Presidio AnonymizerEngine.anonymize", "AnonymizerEngine.anonymize ("),
    ("naive: decode, encode, loop", "NaivePeer.sanitize ("),
    ("verify", "Verifier.check ("),
    ("encode", "encode (stream_anon/wire.py"),
    ("produce", "_Producing.produce ("),
    ("produce", "Producer.produce"),
    ("commit", "ExactlyOnce.commit ("),
    ("metrics and health", "WorkerObserver."),
)
LOOPS = ("Worker.run (", "NaivePeer.run (")
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    local = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else None


def command(output: Path, rate: int = 100) -> list[str]:
    """The prefix that runs a command under py-spy (raw collapsed stacks)."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return [spy, "record", "--rate", str(rate), "--format", "raw", "--output", str(output), "--"]


def _frames(line: str) -> tuple[list[str], int] | None:
    stack, _, count = line.rstrip().rpartition(" ")
    if not stack or not count.isdigit():
        return None
    return [_LINE.sub(")", f) for f in stack.split(";")], int(count)


def summarize(path: Path, top: int = 12) -> dict[str, Any]:
    stages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    by_stage: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parsed = _frames(line)
        if parsed is None:
            continue
        frames, count = parsed
        start = next((i for i, f in enumerate(frames) if f.startswith(LOOPS)), None)
        if start is None:
            continue
        frames = frames[start + 1 :]
        total += count
        stage, depth = "loop (other)", -1
        for name, needle in STAGE_FRAMES:
            for i, frame in enumerate(frames):
                if needle in frame and i >= depth:
                    stage, depth = name, i
        stages[stage] += count
        below = frames[depth + 1 :] if depth >= 0 else frames
        for frame in dict.fromkeys(below):
            inclusive[frame] += count
            by_stage.setdefault(stage, Counter())[frame] += count
        if frames:
            leaf[frames[-1]] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "stages": dict(share(stages, len(stages))),
        "top_inclusive": share(inclusive, top),
        "top_self": share(leaf, top),
        "by_stage": {s: share(c, 6) for s, c in by_stage.items()},
    }


def markdown(name: str, summary: dict[str, Any]) -> list[str]:
    lines = [
        f"### {name}: {summary['samples']:,} samples inside the loop",
        "",
        "| stage | share |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {share:.1%} |" for stage, share in summary["stages"].items()]
    lines += ["", "| hottest functions (inclusive, within their stage) | share |", "|---|---:|"]
    lines += [f"| `{frame}` | {share:.1%} |" for frame, share in summary["top_inclusive"]]
    lines += ["", "| hottest functions (self) | share |", "|---|---:|"]
    lines += [f"| `{frame}` | {share:.1%} |" for frame, share in summary["top_self"]]
    return [*lines, ""]
