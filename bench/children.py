"""Starting the case processes and collecting what they report, including their resource usage.

Every case runs in a process of its own; the harness reaps it with ``os.wait4``, which returns that one
child's peak RSS and CPU seconds (user + system, every thread) from the kernel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import peak_rss_mb

REPO = Path(__file__).resolve().parent.parent


class CaseFailed(RuntimeError):
    """A case process died or did not answer in time; the message names the case and its log."""


@dataclass(frozen=True, slots=True)
class Usage:
    exit_code: int
    max_rss_mb: float  # VmHWM sampled while waiting (ru_maxrss would include the harness's own size)
    cpu_seconds: float
    wall_seconds: float


def reap(proc: subprocess.Popen[Any], started: float, timeout_s: float = 60.0) -> Usage:
    """Wait for ``proc`` and return its own rusage (not its siblings')."""
    deadline = time.monotonic() + timeout_s
    peak = 0.0
    try:
        while True:
            peak = max(peak, peak_rss_mb(proc.pid) or 0.0)  # gone once the process has exited
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): its poll() would reap the child
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    except ChildProcessError:  # already reaped elsewhere: its usage is lost
        return Usage(
            proc.returncode if proc.returncode is not None else -1, 0.0, 0.0, time.monotonic() - started
        )
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(proc.returncode, peak, usage.ru_utime + usage.ru_stime, time.monotonic() - started)


class CaseProcess:
    """``python -m bench.proc`` for one case: commands on stdin, JSON events on a pipe of their own."""

    def __init__(
        self, name: str, kind: str, spec: dict[str, Any], workdir: Path, prefix: list[str] | None = None
    ) -> None:
        self.name = name
        spec_path = workdir / f"{name}.spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        self.log_path = workdir / "logs" / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        self._log = self.log_path.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                *(prefix or []),
                sys.executable,
                "-m",
                "bench.proc",
                "--kind",
                kind,
                "--spec",
                str(spec_path),
                "--events-fd",
                str(write_fd),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            text=True,
        )
        os.close(write_fd)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.partitions = 0  # input partitions assigned to the running phase
        threading.Thread(target=self._read, args=(read_fd,), daemon=True).start()
        self.warnings: list[str] = []

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as events:
            for line in events:
                if not line.strip():
                    continue
                got = json.loads(line)
                if got["event"] == "assigned":  # a state, not a message: keep only the latest
                    self.partitions = int(got["partitions"])
                else:
                    self._events.put(got)
        self._events.put(None)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaseFailed(f"{self.name}: no {event!r} within {timeout_s:.0f}s (log: {self.log_path})")
            try:
                got = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if got is None:
                raise CaseFailed(f"{self.name}: process ended before {event!r} (log: {self.log_path})")
            if got["event"] == "warning":
                self.warnings.append(str(got.get("message")))
                continue
            if got["event"] == event:
                return got

    def wait_assigned(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.partitions <= 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise CaseFailed(
                    f"{self.name}: no partitions assigned within {timeout_s:.0f}s (log: {self.log_path})"
                )
            time.sleep(0.05)

    def finish(self) -> tuple[dict[str, Any], Usage]:
        """Ask the process to exit; its last report and the kernel's account of it (the peak RSS as the
        process itself read it last, the CPU seconds from ``wait4``)."""
        bye: dict[str, Any] = {}
        try:
            self.send(cmd="exit")
            bye = self.wait_for("bye", 60)
        except (CaseFailed, BrokenPipeError, OSError):
            pass
        usage = reap(self.proc, self.started)
        reported = (bye.get("process") or {}).get("max_rss_mb")
        if reported:
            usage = dataclasses.replace(usage, max_rss_mb=max(usage.max_rss_mb, float(reported)))
        self._log.close()
        return bye, usage

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            reap(self.proc, self.started)
        self._log.close()
