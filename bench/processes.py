"""Helpers around processes: running a command under the resource launcher, and reading CPU time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("rusage.py")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """What the launcher measured of one command (and every process it waited for)."""

    returncode: int
    seconds: float
    max_rss_mib: float
    cpu_seconds: float


def measured(
    command: Sequence[str],
    *,
    folder: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> Usage:
    """Run `command` through the launcher; its stdout and stderr go to `<folder>/<name>.out|.err`."""
    report = folder / f"{name}.usage.json"
    with (folder / f"{name}.out").open("wb") as out, (folder / f"{name}.err").open("wb") as err:
        subprocess.run(
            [sys.executable, str(LAUNCHER), str(report), "--", *command],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=True,
        )
    data = json.loads(report.read_text())
    return Usage(
        returncode=int(data["returncode"]),
        seconds=float(data["seconds"]),
        max_rss_mib=int(data["max_rss_kib"]) / 1024,
        cpu_seconds=float(data["user_seconds"]) + float(data["system_seconds"]),
    )


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time (user + system) a live process has used; with its reaped children's when asked (the
    PostgreSQL server's backends are its children). 0 when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name (which is in parentheses): state is field 3, utime field 14.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    ticks = utime + stime + (cutime + cstime if with_children else 0)
    return ticks / CLOCK_TICKS


def cpu_of(pids: Mapping[str, int], *, with_children: bool = False) -> dict[str, float]:
    return {name: cpu_seconds(pid, with_children=with_children) for name, pid in pids.items()}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
