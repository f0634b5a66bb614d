"""Throwaway PostgreSQL and S3 protocol servers for the tests and the local demo.

`PostgresServer` runs a cluster made with Debian's PostgreSQL packages; `S3Server` runs moto's S3
endpoint. Both listen on 127.0.0.1 on a free port, record what they started in `<root>/state.json`
(so that another process, such as `python -m headwater_localcluster postgres down`, can find it again)
and leave no process behind after `stop()`.

PostgreSQL refuses to run as root. When we are root the cluster is initialised and run as the
`postgres` system user that Debian's package creates. That user must be able to reach its data
directory and socket folder: when `root` lies under a folder it cannot traverse (pytest's temporary
folders are 0700), the data directory and socket live in a dedicated folder under the system temporary
directory, owned by that user, recorded in the state file and removed by `destroy()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POSTGRES_LIB = Path("/usr/lib/postgresql")
POSTGRES_SYSTEM_USER = "postgres"
SUPERUSER = "headwater"
# sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>" to the socket folder.
MAX_SOCKET_DIR_LENGTH = 90
STOP_GRACE_SECONDS = 15.0
FAKE_AWS_ACCESS_KEY_ID = "testing"
FAKE_AWS_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto accepts any credentials
S3_REGION = "us-east-1"


class ServiceError(RuntimeError):
    """A local service could not be started or stopped."""


# -- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def process_runs(pid: int, needle: str) -> bool:
    """Whether `pid` is alive and its command line contains `needle`: a pid in a state file may since have
    been reused by an unrelated process, which must not be signalled."""
    if pid <= 0 or not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return needle in cmdline


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ...) of live processes."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            yield int(entry.name), fields


def process_group_members(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid`."""
    return [pid for pid, fields in _live_processes() if int(fields[2]) == pgid]


def child_processes(pid: int) -> list[int]:
    """Direct children of `pid` that are alive."""
    return [child for child, fields in _live_processes() if int(fields[1]) == pid]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid`, children first."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for parent in frontier for child in child_processes(parent)]
        found.extend(children)
        frontier = children
    return found


def stop_process_group(pid: int, first_signal: signal.Signals, grace: float = STOP_GRACE_SECONDS) -> None:
    """Send `first_signal` to `pid` and wait for it, its process group and its descendants to go; after
    `grace` seconds, kill whatever is left of them."""
    leftovers = set(descendants(pid)) if pid_alive(pid) else set()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, first_signal)

    def remaining() -> list[int]:
        return [p for p in {pid, *leftovers, *process_group_members(pid)} if pid_alive(p)]

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not remaining():
            return
        time.sleep(0.05)
    # Children of a process that would not stop (PostgreSQL's start their own sessions) go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for other in remaining():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(other, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and remaining():
        _reap(pid)
        time.sleep(0.05)


# -- PostgreSQL -----------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The bin folder of the newest PostgreSQL major version installed from Debian's packages."""
    versions: list[tuple[int, Path]] = []
    if POSTGRES_LIB.is_dir():
        for entry in POSTGRES_LIB.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "initdb").is_file():
                versions.append((int(entry.name), entry / "bin"))
    if not versions:
        raise ServiceError(
            f"no PostgreSQL server found ({POSTGRES_LIB}/<version>/bin/initdb): run `make system-deps`"
        )
    return max(versions)[1]


@dataclass
class PostgresState:
    pid: int
    port: int
    password: str
    runtime_dir: str
    dedicated_runtime_dir: bool
    version: str

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> PostgresState | None:
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None


@dataclass(frozen=True)
class _RunAs:
    """Who runs initdb and postgres: the `postgres` system user when we are root, else ourselves."""

    uid: int
    gid: int

    @classmethod
    def choose(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            raise ServiceError(
                f"running as root, PostgreSQL must run as the `{POSTGRES_SYSTEM_USER}` system user, "
                "which does not exist: run `make system-deps`"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.switches:
            os.chown(path, self.uid, self.gid)

    def can_use(self, folder: Path) -> bool:
        """Whether this user can traverse `folder` and every folder above it."""
        if not self.switches:
            return True
        result = subprocess.run(
            ["test", "-x", str(folder)], check=False, cwd="/", env=_minimal_env(), **self.popen_kwargs()
        )
        return result.returncode == 0


def _minimal_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}


class PostgresServer:
    """A throwaway PostgreSQL cluster rooted in a folder; see the module docstring."""

    def __init__(self, root: Path, *, superuser: str = SUPERUSER) -> None:
        self.root = root.resolve()
        self.superuser = superuser
        self.state_file = self.root / "state.json"
        self.log_file = self.root / "postgres.log"
        self.state: PostgresState | None = PostgresState.load(self.state_file)
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------------

    def _require_state(self) -> PostgresState:
        if self.state is None:
            raise ServiceError(f"PostgreSQL at {self.root} has not been started")
        return self.state

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._require_state().port

    @property
    def password(self) -> str:
        return self._require_state().password

    @property
    def pid(self) -> int:
        return self._require_state().pid

    @property
    def data_dir(self) -> Path:
        return Path(self._require_state().runtime_dir) / "data"

    @property
    def socket_dir(self) -> Path:
        return Path(self._require_state().runtime_dir) / "socket"

    def dsn(self, dbname: str = "postgres") -> str:
        state = self._require_state()
        return f"postgresql://{self.superuser}:{state.password}@{self.host}:{state.port}/{dbname}"

    # -- lifecycle -------------------------------------------------------------------------------

    def _owns(self, state: PostgresState) -> bool:
        return process_runs(state.pid, str(Path(state.runtime_dir) / "data"))

    def is_running(self) -> bool:
        state = self.state
        if state is None or not self._owns(state):
            return False
        return self._accepts_connections()

    def start(self, timeout: float = 60.0) -> Self:
        """Initialise the cluster if needed and start it; a server already running is left as it is."""
        if self.is_running():
            return self
        self.stop()
        bin_dir = postgres_bin_dir()
        run_as = _RunAs.choose()
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._reusable_state(bin_dir)
        if state is None:
            state = self._initdb(bin_dir, run_as)
        self.state = state
        last_error = ""
        for _attempt in range(3):
            state.port = free_port()
            self._spawn(bin_dir, run_as, state)
            state.save(self.state_file)
            try:
                self._wait_ready(timeout)
                return self
            except ServiceError as error:
                last_error = str(error)
                self._stop_pid(state.pid)
                # Another process may have taken the port between choosing and binding it: try again.
                if "in use" not in self._log_tail():
                    break
        raise ServiceError(last_error)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): active sessions are rolled back; nothing keeps running."""
        state = self.state
        if state is None:
            return
        if self._owns(state):
            self._stop_pid(state.pid)
        elif self._process is not None:
            self._process.wait()
        self._process = None

    def destroy(self) -> None:
        """Stop the server and remove its data, including a dedicated runtime folder."""
        self.stop()
        state = self.state
        if state is not None and state.dedicated_runtime_dir:
            shutil.rmtree(state.runtime_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.state = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- databases -------------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create a database owned by the superuser; returns its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- internals -------------------------------------------------------------------------------

    def _reusable_state(self, bin_dir: Path) -> PostgresState | None:
        """The previous cluster of this root, when its data directory is intact and of this version."""
        state = self.state
        if state is None:
            return None
        data = Path(state.runtime_dir) / "data"
        if state.version == bin_dir.parent.name and (data / "PG_VERSION").is_file():
            return state
        if state.dedicated_runtime_dir:
            shutil.rmtree(state.runtime_dir, ignore_errors=True)
        return None

    def _runtime_dir(self, run_as: _RunAs) -> tuple[Path, bool]:
        """Where data and socket live: inside root when the server's user can reach it, else a dedicated
        folder under the system temporary directory (also when root's path is too long for a socket)."""
        inside = self.root / "pg"
        if len(str(inside / "socket")) <= MAX_SOCKET_DIR_LENGTH and run_as.can_use(self.root):
            if inside.exists():
                shutil.rmtree(inside)
            inside.mkdir(mode=0o700)
            return inside, False
        dedicated = Path(tempfile.mkdtemp(prefix="headwater-pg-"))
        return dedicated, True

    def _initdb(self, bin_dir: Path, run_as: _RunAs) -> PostgresState:
        runtime, dedicated = self._runtime_dir(run_as)
        runtime.chmod(0o700)
        run_as.chown(runtime)
        for sub in ("data", "socket"):
            (runtime / sub).mkdir(mode=0o700)
            run_as.chown(runtime / sub)
        password = secrets.token_urlsafe(18)
        pwfile = runtime / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        run_as.chown(pwfile)
        try:
            with self.log_file.open("ab") as log:
                result = subprocess.run(
                    [
                        str(bin_dir / "initdb"),
                        f"--pgdata={runtime / 'data'}",
                        f"--username={self.superuser}",
                        f"--pwfile={pwfile}",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-locale",
                        "--no-sync",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=runtime,
                    env=_minimal_env(),
                    check=False,
                    **run_as.popen_kwargs(),
                )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            if dedicated:
                shutil.rmtree(runtime, ignore_errors=True)
            raise ServiceError(f"initdb failed ({result.returncode}):\n{self._log_tail()}")
        return PostgresState(
            pid=0,
            port=0,
            password=password,
            runtime_dir=str(runtime),
            dedicated_runtime_dir=dedicated,
            version=bin_dir.parent.name,
        )

    def _spawn(self, bin_dir: Path, run_as: _RunAs, state: PostgresState) -> None:
        runtime = Path(state.runtime_dir)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(state.port),
            "unix_socket_directories": str(runtime / "socket"),
            # Throwaway data: durability is not worth the latency.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "max_connections": "200",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(runtime / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=runtime,
                env=_minimal_env(),
                start_new_session=True,
                **run_as.popen_kwargs(),
            )
        state.pid = self._process.pid

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _wait_ready(self, timeout: float) -> None:
        state = self._require_state()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(state.pid):
                _reap(state.pid)
                raise ServiceError(f"postgres exited during start-up:\n{self._log_tail()}")
            if self._accepts_connections():
                return
            time.sleep(0.1)
        raise ServiceError(f"postgres not ready after {timeout:.0f}s:\n{self._log_tail()}")

    def _stop_pid(self, pid: int) -> None:
        if pid > 0:
            stop_process_group(pid, signal.SIGINT)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- S3 ---------------------------------------------------------------------------------------------------


@dataclass
class S3State:
    pid: int
    port: int

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> S3State | None:
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None


class S3Server:
    """moto's S3 protocol endpoint on 127.0.0.1.

    By default it runs as its own process (`python -m moto.server`), recorded in `<root>/state.json`, so
    that it outlives the process that started it (the demo) and shares no state with the caller.
    `in_process=True` runs moto's threaded server inside the calling process instead.
    """

    region = S3_REGION
    access_key_id = FAKE_AWS_ACCESS_KEY_ID
    secret_access_key = FAKE_AWS_SECRET_ACCESS_KEY

    def __init__(self, root: Path, *, in_process: bool = False) -> None:
        self.root = root.resolve()
        self.in_process = in_process
        self.state_file = self.root / "state.json"
        self.log_file = self.root / "s3.log"
        self.state: S3State | None = None if in_process else S3State.load(self.state_file)
        self._threaded: Any = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self.state is None:
            raise ServiceError(f"S3 server at {self.root} has not been started")
        return self.state.port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK at this server with its fake credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def client(self) -> S3Client:
        """A boto3 S3 client for this server (fake credentials, path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"}),
        )

    def _owns(self, state: S3State) -> bool:
        return process_runs(state.pid, f"moto.server -H 127.0.0.1 -p {state.port}")

    def is_running(self) -> bool:
        if self.state is None:
            return False
        if self._threaded is None and not self._owns(self.state):
            return False
        return self._responds()

    def start(self, timeout: float = 60.0) -> Self:
        """Start the server; one already running is left as it is."""
        if self.is_running():
            return self
        self.stop()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.in_process:
            from moto.server import ThreadedMotoServer

            port = free_port()
            self._threaded = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._threaded.start()
            self.state = S3State(pid=os.getpid(), port=port)
        else:
            port = free_port()
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.root,
                    start_new_session=True,
                )
            self.state = S3State(pid=self._process.pid, port=port)
            self.state.save(self.state_file)
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        if self._threaded is not None:
            self._threaded.stop()
            self._threaded = None
            self.state = None
            return
        state = self.state
        if state is None:
            return
        if self._owns(state):
            stop_process_group(state.pid, signal.SIGTERM)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _responds(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ServiceError(f"moto server exited during start-up; see {self.log_file}")
            if self._responds():
                return
            time.sleep(0.1)
        raise ServiceError(f"moto server not ready after {timeout:.0f}s; see {self.log_file}")


# -- command line -------------------------------------------------------------------------------------------

SERVICE_COMMANDS = ("postgres", "s3")


def add_service_commands(commands: Any) -> None:
    """Add `postgres up|down|status` and `s3 up|down|status` to the cluster's argparse subcommands."""
    for name, what in (("postgres", "a PostgreSQL server"), ("s3", "an S3 protocol endpoint (moto)")):
        parser = commands.add_parser(name, help=f"start or stop {what} for the demo, under <root>/services")
        parser.add_argument("action", choices=("up", "down", "status"))


def run_service_command(command: str, action: str, cluster_root: Path) -> int:
    """Run a background service for the demo; `up` is idempotent, `down` does nothing when it is stopped."""
    root = cluster_root / "services" / command
    if command == "postgres":
        postgres = PostgresServer(root)
        if action == "up":
            postgres.start()
            print(f"PostgreSQL on 127.0.0.1:{postgres.port} (pid {postgres.pid}, log {postgres.log_file})")
            print(f"export DATABASE_URL={postgres.dsn()}")
            return 0
        if action == "down":
            postgres.stop()
            print("PostgreSQL stopped")
            return 0
        running = postgres.is_running()
        print(f"PostgreSQL {'running on 127.0.0.1:' + str(postgres.port) if running else 'stopped'}")
        return 0 if running else 1
    s3 = S3Server(root)
    if action == "up":
        s3.start()
        assert s3.state is not None
        print(f"S3 endpoint {s3.endpoint_url} (pid {s3.state.pid}, log {s3.log_file})")
        print(f"export AWS_ENDPOINT_URL_S3={s3.endpoint_url}")
        return 0
    if action == "down":
        s3.stop()
        print("S3 endpoint stopped")
        return 0
    running = s3.is_running()
    print(f"S3 endpoint {s3.endpoint_url + ' running' if running else 'stopped'}")
    return 0 if running else 1
