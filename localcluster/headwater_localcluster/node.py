"""The local node: a small kubelet (and scheduler) for the local control plane.

It registers the Node `localnode`, keeps its Lease and Ready heartbeat fresh, binds every pending Pod of
the default scheduler to itself and runs the Pods bound to it as local processes (see podworker.py), each
container in its own mount and PID namespaces (sandbox.py), with the project's virtual environment standing
in for the images. It serves container logs to the API server on the kubelet port (kubelet_server.py).

What it is not: there is no network isolation (every pod has the IP 127.0.0.1 and shares the machine's
ports), no resource limits, no image handling and no user switching (securityContext is not enforced;
the API server's Pod Security admission still validates it). Scheduling ignores affinities, taints and
resources; only `nodeSelector`, scheduling gates and PersistentVolumeClaims not bound yet keep a pod
pending. The kubelet endpoint serves logs only: no exec, attach or port-forward.

Containers see the machine's file system with the pod's volumes mounted over it. A mount path that does not
exist is created on the machine (an empty folder, or an empty file such as /dev/termination-log) before
the mount, and stays; a volume mounted over a folder that holds the virtual environment hides it.

The node talks to the API server as the cluster administrator, which a kubelet would not: it also plays
the scheduler, and the node authorizer would refuse that.

`python -m headwater_localcluster --root=<cluster root> node`; SIGTERM stops every container (SIGTERM,
then SIGKILL after a few seconds) and exits 0. Pods that a previous run of the node left running are
resumed: their containers are restarted as their restartPolicy allows, or reported as failed.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from . import binaries, kubelet_server, storage
from .apiobjects import ApiObjects, EventRecorder
from .control_plane import NODE_NAME, ClusterState
from .kubeapi import MERGE_PATCH, ApiError, KubeClient, client_from_pki, path_segment
from .podstatus import TERMINAL_PHASES, rfc3339
from .podworker import LogNotFoundError, NodeContext, PodWorker, image_env, reverse_lookup, service_env
from .runtime import Launcher

Json = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
HEARTBEAT_INTERVAL = 10.0
WATCH_TIMEOUT = 300
STOP_GRACE = 5.0
DEFAULT_SCHEDULER = "default-scheduler"
CLAIM_POLL_SECONDS = 0.5

log = logging.getLogger("headwater_localcluster.node")


def microtime(moment: datetime.datetime | None = None) -> str:
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def memory_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 4 * 1024 * 1024


def architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def capacity(root: Path) -> dict[str, str]:
    disk = shutil.disk_usage(root)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib()}Ki",
        "pods": "110",
        "ephemeral-storage": f"{disk.total // 1024}Ki",
    }


def node_conditions(since: str, moment: str) -> list[Json]:
    def condition(kind: str, status: str, reason: str, message: str) -> Json:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": moment,
            "lastTransitionTime": since,
        }

    return [
        condition(
            "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
        ),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def node_manifest(labels: dict[str, str]) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": labels},
        "spec": {},
    }


def node_labels() -> dict[str, str]:
    arch = architecture()
    return {
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }


def node_status(root: Path, kubelet_port: int, since: str, moment: str) -> Json:
    resources = capacity(root)
    uname = platform.uname()
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id", "local"),
            "systemUUID": _read("/etc/machine-id", "local"),
            "bootID": _read("/proc/sys/kernel/random/boot_id", "local"),
            "kernelVersion": uname.release,
            "osImage": _read("/etc/os-release").partition('PRETTY_NAME="')[2].partition('"')[0] or "Linux",
            "containerRuntimeVersion": "localnode://1.0",
            "kubeletVersion": binaries.KUBERNETES_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": architecture(),
        },
        "conditions": node_conditions(since, moment),
    }


def wants_binding(pod: Json) -> bool:
    """A pod the default scheduler would place: unbound, not finished, not being deleted, not gated."""
    spec: Json = pod.get("spec") or {}
    metadata: Json = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not metadata.get("deletionTimestamp")
        and phase not in TERMINAL_PHASES
        and not spec.get("schedulingGates")
    )


def fits(pod: Json, labels: dict[str, str]) -> bool:
    selector: dict[str, str] = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(labels.get(key) == value for key, value in selector.items())


class LocalNode:
    def __init__(self, root: Path, state: ClusterState) -> None:
        self.root = root
        self.state = state
        self.pki = root / "pki"
        self.client: KubeClient = client_from_pki(state.server, self.pki)
        self.stopping = threading.Event()
        self.labels = node_labels()
        self.since = rfc3339(datetime.datetime.now(datetime.UTC))
        self.allocatable = capacity(root)
        self.events = EventRecorder(self.client)
        self.context = NodeContext(
            root=root,
            client=self.client,
            launcher=Launcher(),
            source=ApiObjects(self.client),
            events=self.events,
            service_env=service_env(state.api_port),
            image_env=image_env(Path(sys.executable).parent),
            allocatable=self.allocatable,
            stopping=self.stopping,
            stop_grace=STOP_GRACE,
        )
        self.workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self._bound: set[str] = set()
        self._unschedulable: set[str] = set()
        self._waiting_for_claims: set[str] = set()
        self.server: kubelet_server.KubeletServer | None = None

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.context.launcher.problem is not None:
            log.error("every pod will fail with SandboxUnavailable: %s", self.context.launcher.problem)
        self.server = kubelet_server.start(self.state.kubelet_port, self.pki, self)
        self._retry(self.register, "register the node")
        self._thread(self._heartbeat_loop, "heartbeat")
        self._thread(self._pod_loop, "pods")
        log.info("node %s ready; kubelet endpoint on 127.0.0.1:%d", NODE_NAME, self.state.kubelet_port)

    def _thread(self, target: Callable[[], None], name: str) -> None:
        threading.Thread(target=target, daemon=True, name=name).start()

    def _retry(self, action: Callable[[], None], what: str, attempts: int = 120) -> None:
        for attempt in range(attempts):
            try:
                action()
                return
            except ApiError as error:
                if attempt == attempts - 1:
                    raise
                log.info("could not %s yet: %s", what, error)
                time.sleep(0.5)

    def shutdown(self) -> None:
        """Stop every container: SIGTERM, SIGKILL after STOP_GRACE seconds."""
        log.info("stopping: terminating the containers of %d pods", len(self.workers))
        self.context.stop_deadline = time.monotonic() + STOP_GRACE
        self.stopping.set()
        with self._workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.update(worker.pod)
        deadline = time.monotonic() + STOP_GRACE + 2.0
        for worker in workers:
            worker.done.wait(max(0.0, deadline - time.monotonic()))
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.context.launcher.shutdown()
        log.info("stopped")

    # -- the Node and its Lease --------------------------------------------------------------------

    def register(self) -> None:
        existing = self.client.get(f"/api/v1/nodes/{NODE_NAME}")
        if existing is None:
            self.client.request("POST", "/api/v1/nodes", body=node_manifest(self.labels))
            log.info("registered node %s", NODE_NAME)
        else:
            self.client.request(
                "PATCH",
                f"/api/v1/nodes/{NODE_NAME}",
                body={"metadata": {"labels": self.labels}},
                content_type=MERGE_PATCH,
            )
        self._post_status()
        self._renew_lease()

    def _post_status(self) -> None:
        moment = rfc3339(datetime.datetime.now(datetime.UTC))
        status = node_status(self.root, self.state.kubelet_port, self.since, moment)
        self.client.request(
            "PATCH", f"/api/v1/nodes/{NODE_NAME}/status", body={"status": status}, content_type=MERGE_PATCH
        )

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{NODE_NAME}"
        spec = {"holderIdentity": NODE_NAME, "leaseDurationSeconds": LEASE_DURATION, "renewTime": microtime()}
        try:
            self.client.request("PATCH", path, body={"spec": spec}, content_type=MERGE_PATCH)
            return
        except ApiError as error:
            if error.status != 404:
                raise
        node = self.client.get(f"/api/v1/nodes/{NODE_NAME}") or {}
        owner = {
            "apiVersion": "v1",
            "kind": "Node",
            "name": NODE_NAME,
            "uid": node.get("metadata", {}).get("uid"),
        }
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NODE_NAME, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
            "spec": spec,
        }
        self.client.request(
            "POST", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", body=lease
        )

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_INTERVAL):
            try:
                self._renew_lease()
                self._post_status()
            except ApiError as error:
                log.warning("heartbeat failed: %s", error)
                if error.status == 404:  # someone deleted the Node: register again
                    try:
                        self.register()
                    except ApiError as again:
                        log.warning("re-registration failed: %s", again)

    # -- pods ----------------------------------------------------------------------------------------

    def _pod_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                listing = self.client.request("GET", "/api/v1/pods", timeout=60)
                pods: list[Json] = listing.get("items") or []
                self._resync(pods)
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                self._watch(version)
            except ApiError as error:
                if not self.stopping.is_set():
                    log.warning("pod watch interrupted: %s", error)
                    self.stopping.wait(1.0)
            except Exception:
                log.exception("pod loop failed; listing again")
                self.stopping.wait(1.0)

    def _watch(self, version: str) -> None:
        query: dict[str, str | int | bool] = {
            "resourceVersion": version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": WATCH_TIMEOUT,
        }
        for event in self.client.watch("/api/v1/pods", query, read_timeout=WATCH_TIMEOUT + 30):
            if self.stopping.is_set():
                return
            kind = event.get("type")
            pod: Json = event.get("object") or {}
            if kind == "ERROR":
                log.info("watch ended: %s", pod.get("message"))
                return
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._forget(str(pod.get("metadata", {}).get("uid", "")))
            else:
                self._handle(pod)

    def _resync(self, pods: list[Json]) -> None:
        present = {str(p["metadata"]["uid"]) for p in pods}
        with self._workers_lock:
            gone = [uid for uid in self.workers if uid not in present]
        for uid in gone:
            self._forget(uid)
        for pod in pods:
            self._handle(pod)

    def _forget(self, uid: str) -> None:
        with self._workers_lock:
            worker = self.workers.pop(uid, None)
        self._bound.discard(uid)
        self._unschedulable.discard(uid)
        self._waiting_for_claims.discard(uid)
        if worker is not None:
            worker.remove()

    def _handle(self, pod: Json) -> None:
        if self.stopping.is_set():
            return
        metadata: Json = pod["metadata"]
        spec: Json = pod.get("spec") or {}
        uid = str(metadata["uid"])
        if not spec.get("nodeName"):
            if wants_binding(pod) and uid not in self._bound:
                self._bind(pod)
            return
        if spec["nodeName"] != NODE_NAME:
            return
        terminal = (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
        with self._workers_lock:
            worker = self.workers.get(uid)
            if worker is None and not terminal:
                self.workers[uid] = PodWorker(self.context, pod)
                self.workers[uid].start()
                return
        if worker is not None:
            worker.update(pod)
        finished = worker is None or worker.done.is_set()
        graceful = metadata.get("deletionGracePeriodSeconds") not in (0, None)
        if terminal and finished and metadata.get("deletionTimestamp") and graceful:
            # A finished pod being deleted gracefully: nothing to stop, the kubelet confirms at once.
            self._delete_now(pod)

    def _bind(self, pod: Json) -> None:
        metadata = pod["metadata"]
        uid = str(metadata["uid"])
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        if not fits(pod, self.labels):
            if uid not in self._unschedulable:
                self._unschedulable.add(uid)
                self._mark_unschedulable(pod)
            return
        if not self._claims_bound(pod):
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
        }
        try:
            self.client.request(
                "POST",
                f"/api/v1/namespaces/{path_segment(namespace)}/pods/{path_segment(name)}/binding",
                body=binding,
            )
        except ApiError as error:
            if error.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", namespace, name, error)
            return
        self._bound.add(uid)
        log.info("bound %s/%s", namespace, name)
        message = f"Successfully assigned {namespace}/{name} to {NODE_NAME}"
        self.events.event(pod, "Scheduled", message, component=DEFAULT_SCHEDULER)

    def _claims_bound(self, pod: Json) -> bool:
        """Whether every claim of the pod is bound; if not, the claims that wait for their first consumer
        are marked with this node (what kube-scheduler's volume binding does), and the pod is bound in the
        background once the provisioner has bound them."""
        namespace = str(pod["metadata"]["namespace"])
        claims = [
            str(volume["persistentVolumeClaim"]["claimName"])
            for volume in (pod.get("spec") or {}).get("volumes") or []
            if "persistentVolumeClaim" in volume
        ]
        unbound = [name for name in claims if not self._claim_bound(namespace, name)]
        if not unbound:
            return True
        uid = str(pod["metadata"]["uid"])
        if uid not in self._waiting_for_claims:
            self._waiting_for_claims.add(uid)
            self._thread(lambda: self._bind_when_claims_bound(pod, unbound), f"claims-{uid[:8]}")
        return False

    def _claim_bound(self, namespace: str, name: str) -> bool:
        """Whether the claim is bound; one that is not is marked with this node, once (a claim created
        after its pod is marked when it appears)."""
        path = f"/api/v1/namespaces/{path_segment(namespace)}/persistentvolumeclaims/{path_segment(name)}"
        claim = self.client.get(path)
        if claim is None:
            return False
        if (claim.get("status") or {}).get("phase") == "Bound":
            return True
        annotations = claim["metadata"].get("annotations") or {}
        if storage.SELECTED_NODE_ANNOTATION not in annotations:
            patch = {"metadata": {"annotations": {storage.SELECTED_NODE_ANNOTATION: NODE_NAME}}}
            self.client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return False

    def _bind_when_claims_bound(self, pod: Json, claims: list[str]) -> None:
        namespace, uid = str(pod["metadata"]["namespace"]), str(pod["metadata"]["uid"])
        try:
            while not self.stopping.wait(CLAIM_POLL_SECONDS):
                if uid not in self._waiting_for_claims:
                    return  # the pod is gone
                try:
                    if all(self._claim_bound(namespace, name) for name in claims):
                        break
                except ApiError as error:
                    log.info("could not read the claims of %s yet: %s", pod["metadata"]["name"], error)
            else:
                return
        finally:
            self._waiting_for_claims.discard(uid)
        self._bind(pod)

    def _mark_unschedulable(self, pod: Json) -> None:
        metadata = pod["metadata"]
        message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": rfc3339(datetime.datetime.now(datetime.UTC)),
        }
        namespace, name = path_segment(metadata["namespace"]), path_segment(metadata["name"])
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/status"
        try:
            self.client.request(
                "PATCH", path, body={"status": {"conditions": [condition]}}, content_type=MERGE_PATCH
            )
        except ApiError as error:
            log.debug("could not mark %s unschedulable: %s", metadata["name"], error)

    def _delete_now(self, pod: Json) -> None:
        metadata = pod["metadata"]
        path = (
            f"/api/v1/namespaces/{path_segment(metadata['namespace'])}/pods/{path_segment(metadata['name'])}"
        )
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": metadata["uid"]},
        }
        try:
            self.client.request("DELETE", path, body=body)
        except ApiError as error:
            if error.status not in (404, 409):
                log.warning("deleting %s failed: %s", metadata["name"], error)

    # -- logs ----------------------------------------------------------------------------------------

    def locate(self, namespace: str, pod: str, container: str, previous: bool) -> kubelet_server.LogTarget:
        with self._workers_lock:
            worker = reverse_lookup(self.workers, namespace, pod)
        if worker is not None:
            return worker.log_target(container, previous)
        return self._log_on_disk(namespace, pod, container, previous)

    def _log_on_disk(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> kubelet_server.LogTarget:
        """Logs of a pod this run of the node did not start (it finished before the node restarted)."""
        folders = sorted((self.root / "pods").glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
        for folder in reversed(folders):
            runs = sorted(
                (folder / container).glob("*.log"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1
            )
            if len(runs) > int(previous):
                finished = threading.Event()
                finished.set()
                return kubelet_server.LogTarget(runs[-1 - int(previous)], finished)
        raise LogNotFoundError(f'container "{container}" in pod "{pod}" has no logs on node {NODE_NAME}')


def run_node(root: Path) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    root = root.resolve()
    state = ClusterState.load(root)
    if state is None:
        log.error("no state.json under %s: start the node with `python -m headwater_localcluster up`", root)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node = LocalNode(root, state)
    node.start()
    while not stop.wait(1.0):
        pass
    node.shutdown()
    return 0
