"""The first program of every container. It is run by path with `python -I -S`, so it imports nothing but
the standard library:

    sandbox.py '<json config>' command [args...]
    sandbox.py --check          # exit 0 when namespaces can be created here

Three processes make a container:

1. the *keeper* (the node's child): dies with the node (PR_SET_PDEATHSIG), creates a private mount
   namespace and a PID namespace, bind-mounts the pod's volumes at their mount paths, forks (2), waits and
   exits with its status. It ignores SIGTERM, which the node sends to the whole process group.
2. the *init* of the PID namespace: dies with the keeper, mounts /proc, forks (3), reaps orphans and exits
   with the status of (3). When it exits, the kernel kills every process left in the namespace, so
   nothing a container started outlives it, even when the node itself is killed.
3. the container's command, PID 2 of its namespace, with default signal handling.

The config holds `parent` (the node's process id), `mounts` (a list of `[source, target, read_only]`,
parents before children), `workdir` and `error_file`. A failure before the command starts is written to
`error_file` and exits with 128, which the node reports as the reason `StartError`.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import stat
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
START_ERROR = 128
IGNORED_BY_KEEPER = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RESTORED = (*IGNORED_BY_KEEPER, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGQUIT)

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> int:
    return int(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            None,
        )
    )


_error_folder: int | None = None  # the error file's folder, opened before any mount can hide it


def _fail(error_file: str, message: str) -> None:
    try:
        name = os.path.basename(error_file)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = (
            os.open(name, flags, 0o644, dir_fd=_error_folder)
            if _error_folder
            else os.open(error_file, flags, 0o644)
        )
        with os.fdopen(fd, "w") as written:
            written.write(message)
    finally:
        print(message, file=sys.stderr, flush=True)
        os._exit(START_ERROR)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def namespaces() -> None:
    """A private mount namespace; the next child starts a new PID namespace."""
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "creating the container's namespaces")
    _check(_mount(None, "/", None, MS_REC | MS_PRIVATE), "making the mounts private")


def bind_all(mounts: list[tuple[str, str, bool]], image: list[str]) -> None:
    """Bind every volume at its mount path, then bring back any image folder a volume has hidden.

    Each source is opened before anything is mounted: a volume mounted over a folder (an emptyDir at
    `/tmp`, say) would otherwise hide the sources of the mounts after it that live below that folder.
    """
    opened = [
        (os.open(source, os.O_PATH | os.O_CLOEXEC), source, target, ro) for source, target, ro in mounts
    ]
    kept = [(os.open(folder, os.O_PATH | os.O_CLOEXEC), folder) for folder in image]
    for fd, source, target, read_only in opened:
        bind(fd, source, target, read_only)
        os.close(fd)
    targets = [Path(target) for _, target, _ in mounts]
    for fd, folder in kept:
        if any(Path(folder).is_relative_to(target) for target in targets):
            bind(fd, folder, folder, read_only=True)
        os.close(fd)


def bind(fd: int, source: str, target: str, read_only: bool) -> None:
    target_path = Path(target)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        target_path.mkdir(parents=True, exist_ok=True)
    else:
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if not target_path.exists():
            target_path.touch()
    _check(
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC), f"bind mount of {source} at {target}"
    )
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        # The source's own mount may carry nosuid/nodev, which a read-only remount must then keep.
        if _mount(None, target, None, flags) != 0:
            _check(_mount(None, target, None, flags | MS_NOSUID | MS_NODEV), f"read-only remount of {target}")


def run_command(command: list[str], workdir: str, error_file: str) -> None:
    """(3): the container's command."""
    for signum in RESTORED:
        signal.signal(signum, signal.SIG_DFL)
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
    except OSError as error:
        _fail(error_file, f"working directory {workdir}: {error}")
    if not command:
        _fail(error_file, "no command specified: the local node has no image entrypoint; set command or args")
    try:
        os.execvpe(command[0], command, os.environ)  # noqa: S606 - the container's own command
    except OSError as error:
        detail = "executable file not found in $PATH" if isinstance(error, FileNotFoundError) else str(error)
        _fail(error_file, f'exec: "{command[0]}": {detail}')


def run_init(keeper_alive: int, command: list[str], workdir: str, error_file: str) -> None:
    """(2): PID 1 of the container."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if select.select([keeper_alive], [], [], 0)[0]:
        os._exit(START_ERROR)  # the keeper is gone: its end of the pipe closed before we could notice
    # Only this namespace's processes in `ps`; failure is harmless (the machine's /proc stays).
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    child = os.fork()
    if child == 0:
        run_command(command, workdir, error_file)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            os._exit(_exit_code(status))


def main(argv: list[str]) -> None:
    if argv == ["--check"]:
        namespaces()
        return
    config = json.loads(argv[0])
    command = argv[1:]
    error_file = str(config["error_file"])
    global _error_folder
    _error_folder = os.open(os.path.dirname(error_file) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # Die with the node: its threads spawn us, and the node stops every container before it exits.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(config["parent"]):
        os._exit(START_ERROR)
    for signum in IGNORED_BY_KEEPER:
        signal.signal(signum, signal.SIG_IGN)
    try:
        namespaces()
        bind_all(
            [(str(source), str(target), bool(ro)) for source, target, ro in config["mounts"]],
            [str(folder) for folder in config.get("image", [])],
        )
    except OSError as error:
        _fail(error_file, str(error))
    keeper_alive, keeper_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(keeper_end)
        run_init(keeper_alive, command, str(config.get("workdir") or "/"), error_file)
    os.close(keeper_alive)
    _, status = os.waitpid(child, 0)
    os._exit(_exit_code(status))


if __name__ == "__main__":
    main(sys.argv[1:])
