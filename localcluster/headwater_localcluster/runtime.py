"""Container processes: each one a new session (its own process group) in its own mount and PID namespaces
(see sandbox.py), with stdout and stderr pumped into a CRI-format log file."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import logfiles

SANDBOX = Path(__file__).resolve().parent / "sandbox.py"
START_ERROR = 128

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass
class LaunchSpec:
    command: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    workdir: str
    log_path: Path
    error_file: Path


def sandbox_problem() -> str | None:
    """Why containers cannot be isolated on this machine, or None when they can."""
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(SANDBOX), "--check"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"the container sandbox could not run: {error}"
    if result.returncode == 0:
        return None
    detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
    return (
        "the local node runs each container in its own mount and PID namespaces, which needs root "
        f"(CAP_SYS_ADMIN): {detail}"
    )


# What stands in for the container image: the project (whose virtual environment installs it in editable
# mode) and the Python installation. A volume mounted over a folder holding them (an emptyDir at /tmp while
# the checkout lives under /tmp) must not hide them.
IMAGE_FOLDERS = sorted(
    {str(Path(folder).resolve()) for folder in (SANDBOX.parents[2], sys.prefix, sys.base_prefix)}
)


class Launcher:
    """Starts every container from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not only the process, so the
    containers must not be forked by short-lived worker threads.
    """

    def __init__(self) -> None:
        self.problem = sandbox_problem()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="launcher")

    def argv(self, spec: LaunchSpec) -> list[str]:
        mounts = sorted(spec.mounts, key=lambda m: len(Path(m.target).parts))
        config = {
            "parent": os.getpid(),
            "mounts": [[m.source, m.target, m.read_only] for m in mounts],
            "workdir": spec.workdir,
            "error_file": str(spec.error_file),
            "image": IMAGE_FOLDERS,
        }
        return [sys.executable, "-I", "-S", str(SANDBOX), json.dumps(config), *spec.command]

    def spawn(self, spec: LaunchSpec) -> subprocess.Popen[bytes]:
        argv = self.argv(spec)
        return self._executor.submit(self._spawn, argv, spec.env).result()

    @staticmethod
    def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)


class ContainerProcess:
    """One run of one container."""

    def __init__(self, launcher: Launcher, spec: LaunchSpec) -> None:
        spec.error_file.parent.mkdir(parents=True, exist_ok=True)
        spec.error_file.unlink(missing_ok=True)
        self.spec = spec
        self.writer = logfiles.LogWriter(spec.log_path)
        self.output_done = threading.Event()
        try:
            self.process = launcher.spawn(spec)
        except BaseException:
            self.writer.close()
            raise
        self.pid = self.process.pid
        self._exit: int | None = None
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        pumps = [
            threading.Thread(
                target=logfiles.pump,
                args=(pipe, name, self.writer),
                daemon=True,
                name=f"log-{self.pid}-{name}",
            )
            for pipe, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))
        ]
        for pump in pumps:
            pump.start()
        threading.Thread(target=self._close_log, args=(pumps,), daemon=True, name=f"log-{self.pid}").start()

    def _close_log(self, pumps: list[threading.Thread]) -> None:
        for pump in pumps:
            pump.join()
        self.writer.close()
        self.output_done.set()

    def poll(self) -> int | None:
        """The exit status once the process has exited (128+N for signal N); then its group is killed,
        as every process of a container dies with the container's first process."""
        if self._exit is None:
            code = self.process.poll()
            if code is None:
                return None
            self._exit = 128 - code if code < 0 else code
            self.signal_group(signal.SIGKILL)
        return self._exit

    @property
    def killed_by(self) -> int | None:
        code = self.process.returncode
        return -code if code is not None and code < 0 else None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def start_error(self) -> str | None:
        try:
            return self.spec.error_file.read_text() or "start error"
        except FileNotFoundError:
            return None
