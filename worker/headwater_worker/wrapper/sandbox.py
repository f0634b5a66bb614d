"""Running an untrusted collector module in a child process with CPU, memory and time limits.

The child (`harness`) gets no environment but `PATH` and the locale, so no DSN, S3 key or token; the
source's API key, when it needs one, travels in its request on stdin. Its address space, CPU seconds and
file writes are capped before it starts (`setrlimit`), and it is killed when it outlives its wall-clock
limit. Its points come back on a pipe, one line each, read as they come.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, NamedTuple

HARNESS = "headwater_worker.wrapper.harness"
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600
    memory_bytes: int = 768 << 20
    wall_seconds: float = 900.0


DRY_RUN_LIMITS = Limits(cpu_seconds=60, memory_bytes=512 << 20, wall_seconds=90.0)


class CollectorFailedError(Exception):
    """The module failed, or was stopped by a limit; `reason` is one word, `message` one line."""

    def __init__(self, reason: str, message: str, points: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.points = points


class RawPoint(NamedTuple):
    """A point as the child wrote it: the timestamp in UTC ISO form, the value, its series and attributes.
    A named tuple: one is made per point, and a tuple is made several times faster than a frozen
    dataclass."""

    timestamp: str
    value: float
    series: str
    attributes: str


@dataclass
class Finished:
    points: int = 0
    requests: int = 0
    sample_ended: bool = False


def _apply_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass
class CollectorProcess:
    """One run of a module: iterate `points()`, then read `finished`."""

    code: str
    since: datetime | None
    source: Mapping[str, Any]
    limits: Limits = field(default_factory=Limits)
    finished: Finished | None = None
    _stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    _timed_out: bool = False

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())

    def _kill(self, process: subprocess.Popen[str]) -> None:
        self._timed_out = True
        process.kill()

    def points(self) -> Iterator[RawPoint]:
        request = {
            "code": self.code,
            "since": self.since.isoformat() if self.since else None,
            "source": dict(self.source),
        }
        limits = self.limits
        process = subprocess.Popen(
            [sys.executable, "-I", "-m", HARNESS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(),
            text=True,
            bufsize=1 << 20,
            preexec_fn=lambda: _apply_limits(limits),
            close_fds=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        drain = threading.Thread(target=self._drain, args=(process.stderr,), daemon=True)
        drain.start()
        timer = threading.Timer(limits.wall_seconds, self._kill, args=(process,))
        timer.start()
        terminal: tuple[str, dict[str, Any]] | None = None
        count = 0
        try:
            process.stdin.write(json.dumps(request))
            process.stdin.close()
            for line in process.stdout:
                if line.startswith("#"):
                    tag, _, body = line.partition("\t")
                    terminal = (tag, json.loads(body))
                    break
                timestamp, value, series, attributes = line.rstrip("\n").split("\t")
                number = float(value)
                if number - number != 0.0:  # not finite; inline, as this runs once a point
                    raise CollectorFailedError("InvalidPoint", f"value {value} is not finite", count)
                count += 1
                yield RawPoint(timestamp, number, series, attributes)
            process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
            drain.join(timeout=5)
        self.finished = self._outcome(process.returncode, terminal, count)

    def _outcome(self, returncode: int, terminal: tuple[str, dict[str, Any]] | None, count: int) -> Finished:
        if terminal is not None and terminal[0] == "#end":
            body = terminal[1]
            return Finished(count, int(body.get("requests") or 0), bool(body.get("sampleEnded")))
        if terminal is not None:
            body = terminal[1]
            raise CollectorFailedError(str(body["reason"]), str(body["message"]), count)
        if self._timed_out:
            raise CollectorFailedError(
                "TimeLimit",
                f"the collector ran longer than its limit of {self.limits.wall_seconds:g} s",
                count,
            )
        if returncode == -signal.SIGXCPU:
            raise CollectorFailedError(
                "CpuLimit",
                f"the collector used more than its limit of {self.limits.cpu_seconds} CPU seconds",
                count,
            )
        tail = " | ".join(line for line in self._stderr if line)[-500:]
        if returncode < 0 and tail.endswith("MemoryError"):
            raise CollectorFailedError("MemoryLimit", "the collector ran out of its memory limit", count)
        described = f"signal {signal.Signals(-returncode).name}" if returncode < 0 else f"exit {returncode}"
        raise CollectorFailedError("CollectorCrashed", f"the collector died ({described}): {tail}", count)
