"""One thread per pod bound to the node: volumes, init containers in order, then the containers in
parallel, restarts with back-off, probes, deadline, graceful deletion, and the pod's status.

Restart back-off starts at 1 s and doubles up to 30 s (a kubelet uses 10 s to 5 min): tests and the demo
restart failing workers often, and minutes of back-off would only make them slow. A container that ran
for a minute or more restarts after the initial delay again.

`securityContext` is recorded in the spec but not enforced: containers run as the node's user. On a real
cluster the API server's Pod Security admission is what enforces it, and that runs here as well.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import logfiles
from .kubeapi import MERGE_PATCH, ApiError, KubeClient, path_segment
from .kubelet_server import LogTarget
from .podenv import ContainerConfigError, command_line, resolve_env
from .podstatus import (
    FAILED,
    SUCCEEDED,
    TERMINAL_PHASES,
    ContainerRecord,
    Terminated,
    now,
    parse_time,
    pod_conditions,
    pod_phase,
    pod_status,
)
from .probes import Prober
from .runtime import ContainerProcess, Launcher, LaunchSpec, Mount
from .volumes import PodVolumes, UnsupportedVolumeError, VolumeSource

Json = dict[str, Any]

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
BACKOFF_RESET_AFTER = 60.0
CONFIG_RETRY = 2.0
TICK = 0.25
MAX_MESSAGE = 4096
DEFAULT_GRACE = 30
DEFAULT_TERMINATION_PATH = "/dev/termination-log"

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def event(self, pod: Json, reason: str, message: str, *, warning: bool = False) -> None: ...


@dataclass
class NodeContext:
    """What every pod worker shares."""

    root: Path
    client: KubeClient
    launcher: Launcher
    source: VolumeSource
    events: EventSink
    service_env: dict[str, str]
    image_env: dict[str, str]
    allocatable: dict[str, str]
    stopping: threading.Event
    stop_grace: float = 5.0
    stop_deadline: float = math.inf  # monotonic time by which a stopping node kills everything


@dataclass
class Slot:
    """A container of the pod and its current run."""

    spec: Json
    record: ContainerRecord
    init: bool
    sidecar: bool = False
    process: ContainerProcess | None = None
    log_path: Path | None = None
    termination_file: Path | None = None
    started_monotonic: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    completed: bool = False  # an init container that exited 0, or a container that will not restart
    readiness: Prober | None = None
    liveness: Prober | None = None
    run_done: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.record.name


class LogNotFoundError(LookupError):
    pass


def _restart_policy(spec: Json) -> str:
    return str(spec.get("restartPolicy") or "Always")


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Json) -> None:
        self.ctx = ctx
        metadata = pod["metadata"]
        self.uid = str(metadata["uid"])
        self.namespace = str(metadata["namespace"])
        self.name = str(metadata["name"])
        self.key = f"{self.namespace}/{self.name}"
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._removed = False
        self.done = threading.Event()
        self.terminal = False
        spec: Json = pod["spec"]
        self.restart_policy = _restart_policy(spec)
        self.log_dir = ctx.root / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.data_dir = ctx.root / "pod-data" / self.uid
        self.init_slots = [
            Slot(
                c,
                ContainerRecord(c["name"], str(c.get("image", ""))),
                True,
                c.get("restartPolicy") == "Always",
            )
            for c in spec.get("initContainers") or []
        ]
        self.slots = [
            Slot(c, ContainerRecord(c["name"], str(c.get("image", ""))), False)
            for c in spec.get("containers") or []
        ]
        self.volumes = PodVolumes(pod, self.data_dir, ctx.root, ctx.source, ctx.allocatable)
        self.sandbox_ready = False
        self.initialized = not self.init_slots
        self.init_failed = False
        self.start_time = now()
        self.reason = ""
        self.message = ""
        self.fatal = False
        self._next_setup = 0.0
        self._written: Json | None = None
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"pod-{self.key}")

    # -- interface for the node ------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def update(self, pod: Json) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def remove(self) -> None:
        """The pod object is gone from the API: stop at once, without a status."""
        self._removed = True
        self._wake.set()

    @property
    def pod(self) -> Json:
        with self._lock:
            return self._pod

    def all_slots(self) -> list[Slot]:
        return [*self.init_slots, *self.slots]

    def log_target(self, container: str, previous: bool) -> LogTarget:
        slot = next((s for s in self.all_slots() if s.name == container), None)
        if slot is None:
            raise LogNotFoundError(f'container "{container}" is not valid for pod "{self.name}"')
        record = slot.record
        if previous:
            if record.last_terminated is None or record.restart_count == 0:
                raise LogNotFoundError(
                    f'previous terminated container "{container}" in pod "{self.name}" not found'
                )
            finished = threading.Event()
            finished.set()
            return LogTarget(self.log_dir / container / f"{record.restart_count - 1}.log", finished)
        if slot.log_path is None:
            waiting = f"is waiting to start: {record.waiting_reason}"
            raise LogNotFoundError(f'container "{container}" in pod "{self.name}" {waiting}')
        return LogTarget(slot.log_path, slot.run_done)

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._restore()
            self._loop()
        except Exception as error:
            log.exception("pod %s: worker failed", self.key)
            self._kill_all(0)
            with contextlib.suppress(Exception):
                self._finish(FAILED, "NodeError", f"the local node failed to run the pod: {error}")
        finally:
            if self._removed:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            self.done.set()

    def _loop(self) -> None:
        while True:
            pod = self.pod
            metadata = pod["metadata"]
            if self.ctx.stopping.is_set() or self._removed:
                self._kill_all(self.ctx.stop_grace if not self._removed else 0)
                return
            if metadata.get("deletionTimestamp"):
                self._delete(pod)
                return
            if self._deadline_exceeded(pod):
                grace = float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))
                self.ctx.events.event(
                    pod,
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline",
                    warning=True,
                )
                self._kill_all(grace)
                self._finish(
                    FAILED,
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline",
                )
                return
            if not self.sandbox_ready:
                self._setup_sandbox(pod)
            if self.sandbox_ready and not self.fatal:
                if not self.initialized:
                    self._step_init(pod)
                if self.initialized and not self.init_failed:
                    self._step_containers(pod)
                self._step_sidecars(pod)
                self._refresh_tokens()
            phase = self._phase()
            if phase in TERMINAL_PHASES:
                # Sidecars stop once the containers are done; a fatal error stops everything.
                self._kill_all(float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)))
                self._finish(phase, self.reason, self.message)
                return
            self._write_status(phase)
            self._wake.wait(TICK)
            self._wake.clear()

    # -- set-up ----------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Continue a pod that a previous run of the node started: the processes are gone."""
        status: Json = self.pod.get("status") or {}
        if status.get("startTime"):
            self.start_time = parse_time(str(status["startTime"]))
        previous = {
            str(s.get("name")): s
            for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        }
        conditions = {str(c.get("type")): c.get("status") for c in status.get("conditions") or []}
        if not previous:
            return
        log.info("pod %s: resuming after a restart of the node", self.key)
        for slot in self.all_slots():
            old = previous.get(slot.name)
            if not old:
                continue
            slot.record.restart_count = int(old.get("restartCount") or 0)
            state: Json = old.get("state") or {}
            if "terminated" in state:
                done = state["terminated"]
                slot.record.terminated = Terminated(
                    int(done.get("exitCode", 0)),
                    str(done.get("reason") or ""),
                    parse_time(str(done["finishedAt"])) if done.get("finishedAt") else now(),
                    parse_time(str(done["startedAt"])) if done.get("startedAt") else None,
                    str(done.get("message") or ""),
                )
                if slot.init and slot.record.terminated.exit_code == 0 and not slot.sidecar:
                    slot.completed = True
                elif not slot.init:
                    self._after_exit(slot, slot.record.terminated.exit_code)
            elif "running" in state:
                started = state["running"].get("startedAt")
                slot.record.terminated = Terminated(
                    137,
                    "ContainerStatusUnknown",
                    now(),
                    parse_time(str(started)) if started else None,
                    "The container could not be located when the pod was terminated",
                )
                self._after_exit(slot, 137)
        if conditions.get("Initialized") == "True":
            self.initialized = True
            for slot in self.init_slots:
                slot.completed = True

    def _setup_sandbox(self, pod: Json) -> None:
        if time.monotonic() < self._next_setup:
            return
        if self.ctx.launcher.problem is not None:
            self._fail_fatally("SandboxUnavailable", self.ctx.launcher.problem)
            return
        try:
            self.volumes.setup()
        except UnsupportedVolumeError as error:
            self._fail_fatally("UnsupportedVolume", str(error))
            return
        except (ContainerConfigError, ApiError, OSError) as error:
            self._next_setup = time.monotonic() + CONFIG_RETRY
            message = f"MountVolume.SetUp failed: {error}"
            if any(slot.record.waiting_message != message for slot in self.all_slots()):
                self.ctx.events.event(pod, "FailedMount", message, warning=True)
            for slot in self.all_slots():
                slot.record.waiting_message = message
            return
        self.sandbox_ready = True
        for slot in self.all_slots():
            slot.record.waiting_message = ""
            if not slot.init and not self.initialized:
                slot.record.waiting_reason = "PodInitializing"

    def _fail_fatally(self, reason: str, message: str) -> None:
        log.warning("pod %s: %s: %s", self.key, reason, message)
        self.ctx.events.event(self.pod, reason, message, warning=True)
        self.fatal = True
        self.reason, self.message = reason, message
        for slot in self.all_slots():
            slot.record.waiting_reason = reason
            slot.record.waiting_message = message

    def _refresh_tokens(self) -> None:
        try:
            self.volumes.refresh_tokens()
        except (ContainerConfigError, ApiError, OSError) as error:
            log.warning("pod %s: token refresh failed: %s", self.key, error)

    # -- containers ------------------------------------------------------------------------------

    def _step_init(self, pod: Json) -> None:
        for slot in self.init_slots:
            if slot.completed:
                continue
            if slot.sidecar and slot.record.running:
                continue  # a started sidecar lets the next init container start
            if slot.process is not None:
                code = slot.process.poll()
                if code is None:
                    return
                self._reap(slot, code)
                if code == 0 and not slot.sidecar:
                    slot.completed = True
                    continue
                if self.restart_policy == "Never" and not slot.sidecar:
                    self.init_failed = True
                    return
                self._schedule_restart(slot, pod)
                return
            if time.monotonic() >= slot.next_start:
                self._start(slot, pod)
                if slot.sidecar and slot.record.running:
                    continue
            return
        self.initialized = True
        for slot in self.slots:
            if slot.record.never_started and slot.record.waiting_reason == "PodInitializing":
                slot.record.waiting_reason = "ContainerCreating"

    def _step_containers(self, pod: Json) -> None:
        for slot in self.slots:
            self._step_one(slot, pod, self.restart_policy)

    def _step_sidecars(self, pod: Json) -> None:
        for slot in self.init_slots:
            if slot.sidecar and (slot.process is not None or slot.record.last_terminated is not None):
                self._step_one(slot, pod, "Always")

    def _step_one(self, slot: Slot, pod: Json, policy: str) -> None:
        if slot.process is not None:
            code = slot.process.poll()
            if code is None:
                if not self._probe(slot, pod):
                    return
                assert slot.record.terminated is not None
                code = slot.record.terminated.exit_code
            else:
                self._reap(slot, code)
            if self._should_restart(policy, code):
                self._schedule_restart(slot, pod)
            else:
                slot.completed = True
            return
        if not slot.completed and time.monotonic() >= slot.next_start:
            self._start(slot, pod)

    @staticmethod
    def _should_restart(policy: str, code: int) -> bool:
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def _after_exit(self, slot: Slot, code: int) -> None:
        """After a restored exit: restart (with the initial delay) or stay terminated."""
        policy = "Always" if slot.sidecar else self.restart_policy
        if (not slot.init and self._should_restart(policy, code)) or slot.sidecar:
            slot.record.last_terminated, slot.record.terminated = slot.record.terminated, None
            slot.record.waiting_reason = "ContainerCreating"
        elif not slot.init:
            slot.completed = True

    def _probe(self, slot: Slot, pod: Json) -> bool:
        """Run the probes of a running container; True when a failed liveness probe killed it."""
        if slot.liveness is not None:
            slot.liveness.step()
            if not slot.liveness.healthy:
                message = f"Container {slot.name} failed liveness probe, will be restarted"
                self.ctx.events.event(pod, "Killing", message)
                grace = float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))
                self._kill_slots([slot], grace)
                return True
        if slot.readiness is not None:
            slot.readiness.step()
            slot.record.ready = slot.readiness.healthy
        else:
            slot.record.ready = slot.record.running
        return False

    def _schedule_restart(self, slot: Slot, pod: Json) -> None:
        ran = time.monotonic() - slot.started_monotonic
        if slot.backoff == 0 or ran >= BACKOFF_RESET_AFTER:
            slot.backoff = INITIAL_BACKOFF
        else:
            slot.backoff = min(slot.backoff * 2, MAX_BACKOFF)
        slot.next_start = time.monotonic() + slot.backoff
        record = slot.record
        record.last_terminated, record.terminated = record.terminated, None
        record.waiting_reason = "CrashLoopBackOff"
        record.waiting_message = (
            f"back-off {slot.backoff:g}s restarting failed container={slot.name} "
            f"pod={self.name}_{self.namespace}({self.uid})"
        )
        self.ctx.events.event(
            pod, "BackOff", f"Back-off restarting failed container {slot.name}", warning=True
        )

    def _start(self, slot: Slot, pod: Json) -> None:
        record = slot.record
        if not record.never_started:
            record.restart_count += 1
        if record.terminated is not None:
            record.last_terminated, record.terminated = record.terminated, None
        spec = slot.spec
        try:
            env = resolve_env(pod, spec, self.ctx.source, self.ctx.service_env, self.ctx.allocatable)
            command = command_line(spec, env)
            mounts = self.volumes.mounts(spec, env)
        except UnsupportedVolumeError as error:
            self._fail_fatally("UnsupportedVolume", str(error))
            return
        except (ContainerConfigError, ApiError) as error:
            if not record.never_started:
                record.restart_count -= 1
            if record.waiting_message != str(error):  # one event per distinct error, as retries repeat it
                self.ctx.events.event(pod, "Failed", f"Error: {error}", warning=True)
            record.waiting_reason = "CreateContainerConfigError"
            record.waiting_message = str(error)
            slot.next_start = time.monotonic() + CONFIG_RETRY
            return
        run = record.restart_count
        run_dir = self.data_dir / "containers" / slot.name
        run_dir.mkdir(parents=True, exist_ok=True)
        termination_file = run_dir / f"{run}.termination-log"
        termination_file.write_bytes(b"")
        termination_file.chmod(0o666)
        termination_path = str(spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
        mounts.append(Mount(str(termination_file), termination_path))
        launch = LaunchSpec(
            command=command,
            env={**self.ctx.image_env, "HOSTNAME": str(pod["spec"].get("hostname") or self.name), **env},
            mounts=mounts,
            workdir=str(spec.get("workingDir") or "/"),
            log_path=self.log_dir / slot.name / f"{run}.log",
            error_file=run_dir / f"{run}.start-error",
        )
        slot.termination_file = termination_file
        slot.log_path = launch.log_path
        slot.run_done = threading.Event()
        slot.started_monotonic = time.monotonic()
        container_id = f"localnode://{uuid.uuid4().hex}"
        try:
            slot.process = ContainerProcess(self.ctx.launcher, launch)
        except OSError as error:
            record.running_since = None
            record.terminated = Terminated(128, "StartError", now(), now(), str(error), None, container_id)
            slot.run_done.set()
            if self._should_restart("Always" if slot.sidecar else self.restart_policy, 128) or slot.init:
                self._schedule_restart(slot, pod)
            else:
                slot.completed = True
            return
        record.running_since = now()
        record.terminated = None
        record.container_id = container_id
        record.waiting_message = ""
        record.ready = not spec.get("readinessProbe")
        if spec.get("readinessProbe"):
            slot.readiness = Prober(spec["readinessProbe"], spec, env, slot.process.pid, initially=False)
        if spec.get("livenessProbe"):
            slot.liveness = Prober(spec["livenessProbe"], spec, env, slot.process.pid, initially=True)
        self.ctx.events.event(pod, "Started", f"Started container {slot.name}")
        log.info(
            "pod %s: started %s (pid %d, run %d): %s", self.key, slot.name, slot.process.pid, run, command
        )

    def _reap(self, slot: Slot, code: int) -> None:
        """Record the end of a container run whose process exited with `code`."""
        process = slot.process
        assert process is not None
        process.output_done.wait(2.0)
        record = slot.record
        start_error = process.start_error()
        signum = process.killed_by
        if start_error is not None:
            code, reason, message = 128, "StartError", start_error
        else:
            reason = "Completed" if code == 0 else "Error"
            message = self._termination_message(slot, code)
        record.terminated = Terminated(
            exit_code=code,
            reason=reason,
            finished_at=now(),
            started_at=record.running_since,
            message=message,
            signal=signum,
            container_id=record.container_id,
        )
        record.running_since = None
        record.ready = False
        slot.process = None
        slot.readiness = slot.liveness = None
        slot.run_done.set()
        log.info("pod %s: container %s exited with %d (%s)", self.key, slot.name, code, reason)

    def _termination_message(self, slot: Slot, code: int) -> str:
        message = ""
        if slot.termination_file is not None:
            with contextlib.suppress(OSError), slot.termination_file.open("rb") as handle:
                message = handle.read(MAX_MESSAGE).decode("utf-8", "replace")
        policy = slot.spec.get("terminationMessagePolicy") or "File"
        if not message and policy == "FallbackToLogsOnError" and code != 0 and slot.log_path is not None:
            message = logfiles.fallback_message(slot.log_path)
        return message

    # -- stopping ----------------------------------------------------------------------------------

    def _kill_slots(self, slots: list[Slot], grace: float) -> None:
        """SIGTERM each running container's process group, SIGKILL after `grace` seconds, reap them."""
        running = [s for s in slots if s.process is not None]
        for slot in running:
            assert slot.process is not None
            slot.process.signal_group(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        killed = grace <= 0
        while running:
            for slot in list(running):
                assert slot.process is not None
                code = slot.process.poll()
                if code is not None:
                    self._reap(slot, code)
                    running.remove(slot)
            if not running:
                break
            expired = time.monotonic() >= min(deadline, self.ctx.stop_deadline)
            if not killed and (expired or self._removed):
                for slot in running:
                    assert slot.process is not None
                    slot.process.signal_group(signal.SIGKILL)
                killed = True
            time.sleep(0.05)

    def _kill_all(self, grace: float) -> None:
        # Containers first, then sidecars (which a kubelet stops last).
        self._kill_slots(self.slots, grace)
        self._kill_slots(self.init_slots, grace)

    def _deadline_exceeded(self, pod: Json) -> bool:
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline is None:
            return False
        return (now() - self.start_time).total_seconds() >= float(deadline)

    def _delete(self, pod: Json) -> None:
        """Graceful deletion: stop the containers within the grace period, report, then delete for good."""
        metadata = pod["metadata"]
        grace = metadata.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        if any(s.process is not None for s in self.all_slots()):
            self.ctx.events.event(pod, "Killing", "Stopping the pod's containers")
        self._kill_all(float(grace))
        succeeded = not self.fatal and all(
            s.record.terminated is not None and s.record.terminated.exit_code == 0 for s in self.slots
        )
        self._finish(SUCCEEDED if succeeded else FAILED, self.reason, self.message)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.ctx.client.request("DELETE", self._path(), body=body)
        except ApiError as error:
            if error.status not in (404, 409):
                log.warning("pod %s: delete failed: %s", self.key, error)

    # -- status --------------------------------------------------------------------------------------

    def _phase(self) -> str:
        if self.fatal:
            return FAILED
        return pod_phase(
            self.restart_policy, self.initialized, self.init_failed, [s.record for s in self.slots]
        )

    def _finish(self, phase: str, reason: str, message: str) -> None:
        for slot in self.all_slots():
            record = slot.record
            record.ready = False
            if phase in TERMINAL_PHASES and record.terminated is None and record.last_terminated is not None:
                # A container waiting to restart ends with its last run.
                record.terminated, record.last_terminated = record.last_terminated, None
        self.reason, self.message = reason, message
        self.terminal = phase in TERMINAL_PHASES
        for _ in range(20):
            if self._write_status(phase) or self._removed:
                break
            time.sleep(0.5)
        log.info("pod %s: %s %s", self.key, phase, reason)

    def _path(self) -> str:
        return f"/api/v1/namespaces/{path_segment(self.namespace)}/pods/{path_segment(self.name)}"

    def _write_status(self, phase: str) -> bool:
        """Patch the status if it changed; False when the API server refused it."""
        pod = self.pod
        existing: list[Json] = list((pod.get("status") or {}).get("conditions") or [])
        if self._written is not None:
            ours = {c["type"]: c for c in self._written["conditions"]}
            existing = [ours.pop(str(c.get("type")), c) for c in existing] + list(ours.values())
        gates = [str(g.get("conditionType")) for g in pod["spec"].get("readinessGates") or []]
        conditions = pod_conditions(
            phase=phase,
            sandbox_ready=self.sandbox_ready,
            initialized=self.initialized and not self.init_failed,
            init_containers=[s.record for s in self.init_slots],
            containers=[s.record for s in self.slots],
            readiness_gates=gates,
            existing=existing,
        )
        reason, message = (self.reason, self.message) if phase in TERMINAL_PHASES else ("", "")
        status = pod_status(
            phase=phase,
            conditions=conditions,
            init_containers=[s.record for s in self.init_slots],
            containers=[s.record for s in self.slots],
            start_time=self.start_time,
            reason=reason,
            message=message,
        )
        if status == self._written:
            return True
        try:
            self.ctx.client.request(
                "PATCH", self._path() + "/status", body={"status": status}, content_type=MERGE_PATCH
            )
        except (ApiError, OSError) as error:
            if isinstance(error, ApiError) and error.status == 404:
                self._removed = True
            else:
                log.warning("pod %s: status update failed: %s", self.key, error)
            return False
        self._written = status
        return True


def image_env(venv_bin: Path, node_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an image would define: the project's virtual environment comes first on PATH. An
    image holds the code the node itself runs: when the node was started with the absolute folders of a
    checkout on its PYTHONPATH (a working copy beside the installed one), its pods import from them too."""
    node_env = os.environ if node_env is None else node_env
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {
        "PATH": f"{venv_bin}:{system_path}",
        "HOME": "/root" if os.geteuid() == 0 else node_env.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    # Relative folders would name nothing from a pod's working directory.
    folders = [folder for folder in node_env.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(folder)]
    if folders:
        env["PYTHONPATH"] = os.pathsep.join(folders)
    return env


def service_env(api_port: int) -> dict[str, str]:
    """What a kubelet defines for the `kubernetes` Service, pointing at the API server itself."""
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{api_port}",
    }


def reverse_lookup(workers: Mapping[str, PodWorker], namespace: str, name: str) -> PodWorker | None:
    """The worker of a pod by name: the running one, else the latest to start."""
    candidates = [w for w in workers.values() if w.namespace == namespace and w.name == name]
    if not candidates:
        return None
    active = [w for w in candidates if not w.done.is_set()]
    return (active or candidates)[-1]
