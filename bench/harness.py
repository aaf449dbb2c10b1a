"""The benchmark of issue 6: every case on the same generated data, in one run, against the real broker.

    .venv/bin/python -m bench.harness [--smoke] [--out bench/results]

(``bench/run.sh`` wraps it: the virtualenv, the broker.) For each case it measures saturation
throughput on a pre-loaded topic, then end-to-end latency at half that rate, in a process of its own;
then detection recall of cases 4 and 5 on the records both processed, and writes
``latest.json``/``latest.md``/``latest.png``. See ``bench/README.md`` for what each case is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import kafkaperf, machine, profile, report
from bench.children import REPO, CaseFailed, CaseProcess
from bench.data import RAW_SCHEMA, STRUCTURED_SCHEMA, Dataset, generate, raw_schema, recall, save_values
from bench.topics import Topics, broker_answers, comments_of, load, read_output, run_id
from stream_anon.config import ScanSettings
from stream_anon.keys import Keys

MB = 2**20
BATCH_SIZE = 500  # the worker's default batch_size


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    records: int  # in the single-partition input topic of cases 2, 3, 4, 5, 7
    scale_records: int  # in the multi-partition input topic of case 6
    partitions: int  # of that topic
    kafka_records: int  # for Kafka's performance tools
    cap_s: float  # a saturation phase ends after this long, or when its input is drained
    latency_s: float  # duration of the paced load
    warm_up: int  # records each case processes before anything is measured
    idle_s: float  # input idle this long after the first record: drained
    rounds: int  # saturation rounds of the cases whose ratios are targets (2, 7, 8, 3, 6), in turn


SMOKE = Size("smoke", 400, 300, 4, 5_000, 8.0, 4.0, 32, 1.5, 1)
FULL = Size("full", 120_000, 12_000, 4, 1_000_000, 30.0, 20.0, 200, 2.0, 3)

# The cases whose records/s enter a ratio target, and the order of each repeated round (case 6's two
# runs come first in a round).
RATIO_CASES = ("2", "7", "8", "3")

CASES: dict[str, dict[str, str]] = {
    "1-producer": {"title": "Kafka ProducerPerformance (broker ceiling, produce)", "short": "kafka produce"},
    "1-consumer": {"title": "Kafka ConsumerPerformance (broker ceiling, consume)", "short": "kafka consume"},
    "2": {
        "title": "Python pass-through worker (same client, exactly-once, bytes copied)",
        "short": "pass-through",
    },
    "7": {"title": "codec floor (decode + re-encode, no rules)", "short": "codec floor"},
    "8": {
        "title": "bound on 3: codec floor + 3's five keyed calls, nothing else (diagnostic)",
        "short": "floor + keyed",
    },
    "3": {"title": "stream-anon, structured rules only", "short": "structured"},
    "4": {"title": "stream-anon, full schema with scan", "short": "full + scan"},
    "5": {"title": "naive peer (Presidio per record)", "short": "naive peer"},
    "6-1": {"title": "stream-anon full schema, 1 process, 4 partitions", "short": "scan x1 proc"},
    "6-2": {"title": "stream-anon full schema, 2 processes, 4 partitions", "short": "scan x2 procs"},
}

# case, process kind, schema directory, output key
WORKER_CASES = (
    ("2", "passthrough", "full", "keep"),
    ("7", "codec", "full", "keep"),
    ("8", "keyed", "full", "hmac"),
    ("3", "stream-anon", "structured", "hmac"),
    ("4", "stream-anon", "full", "hmac"),
    ("5", "naive", "full", "keep"),
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Run:
    def __init__(
        self,
        size: Size,
        bootstrap: str,
        out: Path,
        seed: int,
        profile: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.overrides = overrides or {}
        self.size = size
        self.profile = profile
        self.bootstrap = bootstrap
        self.out = out
        self.seed = seed
        self.id = run_id()
        # one directory per run: two runs at once (a developer's and CI's) must not share files
        self.workdir = REPO / "build" / "bench" / f"run-{self.id}"
        (self.workdir / "logs").mkdir(parents=True)
        self.topics = Topics(bootstrap, f"bench-{self.id}")
        self.cases: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, str] = {}  # case -> its saturation output topic (for recall)
        self.derived: dict[str, Any] = {}
        self.notes: list[str] = []
        self.dataset: Dataset | None = None
        self.started: dict[str, CaseProcess] = {}

    # -- set-up ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        size = self.size
        n = max(size.records, size.scale_records)
        t0 = time.perf_counter()
        self.dataset = generate(n, self.seed)
        seconds = time.perf_counter() - t0
        say(f"generated {n:,} records in {seconds:.1f}s, mean {self.dataset.mean_size:.0f} bytes")
        self.data_file = self.workdir / "data.bin"
        save_values(self.dataset, self.data_file)
        self.keys_file = self.workdir / "keys.json"
        Keys.generate().save(self.keys_file)
        self.schema_dirs = {}
        for name, source in (("full", RAW_SCHEMA), ("structured", STRUCTURED_SCHEMA)):
            directory = self.workdir / f"schemas-{name}"
            directory.mkdir()
            shutil.copy(source, directory / "feedback.avsc")
            self.schema_dirs[name] = directory
        (self.raw,) = self.topics.create(["raw"])
        t0 = time.perf_counter()
        d = self.dataset
        self.where = {
            pos: i
            for i, pos in enumerate(
                load(self.bootstrap, self.raw, d.keys[: size.records], d.values[: size.records])
            )
        }
        say(f"loaded the input topic in {time.perf_counter() - t0:.1f}s")

    def spec(self, case: str, schemas: str, output_key: str) -> dict[str, Any]:
        return {
            "data_file": str(self.data_file),
            "warm_up": self.size.warm_up,
            # the entities stream-anon's scan looks for by default: the peer is asked for the same ones
            "naive_entities": sorted(ScanSettings().entities),
            "settings": {
                "bootstrap_servers": self.bootstrap,
                "schemas_dir": str(self.schema_dirs[schemas]),
                "keys_file": str(self.keys_file),
                "metrics_port": 0,
                "output_key": output_key,
                "delivery": "exactly_once",
                "batch_size": BATCH_SIZE,
                "log_level": "info",
                **self.overrides,
            },
        }

    def phase_settings(self, case: str, phase: str, input_topic: str, proc: int = 0) -> dict[str, Any]:
        tag = f"{case}-{phase}"
        out, dlq = self.topics.create([f"{tag}.out", f"{tag}.dlq"])
        return {
            "input_topics": [input_topic],
            "output_topic": out,
            "dlq_topic": dlq,
            "group_id": f"bench-{self.id}-{tag}",
            "transactional_id": f"bench-{self.id}-{tag}-{proc}",
        }

    # -- case 1 ----------------------------------------------------------------------------------------

    def kafka_ceiling(self) -> None:
        if not kafkaperf.available():
            self.notes.append("case 1 skipped: Kafka's jars are not in .cache/kafka/libs")
            say("case 1 skipped: no Kafka jars in .cache/kafka/libs")
            return
        assert self.dataset is not None
        size = round(self.dataset.mean_size)
        n = self.size.kafka_records
        logs = self.workdir / "logs"
        (topic,) = self.topics.create(["kafka-perf"])
        say(f"case 1: ProducerPerformance, {n:,} records of {size} bytes")
        produced = kafkaperf.producer(self.bootstrap, topic, n, size, -1, logs / "1-producer.log")
        say(f"case 1: ConsumerPerformance, {n:,} records")
        consumed = kafkaperf.consumer(self.bootstrap, topic, n, logs / "1-consumer.log")
        rate = produced["records_per_s"] / 2
        paced_n = max(100, int(rate * self.size.latency_s))
        (paced_topic,) = self.topics.create(["kafka-perf-paced"])
        say(f"case 1: ProducerPerformance paced at {rate:,.0f} records/s")
        paced = kafkaperf.producer(self.bootstrap, paced_topic, paced_n, size, rate, logs / "1-paced.log")
        self.cases["1-producer"] = {
            **CASES["1-producer"],
            **produced,
            "cpu_per_1k": 1000 * produced["cpu_seconds"] / produced["records"],
            "latency": {
                "p50_ms": paced["latency_p50_ms"],
                "p99_ms": paced["latency_p99_ms"],
                "offered_rate": paced["records_per_s"],
                "records": paced["records"],
                "kind": "produce acknowledgement (acks=all), from ProducerPerformance",
            },
        }
        self.cases["1-consumer"] = {
            **CASES["1-consumer"],
            **consumed,
            "cpu_per_1k": 1000 * consumed["cpu_seconds"] / max(consumed["records"], 1),
        }

    # -- cases 2, 3, 4, 5, 7 ---------------------------------------------------------------------------

    def process(self, name: str, kind: str, schemas: str, output_key: str) -> CaseProcess:
        """The case's process: started now, or earlier by ``prestart``."""
        proc = self.started.pop(name, None)
        if proc is None:
            proc = self.spawn(name, kind, schemas, output_key)
        return proc

    def spawn(self, name: str, kind: str, schemas: str, output_key: str) -> CaseProcess:
        prefix = None
        if self.profile:
            (self.workdir / "profiles").mkdir(exist_ok=True)
            prefix = profile.command(self.workdir / "profiles" / f"{name}.txt")
        return CaseProcess(name, kind, self.spec(name, schemas, output_key), self.workdir, prefix)

    def prestart(self, only: set[str]) -> None:
        """Smoke size: start every case's process at once, so their start-ups overlap (nothing measured
        in smoke mode depends on it; the full size starts each case alone, on a quiet machine)."""
        for case, kind, schemas, key in WORKER_CASES:
            if case in only:
                self.started[f"case-{case}"] = self.spawn(f"case-{case}", kind, schemas, key)
        if "6" in only:
            for name in ("case-6-1-0", "case-6-2-0", "case-6-2-1"):
                self.started[name] = self.spawn(name, "stream-anon", "full", "hmac")

    def worker_case(self, case: str, kind: str, schemas: str, output_key: str) -> None:
        say(f"case {case}: starting its process ({CASES[case]['short']})")
        proc = self.process(f"case-{case}", kind, schemas, output_key)
        try:
            ready = proc.wait_for("ready", 600)
            if ready.get("derived_schema"):
                self.derived[case] = ready["derived_schema"]
            result, sat = self.saturate(proc, case, "sat")
            self.outputs[case] = sat["output_topic"]
            rate = result["records"] / result["seconds"] if result["seconds"] > 0 else None
            say(
                f"case {case}: {result['records']:,} records in {result['seconds']:.1f}s = {rate or 0:,.0f}/s"
            )
            # case 8 is a bound on case 3's rate, not a worker anyone runs: its latency says nothing
            latency = self.latency(proc, case, rate / 2) if rate and case != "8" else None
            # case 3's target is judged at half its rate; a quarter shows what the pipeline adds when the
            # CPU has room to spare (on two cores the load generator and the broker share it)
            quarter = self.latency(proc, f"{case}-quarter", rate / 4) if rate and case == "3" else None
            _, usage = proc.finish()
        except BaseException:
            proc.kill()
            raise
        assert self.dataset is not None
        summary = summarize(result, self.dataset.mean_size)
        self.cases[case] = {
            **CASES[case],
            **summary,
            "rounds": [round_entry(summary)],
            "latency": latency,
            "latency_quarter_rate": quarter,
            "max_rss_mb": usage.max_rss_mb,
            "process_cpu_seconds": usage.cpu_seconds,
            "startup_s": ready.get("startup_s"),
            "warnings": proc.warnings,
        }
        for warning in proc.warnings:
            say(f"case {case}: {warning}")
            self.notes.append(f"case {case}: {warning}")

    def repeat_rounds(self, only: set[str]) -> None:
        """Rounds 2..N of the ratio cases, saturation only, one after another, each in a fresh process on
        the same input topic (case 6: 1 then 2 processes on a fresh topic): a ratio target is judged on
        the median of the rounds' ratios, so that one noisy minute on a shared machine does not decide
        it. Round 1 is the main pass above."""
        assert self.dataset is not None
        kinds = {case: (kind, schemas, key) for case, kind, schemas, key in WORKER_CASES}
        cases = [c for c in RATIO_CASES if c in only and c in self.cases]
        for round_ in range(2, self.size.rounds + 1):
            if "6-1" in self.cases and "6-2" in self.cases:
                self.scaling(1, round_)
                self.scaling(2, round_)
            for case in cases:
                kind, schemas, key = kinds[case]
                proc = self.spawn(f"case-{case}-round-{round_}", kind, schemas, key)
                try:
                    proc.wait_for("ready", 600)
                    result, _ = self.saturate(proc, case, f"sat{round_}")
                    proc.finish()
                except BaseException:
                    proc.kill()
                    raise
                summary = summarize(result, self.dataset.mean_size)
                self.cases[case]["rounds"].append(round_entry(summary))
                say(
                    f"case {case}, round {round_} of {self.size.rounds}: "
                    f"{summary['records_per_s'] or 0:,.0f} records/s"
                )

    def saturate(self, proc: CaseProcess, case: str, phase: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """One saturation phase of ``case`` on the loaded input topic: the process's result and the phase's
        settings. A rate made mostly of dead letters is flagged: it is not a sanitizing rate."""
        sat = self.phase_settings(case, phase, self.raw)
        proc.send(cmd="run", settings=sat, cap_s=self.size.cap_s, idle_s=self.size.idle_s)
        result: dict[str, Any] = proc.wait_for("result", self.size.cap_s + 600)
        if result["dead_lettered"] > 0.01 * max(result["records"], 1):
            label = case if phase == "sat" else f"{case} ({phase})"
            warning = (
                f"case {label}: {result['dead_lettered']:,} of {result['records']:,} records "
                f"dead-lettered ({result.get('dead_letter_reasons')}): not a sanitizing rate"
            )
            self.notes.append(warning)
            say(warning)
        return result, sat

    def latency(self, proc: CaseProcess, case: str, rate: float) -> dict[str, Any]:
        """``rate`` records/s offered by a paced producer for ``latency_s``, read back committed."""
        count = max(1, int(rate * self.size.latency_s))
        (raw,) = self.topics.create([f"{case}-lat.raw"])
        settings = self.phase_settings(case, "lat", raw)
        proc.send(cmd="run", settings=settings, cap_s=1e9, idle_s=1e9)
        proc.wait_assigned(120)
        logs = self.workdir / "logs"
        arrivals, sends = self.workdir / f"{case}-arrived.json", self.workdir / f"{case}-sent.json"
        timeout = self.size.latency_s + 60
        with (logs / f"case-{case}-latency.log").open("ab") as log:
            consumer = subprocess.Popen(
                [sys.executable, "-m", "bench.latency", "consume", "--bootstrap", self.bootstrap,
                 "--topic", settings["output_topic"], "--expect", str(count), "--timeout", str(timeout),
                 "--out", str(arrivals)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
            assert consumer.stdout is not None
            consumer.stdout.readline()  # "ready"
            say(f"case {case}: paced load at {rate:,.0f} records/s for {self.size.latency_s:.0f}s")
            producer = subprocess.run(
                [sys.executable, "-m", "bench.latency", "produce", "--bootstrap", self.bootstrap,
                 "--topic", raw, "--data", str(self.data_file), "--rate", str(rate),
                 "--seconds", str(self.size.latency_s), "--out", str(sends)],
                cwd=REPO, stderr=log, timeout=timeout + 60, check=False,
            )  # fmt: skip
            consumer.wait(timeout + 30)
        proc.send(cmd="stop")
        during = proc.wait_for("result", 120)
        if producer.returncode != 0 or consumer.returncode != 0:
            raise CaseFailed(f"case {case}: the latency producer or consumer failed (log: {logs})")
        sent = json.loads(sends.read_text(encoding="utf-8"))
        arrived = json.loads(arrivals.read_text(encoding="utf-8"))["arrived"]
        stats = latency_stats(sent, arrived)
        stats["worker"] = {k: during[k] for k in ("records", "seconds", "cpu_seconds", "stages")}
        return stats

    # -- case 6 ----------------------------------------------------------------------------------------

    def scaling(self, processes: int, round_: int = 1) -> None:
        """Case 6 with ``processes`` workers in one group; rounds after the first only add a rate."""
        key = f"6-{processes}"
        say(f"case {key}: starting {processes} process(es)" + (f", round {round_}" if round_ > 1 else ""))
        name = f"case-{key}" if round_ == 1 else f"case-{key}-round-{round_}"
        procs = [self.process(f"{name}-{i}", "stream-anon", "full", "hmac") for i in range(processes)]
        assert self.dataset is not None
        try:
            readies = [p.wait_for("ready", 600) for p in procs]
            tag = key if round_ == 1 else f"{key}-round-{round_}"
            (topic,) = self.topics.create([f"{tag}.raw"], self.size.partitions)
            base = self.phase_settings(tag, "sat", topic)
            for i, p in enumerate(procs):
                p.send(cmd="run", settings={**base, "transactional_id": f"{base['transactional_id']}-{i}"},
                       cap_s=self.size.cap_s, idle_s=self.size.idle_s + 2)  # fmt: skip
            # records go in only once the group has settled, so no rebalance falls inside the window
            self.wait_balanced(procs)
            head = self.dataset.head(self.size.scale_records)
            load(self.bootstrap, topic, head.keys, head.values)
            results = [p.wait_for("result", self.size.cap_s + 600) for p in procs]
            finished = [p.finish() for p in procs]
        except BaseException:
            for p in procs:
                p.kill()
            raise
        active = [r for r in results if r["records"]]
        records = sum(r["records"] for r in results)
        first = min(r["first_unix"] for r in active)
        last = max(r["last_unix"] for r in active)
        seconds = last - first
        cpu = sum(r["cpu_seconds"] for r in results)
        this_round = round_entry(
            {
                "records_per_s": records / seconds if seconds > 0 else None,
                "cpu_per_1k": 1000 * cpu / records if records else None,
            }
        )
        if round_ > 1:
            self.cases[key]["rounds"].append(this_round)
            say(f"case {key}, round {round_}: {this_round['records_per_s'] or 0:,.0f} records/s")
            return
        self.cases[key] = {
            **CASES[key],
            "records": records,
            "seconds": seconds,
            "records_per_s": records / seconds if seconds > 0 else None,
            "mb_per_s": records * self.dataset.mean_size / seconds / MB if seconds > 0 else None,
            "cpu_seconds": cpu,
            "cpu_per_1k": 1000 * cpu / records if records else None,
            "cpu_share": cpu / seconds if seconds > 0 else None,
            "max_rss_mb": max(usage.max_rss_mb for _, usage in finished),
            "per_process": [
                {
                    "records": r["records"],
                    "seconds": r["seconds"],
                    "max_rss_mb": usage.max_rss_mb,
                    "startup_s": ready.get("startup_s"),
                }
                for r, (_, usage), ready in zip(results, finished, readies, strict=True)
            ],
            "latency": None,
            "partitions": self.size.partitions,
            "rounds": [this_round],
        }
        rate = self.cases[key]["records_per_s"] or 0
        say(f"case {key}: {records:,} records in {seconds:.1f}s = {rate:,.0f}/s")

    def wait_balanced(self, procs: list[CaseProcess], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        settled_since: float | None = None
        while time.monotonic() < deadline:
            counts = [p.partitions for p in procs]
            if all(c > 0 for c in counts) and sum(counts) == self.size.partitions:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since >= 1.0:
                    return
            else:
                settled_since = None
            time.sleep(0.05)
        raise CaseFailed(
            f"the group of {len(procs)} process(es) did not settle: {[p.partitions for p in procs]}"
        )

    # -- recall ----------------------------------------------------------------------------------------

    def recall(self) -> dict[str, Any]:
        assert self.dataset is not None
        found: dict[str, dict[int, str | None]] = {}
        for case in ("4", "5"):
            if case not in self.outputs:
                return {}
            schema = self.derived.get(case) or raw_schema()
            found[case] = comments_of(read_output(self.bootstrap, self.outputs[case]), schema, self.where)
        both = sorted(set(found["4"]) & set(found["5"]))
        result: dict[str, Any] = {"records": len(both)}
        for case in ("4", "5"):
            result[case] = recall(self.dataset, {i: found[case][i] for i in both}).to_json()
        return result

    def cleanup(self) -> None:
        for proc in self.started.values():
            proc.kill()
        # the logs stay for inspection; the data is large and generated again by every run
        for name in ("data.bin", "keys.json"):
            (self.workdir / name).unlink(missing_ok=True)
        try:
            self.topics.delete_all()
        except Exception as exc:  # cleanup must not hide the run's own outcome
            say(f"could not delete the run's topics: {exc}")


def summarize(result: dict[str, Any], mean_size: float) -> dict[str, Any]:
    seconds = result["seconds"]
    records = result["records"]
    return {
        "records": records,
        "dead_lettered": result["dead_lettered"],
        "seconds": seconds,
        "records_per_s": records / seconds if seconds > 0 else None,
        "mb_per_s": records * mean_size / seconds / MB if seconds > 0 else None,
        "cpu_seconds": result["cpu_seconds"],
        "cpu_per_1k": 1000 * result["cpu_seconds"] / records if records else None,
        "cpu_share": result["cpu_seconds"] / seconds if seconds > 0 else None,
        "stages": result.get("stages", {}),
        "dead_letter_reasons": result.get("dead_letter_reasons", {}),
    }


def round_entry(summary: dict[str, Any]) -> dict[str, Any]:
    """What a round keeps of a case's summary: its rate, and its CPU per 1,000 records."""
    return {"records_per_s": summary["records_per_s"], "cpu_per_1k": summary["cpu_per_1k"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_stats(sent: dict[str, Any], arrived: dict[str, float]) -> dict[str, Any]:
    stamps = sent["sent"]
    pairs = sorted((stamps[k], arrived[k] - stamps[k]) for k in arrived if k in stamps)
    # the first 2% are the pipeline filling up; the figure is about the steady state
    steady = [ms * 1000 for _, ms in pairs[len(pairs) // 50 :]]
    if not steady:
        return {"records": 0, "lost": len(stamps), "offered_rate": sent["offered_rate"]}
    return {
        "records": len(steady),
        "lost": len(stamps) - len(pairs),
        "offered_rate": sent["offered_rate"],
        "p50_ms": percentile(steady, 0.50),
        "p99_ms": percentile(steady, 0.99),
        "max_ms": max(steady),
        "mean_ms": statistics.fmean(steady),
        "kind": "produce() call to arrival at a read_committed consumer",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks that everything works")
    parser.add_argument(
        "--out",
        type=Path,
        help="default: bench/results (a complete full run), bench/results/smoke, or bench/results/partial "
        "(a run with --only, --records, --cap, --latency-seconds, --profile or --set)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a worker setting for the stream-anon cases, e.g. poll_timeout_s=0.05 (JSON values accepted)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", help="comma-separated subset of cases: 1,2,3,4,5,6,7,8")
    parser.add_argument("--profile", action="store_true", help="run the case processes under py-spy")
    parser.add_argument("--records", type=int, help="records in the input topic (default: by size)")
    parser.add_argument("--cap", type=float, help="seconds a saturation phase may run (default: by size)")
    parser.add_argument("--latency-seconds", type=float, help="seconds of paced load (default: by size)")
    parser.add_argument(
        "--rounds", type=int, help="saturation rounds of cases 2, 7, 8, 3 and 6 (default: by size)"
    )
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    overrides = {
        "records": args.records,
        "cap_s": args.cap,
        "latency_s": args.latency_seconds,
        "rounds": args.rounds,
    }
    size = replace(size, **{k: v for k, v in overrides.items() if v is not None})
    partial = bool(args.only or args.profile or args.set or any(v is not None for v in overrides.values()))
    settings_overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, text = item.partition("=")
        try:
            settings_overrides[key] = json.loads(text)
        except ValueError:
            settings_overrides[key] = text
    if args.out is None:
        results_dir = REPO / "bench" / "results"
        args.out = (
            results_dir / "smoke" if args.smoke else results_dir / "partial" if partial else results_dir
        )
    bootstrap = os.environ.get("STREAM_ANON_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if not broker_answers(bootstrap):
        say(
            f"no Kafka broker answers at {bootstrap}: "
            "scripts/kafka.sh start, or set STREAM_ANON_BOOTSTRAP_SERVERS"
        )
        return 2
    only = set(args.only.split(",")) if args.only else {"1", "2", "3", "4", "5", "6", "7", "8"}
    started = datetime.now(UTC)
    load_start = machine.load_average()
    run = Run(size, bootstrap, args.out, args.seed, args.profile, settings_overrides)
    say(f"{size.name} run {run.id} against {bootstrap}; work files in {run.workdir}")
    try:
        run.prepare()
        if size.name == "smoke":
            run.prestart(only)
        if "1" in only:
            run.kafka_ceiling()
        for case, kind, schemas, key in WORKER_CASES:
            if case in only:
                run.worker_case(case, kind, schemas, key)
        if "6" in only:
            run.scaling(1)
            run.scaling(2)
        run.repeat_rounds(only)
        recall_result = run.recall()
    finally:
        run.cleanup()
    assert run.dataset is not None
    results = {
        "mode": size.name,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": (datetime.now(UTC) - started).total_seconds(),
        "machine": machine.describe(kafkaperf.kafka_version()),
        "load_average": {"start": load_start, "end": machine.load_average()},
        "size": asdict(size),
        "data": {
            "seed": args.seed,
            "records": len(run.dataset.values),
            "mean_record_bytes": run.dataset.mean_size,
            "comments_with_pii": sum(1 for p in run.dataset.planted if p) / len(run.dataset.planted),
            "schema": "schemas/feedback.avsc",
        },
        "settings": {
            "batch_size": BATCH_SIZE,
            "delivery": "exactly_once",
            "bootstrap": bootstrap,
            "overrides": settings_overrides,
            "only": sorted(only),
        },
        "cases": run.cases,
        "recall": recall_result,
        "notes": NOTES + run.notes,
    }
    if args.profile:
        results["profiles"] = {
            p.stem: profile.summarize(p) for p in sorted((run.workdir / "profiles").glob("*.txt"))
        }
    paths = report.write(results, args.out)
    say(
        "wrote "
        + ", ".join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths.values())
    )
    print(paths["md"].read_text(encoding="utf-8"))
    return 0


NOTES = [
    "records/s: records delivered (sanitized or dead-lettered) divided by the window from the first record "
    "consumed to the last batch committed, on a topic loaded before the case starts; start-up and warm-up "
    "(plan compiled, spaCy loaded) are outside the window.",
    "MB/s: input record bytes (2^20 bytes per MB) per second.",
    "CPU s / 1k rec: CPU seconds of the case's whole process (all threads, librdkafka's included) inside the "
    "window, per 1,000 records. For case 1 it is the JVM's total, start-up included.",
    "peak RSS: the kernel's high-water mark of the case process's resident memory (VmHWM), warm-up included.",
    "Latency: a paced producer offers half the case's own saturation rate; latency is from the produce() "
    "call to the sanitized record's arrival at a read_committed consumer (same clock); the first 2% are "
    "dropped. "
    "For case 1 it is ProducerPerformance's acknowledgement latency at half its rate.",
    "Case 1: records/s is the tool's own figure over its whole run (the JVM's and the client's start-up "
    "included); latest.json also holds the median of its 5-second progress lines (steady_records_per_s).",
    "Case 6 runs on a topic with several partitions; its rate is all processes' records over the span from "
    "the first record any of them consumed to the last batch any of them committed.",
    "Case 5 delivers at-least-once with auto-commit (what the naive loop does); cases 2, 3, 4, 6, 7 use "
    "transactions (exactly-once).",
]


if __name__ == "__main__":
    sys.exit(main())
