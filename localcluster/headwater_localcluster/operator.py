"""The Headwater operator as a process of this machine, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# One replica acting alone; health and metrics on ports of the system's choosing.
STANDALONE = ("--standalone", "--log-format=plain", "--health-port=0", "--metrics-port=0")


def spawn_operator(
    kubeconfig: Path,
    log: Path,
    arguments: Sequence[str] = STANDALONE,
    settings: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m headwater_operator` against the cluster of `kubeconfig`, its output appended to `log`, in
    a session of its own (so that stopping it stops whatever it started); `settings` are extra
    `HEADWATER_*` variables."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "headwater_operator", *arguments],
            env={**os.environ, **(settings or {}), "KUBECONFIG": str(kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
