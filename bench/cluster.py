"""What the benchmarks on a local control plane share: the cluster with the CRDs installed and the operator
running as its own process, kubectl and API access to it, and watches that time when objects get somewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headwater_localcluster import binaries
from headwater_localcluster.control_plane import NODE_NAME, LocalCluster
from headwater_localcluster.operator import spawn_operator
from headwater_localcluster.services import pid_alive

from .processes import cpu_delta, cpu_of
from .results import REPO

log = logging.getLogger("bench.cluster")

SETTLE_SECONDS = 1.0
LABEL = re.compile(r'(\w+)="([^"]*)"')

Json = dict[str, Any]


Predicate = Callable[[Json], str | None]


class Watcher:
    """Watches one resource in one namespace from a thread and records, per key, when `satisfied` first
    gave that key (monotonic clock); and the same for each predicate of `also`, by its name. Objects arrive
    as plain JSON, never as the client's typed models, so that watching costs this process (which shares
    the cores with what it measures) little."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        args: tuple[Any, ...],
        satisfied: Predicate,
        also: Mapping[str, Predicate] | None = None,
    ) -> None:
        self.name = name
        self.list_call = list_call
        self.args = args
        self.predicates = {name: satisfied, **(also or {})}
        self.seen: dict[str, dict[str, float]] = {check: {} for check in self.predicates}
        self.error: BaseException | None = None
        self._resource_version = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        """List (the namespace is empty: a cheap call) and watch from that list's version, so that every
        change after this call is seen."""
        listing = self.list_call(*self.args, limit=1)
        if isinstance(listing, dict):
            self._resource_version = str(listing["metadata"]["resourceVersion"])
        else:
            self._resource_version = str(listing.metadata.resource_version)
        self._thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        try:
            while not self._stop.is_set():
                stream = watch.Watch(return_type="object")
                for event in stream.stream(
                    self.list_call,
                    *self.args,
                    resource_version=self._resource_version,
                    timeout_seconds=2,
                    _request_timeout=30,
                ):
                    received = time.monotonic()
                    body: Json = event["object"]
                    version = (body.get("metadata") or {}).get("resourceVersion")
                    if version:
                        self._resource_version = str(version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(body, received)
                    if self._stop.is_set():
                        stream.stop()
        except BaseException as error:  # reported by the waiting side
            self.error = error

    def _record(self, body: Json, received: float) -> None:
        for check, predicate in self.predicates.items():
            key = predicate(body)
            if key is not None:
                with self._lock:
                    self.seen[check].setdefault(key, received)

    def count(self, check: str | None = None) -> int:
        with self._lock:
            return len(self.seen[check or self.name])

    def last(self, check: str | None = None) -> float:
        with self._lock:
            return max(self.seen[check or self.name].values())

    def times(self, check: str | None = None) -> dict[str, float]:
        with self._lock:
            return dict(self.seen[check or self.name])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class ClusterBench:
    """A fresh local control plane (etcd, kube-apiserver, kube-controller-manager, the local node) in
    `root`, the CRDs of `crds/` installed and the operator running as its own process; `stop()` ends it
    all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = LocalCluster(root / "cluster")
        self.kubectl_binary = binaries.binary("kubectl")
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = root / "operator.log"
        self._api: Any = None

    # -- plumbing -------------------------------------------------------------------------------------

    def kubectl(self, *args: str, timeout: float = 120.0) -> str:
        argv = [
            str(self.kubectl_binary),
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--cache-dir={self.root / 'kube-cache'}",
            *args,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} exited with {result.returncode}: {result.stderr}")
        return result.stdout

    def api(self) -> Any:
        if self._api is None:
            from kubernetes import config

            self._api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        return self._api

    def pids(self) -> dict[str, int]:
        state = self.cluster.state
        assert state is not None
        assert self.operator is not None
        return {**state.pids, "operator": self.operator.pid}

    def operator_tail(self) -> str:
        text = self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""
        return text[-4000:]

    def check_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is not None:
            raise RuntimeError(f"the operator exited; its log:\n{self.operator_tail()}")

    # -- setup ----------------------------------------------------------------------------------------

    def start(self) -> None:
        missing = binaries.missing_binaries()
        if missing:
            raise RuntimeError(f"control plane binaries missing ({', '.join(missing)}): run make cluster-bin")
        log.info("starting a local control plane with its node")
        self.cluster.up()
        self.wait(self._node_ready, 90, f"node {NODE_NAME} not Ready")
        crds = sorted((REPO / "crds").glob("*.yaml"))
        for path in crds:
            self.kubectl("apply", "--server-side", "-f", str(path))
        names = [f"crd/{path.name.removesuffix('.yaml')}" for path in crds]
        self.kubectl("wait", *names, "--for=condition=Established", "--timeout=60s", timeout=90)
        log.info("starting the operator")
        self.operator = spawn_operator(self.cluster.kubeconfig, self.operator_log)

    def _node_ready(self) -> bool:
        from kubernetes import client

        try:
            node = client.CoreV1Api(self.api()).read_node(NODE_NAME)
        except Exception:
            return False
        conditions = node.status.conditions if node.status is not None else None
        return any(c.type == "Ready" and c.status == "True" for c in conditions or ())

    def wait(self, probe: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            self.check_operator()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{message} after {timeout:.0f}s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.operator is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.operator.pid, signal.SIGTERM)
            try:
                self.operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.operator.pid, signal.SIGKILL)
                self.operator.wait()
            self.operator = None
        state = self.cluster.state
        pids = dict(state.pids) if state is not None else {}
        self.cluster.down()
        alive = [f"{name} ({pid})" for name, pid in pids.items() if pid_alive(pid)]
        if alive:
            raise RuntimeError(f"processes of the control plane survived down(): {', '.join(alive)}")

    # -- measuring ------------------------------------------------------------------------------------

    def api_requests(self) -> dict[str, int]:
        """The API server's request counters (`apiserver_request_total`), summed per verb and resource."""
        text = self.kubectl("get", "--raw", "/metrics")
        counts: dict[str, int] = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(LABEL.findall(line))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            key = f"{labels.get('verb', '?')} {resource}"
            counts[key] = counts.get(key, 0) + round(float(line.rsplit(" ", 1)[1]))
        return counts

    # -- batches --------------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        return name

    def settle(self, timeout: float = 60.0, also: dict[str, int] | None = None) -> None:
        """Wait until the operator and the API server (and the processes of `also`) are idle (under 5% of a
        core over a second), so that one batch's aftermath does not slow the next."""
        watched = {key: pid for key, pid in self.pids().items() if key in ("operator", "kube-apiserver")}
        watched.update(also or {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = cpu_of(watched)
            time.sleep(SETTLE_SECONDS)
            used = cpu_delta(before, cpu_of(watched))
            if all(value <= 0.05 * SETTLE_SECONDS for value in used.values()):
                return
        log.warning("the cluster did not settle in %.0fs", timeout)


__all__ = ["ClusterBench", "Json", "Predicate", "Watcher"]
