"""Run a command and write its wall time and resource usage as JSON: `rusage.py OUT -- COMMAND...`.

Run as a script (not imported) by the benchmarks. Linux carries a process's peak RSS across fork and
exec, so a command started straight from the (large) benchmark process would report the benchmark's peak
as its own; started from this small launcher it reports at most the launcher's, a few MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: rusage.py OUT -- COMMAND...", file=sys.stderr)
        return 2
    out, command = argv[0], argv[2:]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(out, "w") as file:
        json.dump(
            {
                "returncode": process.returncode,
                "seconds": seconds,
                "max_rss_kib": usage.ru_maxrss,
                "user_seconds": usage.ru_utime,
                "system_seconds": usage.ru_stime,
            },
            file,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
