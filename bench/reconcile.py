"""Reconcile throughput: 200 ExportJobs through the operator against 200 ConfigMaps through the API server.

Headwater side: one `kubectl apply -f` of 200 suspended one-off ExportJobs; done when every one has its Job
and a `Ready` or `Reconciling` condition (status True) with `observedGeneration` 1. Suspended, so that no
pod runs: what is measured is the operator (and the API server work it causes), not the node.

Baseline: one `kubectl apply -f` of 200 ConfigMaps of about the same size; done when all 200 exist.

Both are observed through watches opened before the apply (no polling load on the API server), on a fresh
local control plane with the CRDs installed and the operator running as its own process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from headwater_localcluster import binaries
from headwater_localcluster.control_plane import NODE_NAME, LocalCluster
from headwater_localcluster.operator import spawn_operator
from headwater_localcluster.services import pid_alive

from .processes import cpu_delta, cpu_of
from .results import REPO, Benchmark, Side, Target

log = logging.getLogger("bench.reconcile")

OBJECTS = 200
REPETITIONS = 3
TARGET = Target("<=", 3.0)
GROUP, VERSION, PLURAL = "headwater.dev", "v1alpha1", "exportjobs"
OWNER_LABEL = "headwater.dev/exportjob"
TIMEOUT = 300.0
SETTLE_SECONDS = 1.0
LABEL = re.compile(r'(\w+)="([^"]*)"')
SELECT = "SELECT id, recorded_at, station, reading, note FROM readings ORDER BY id"

Json = dict[str, Any]


# -- manifests -----------------------------------------------------------------------------------------


def export_job(name: str) -> Json:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ExportJob",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "database": {"secretRef": {"name": "bench-database"}},
            "tasks": [{"name": "readings", "select": SELECT}],
            "destination": {
                "s3": {
                    "bucket": "bench-exports",
                    "prefix": f"bench/{name}",
                    "endpoint": "http://s3.bench.invalid:9000",
                    "forcePathStyle": True,
                    "credentialsSecretRef": {"name": "bench-s3"},
                }
            },
        },
    }


def config_map(name: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {
            "readings.select.sql": SELECT,
            "destination": f"s3://bench-exports/bench/{name}",
            "endpoint": "http://s3.bench.invalid:9000",
        },
    }


def write_manifests(path: Path, documents: Iterable[Json]) -> None:
    path.write_text(yaml.safe_dump_all(list(documents), sort_keys=False))


# -- watching ------------------------------------------------------------------------------------------


class Watcher:
    """Watches one resource in one namespace from a thread and records, per object name, when `satisfied`
    first held for it (monotonic clock)."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        args: tuple[Any, ...],
        satisfied: Callable[[Json], str | None],
    ) -> None:
        self.name = name
        self.list_call = list_call
        self.args = args
        self.satisfied = satisfied
        self.seen: dict[str, float] = {}
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
                stream = watch.Watch()
                for event in stream.stream(
                    self.list_call,
                    *self.args,
                    resource_version=self._resource_version,
                    timeout_seconds=2,
                    _request_timeout=30,
                ):
                    received = time.monotonic()
                    obj = event["object"]
                    body: Json = obj if isinstance(obj, dict) else obj.to_dict()
                    metadata = body.get("metadata") or {}
                    version = metadata.get("resourceVersion") or metadata.get("resource_version")
                    if version:
                        self._resource_version = str(version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        key = self.satisfied(body)
                        if key is not None:
                            with self._lock:
                                self.seen.setdefault(key, received)
                    if self._stop.is_set():
                        stream.stop()
        except BaseException as error:  # reported by the waiting side
            self.error = error

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def last(self) -> float:
        with self._lock:
            return max(self.seen.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _status_ok(body: Json) -> str | None:
    """The ExportJob's name once it has a Ready or Reconciling condition (True) for generation 1."""
    metadata = body.get("metadata") or {}
    for condition in (body.get("status") or {}).get("conditions") or ():
        if (
            condition.get("type") in ("Ready", "Reconciling")
            and condition.get("status") == "True"
            and condition.get("observedGeneration") == 1
            and metadata.get("generation") == 1
        ):
            return str(metadata["name"])
    return None


def _job_owner(body: Json) -> str | None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    owner = labels.get(OWNER_LABEL)
    return str(owner) if owner else None


def _name(body: Json) -> str | None:
    return str((body.get("metadata") or {}).get("name") or "") or None


def _children_cpu() -> float:
    """CPU time of this process's reaped children (kubectl runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _config_map_name(body: Json) -> str | None:
    name = str((body.get("metadata") or {}).get("name") or "")
    return name if name.startswith("bench-") else None


# -- findings ------------------------------------------------------------------------------------------

CPU_KEYS = ("operator", "kube_apiserver", "etcd", "kube_controller_manager", "kubectl")


def _cpu(figures: dict[str, Any]) -> float:
    return sum(float(figures.get(f"{key}_cpu_seconds", 0.0)) for key in CPU_KEYS)


def _findings(
    s: dict[str, Any],
    b: dict[str, Any],
    requests: dict[str, float],
    diagnosis: dict[str, dict[str, Any]],
) -> list[str]:
    """What the figures say, in words: every number here comes from this run."""
    cores = os.cpu_count() or 1
    busy = _cpu(s) / (float(s["seconds"]) * cores)
    paused, alone = diagnosis["apply_with_operator_paused"], diagnosis["operator_alone"]
    lag = float(s["all_statuses_seconds"]) - float(s["kubectl_apply_seconds"])
    floor = (_cpu(paused) + _cpu(alone)) / cores
    by_request = ", ".join(
        f"{key} {count:g}" for key, count in requests.items() if not key.startswith("WATCH")
    )
    return [
        f"Of the ExportJobs' median {s['seconds']:.1f} s, `kubectl apply` itself took "
        f"{s['kubectl_apply_seconds']:.1f} s (the ConfigMaps' whole apply: "
        f"{b['kubectl_apply_seconds']:.1f} s); all Jobs existed after {s['all_jobs_seconds']:.1f} s, all "
        f"statuses after {s['all_statuses_seconds']:.1f} s, {lag:.1f} s after the apply returned.",
        "With the operator paused (SIGSTOP), the same apply of ExportJobs took "
        f"{paused['kubectl_apply_seconds']:.1f} s ({paused['api_requests_per_object']:.1f} API requests per "
        "object). Resumed with all of them waiting, the operator alone needed "
        f"{alone['seconds']:.1f} s to give every one its Job and status ({alone['objects_per_second']:.0f} "
        f"per second; operator CPU {alone['operator_cpu_seconds']:.1f} s, kube-apiserver CPU "
        f"{alone['kube_apiserver_cpu_seconds']:.1f} s).",
        f"CPU during the ExportJob batch (medians): operator {s['operator_cpu_seconds']:.1f} s, "
        f"kube-apiserver {s['kube_apiserver_cpu_seconds']:.1f} s, etcd {s['etcd_cpu_seconds']:.1f} s, "
        f"kube-controller-manager {s['kube_controller_manager_cpu_seconds']:.1f} s, kubectl "
        f"{s['kubectl_cpu_seconds']:.1f} s: {busy:.0%} of the {cores} cores over the batch. During the "
        f"ConfigMap batch: kube-apiserver {b['kube_apiserver_cpu_seconds']:.1f} s, kubectl "
        f"{b['kubectl_cpu_seconds']:.1f} s.",
        "What bounds the ratio: the work is CPU-bound on this machine's cores (the control plane, the "
        "operator and kubectl share them). The apply alone and the operator alone used "
        f"{_cpu(paused):.1f} + {_cpu(alone):.1f} s of CPU (all processes): even spread perfectly over "
        f"{cores} cores, that is {floor:.1f} s, {floor / float(b['seconds']):.1f} times the ConfigMaps' "
        f"{b['seconds']:.1f} s. The ExportJobs' own apply ({_cpu(paused):.1f} s of CPU against "
        f"{_cpu(b):.1f} s for the ConfigMaps) costs more: a custom resource is decoded, pruned and validated "
        "against its schema (CEL rules included) as JSON, where a ConfigMap is a compiled-in type. The "
        "operator's share is one ServiceAccount, one Job, one status patch and "
        "one Event per ExportJob, plus the Job controller's status update and Event for each Job.",
        "API requests per ExportJob (all clients, watches left out, counted until the cluster was idle "
        f"again): {s['api_requests_per_object']:.1f}, against {b['api_requests_per_object']:.1f} per "
        f"ConfigMap. By verb and resource: {by_request}.",
    ]


# -- the benchmark -------------------------------------------------------------------------------------


class ReconcileBench:
    def __init__(self, root: Path, objects: int = OBJECTS, repetitions: int = REPETITIONS) -> None:
        self.root = root
        self.objects = objects
        self.repetitions = repetitions
        self.cluster = LocalCluster(root / "cluster")
        self.kubectl_binary = binaries.binary("kubectl")
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = root / "operator.log"
        self._api: Any = None
        self.requests: dict[str, dict[str, int]] = {}

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

    def _operator_tail(self) -> str:
        text = self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""
        return text[-4000:]

    # -- setup ----------------------------------------------------------------------------------------

    def start(self) -> None:
        missing = binaries.missing_binaries()
        if missing:
            raise RuntimeError(f"control plane binaries missing ({', '.join(missing)}): run make cluster-bin")
        log.info("starting a local control plane with its node")
        self.cluster.up()
        self._wait(self._node_ready, 90, f"node {NODE_NAME} not Ready")
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

    def _wait(self, probe: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if self.operator is not None and self.operator.poll() is not None:
                raise RuntimeError(f"the operator exited; its log:\n{self._operator_tail()}")
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

    # -- one batch ------------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        return name

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the operator and the API server are idle (under 5% of a core over a second), so that
        one batch's aftermath does not slow the next."""
        watched = {key: pid for key, pid in self.pids().items() if key in ("operator", "kube-apiserver")}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = cpu_of(watched)
            time.sleep(SETTLE_SECONDS)
            used = cpu_delta(before, cpu_of(watched))
            if all(value <= 0.05 * SETTLE_SECONDS for value in used.values()):
                return
        log.warning("the cluster did not settle in %.0fs", timeout)

    def batch(
        self,
        namespace: str,
        documents: list[Json],
        watchers: list[Watcher],
        *,
        action: Callable[[], None] | None = None,
        label: str = "kubectl_apply",
    ) -> dict[str, Any]:
        """Apply `documents` in one `kubectl apply` (or run `action` instead); wait until every watcher has
        seen every object."""
        manifest = self.root / f"{namespace}.yaml"
        write_manifests(manifest, documents)
        requests_before = self.api_requests()
        for watcher in watchers:
            watcher.start()
        pids = self.pids()
        cpu_before = cpu_of(pids)
        children_before = _children_cpu()
        started = time.monotonic()
        try:
            if action is None:
                self.kubectl("apply", "-n", namespace, "-f", str(manifest), timeout=TIMEOUT)
            else:
                action()
            applied = time.monotonic()
            deadline = started + TIMEOUT
            while any(w.count() < len(documents) for w in watchers):
                for watcher in watchers:
                    if watcher.error is not None:
                        raise RuntimeError(f"watching {watcher.name} failed: {watcher.error}")
                if self.operator is not None and self.operator.poll() is not None:
                    raise RuntimeError(f"the operator exited; its log:\n{self._operator_tail()}")
                if time.monotonic() > deadline:
                    counts = ", ".join(f"{w.name} {w.count()}/{len(documents)}" for w in watchers)
                    raise TimeoutError(f"batch in {namespace} incomplete after {TIMEOUT:.0f}s: {counts}")
                time.sleep(0.02)
            done = max(w.last() for w in watchers)
            cpu = cpu_delta(cpu_before, cpu_of(pids))
            cpu["kubectl"] = round(_children_cpu() - children_before, 2)
        finally:
            for watcher in watchers:
                watcher.stop()
        # Requests are counted until the cluster is idle again: the aftermath of a batch is its cost too.
        self.settle()
        requests = self.api_requests()
        made = {key: count - requests_before.get(key, 0) for key, count in requests.items()}
        self.requests[namespace] = {key: count for key, count in made.items() if count > 0}
        figures: dict[str, Any] = {
            "seconds": round(done - started, 3),
            f"{label}_seconds": round(applied - started, 3),
        }
        for watcher in watchers:
            figures[f"all_{watcher.name}_seconds"] = round(watcher.last() - started, 3)
        figures["objects_per_second"] = round(len(documents) / (done - started), 1)
        for name in ("operator", "kube-apiserver", "etcd", "kube-controller-manager", "kubectl"):
            figures[f"{name.replace('-', '_')}_cpu_seconds"] = cpu.get(name, 0.0)
        counted = sum(count for key, count in self.requests[namespace].items() if not key.startswith("WATCH"))
        figures["api_requests_per_object"] = round(counted / len(documents), 1)
        return figures

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

    def export_jobs(self, namespace: str, count: int) -> dict[str, Any]:
        documents = [export_job(f"bench-{number:03d}") for number in range(count)]
        return self.batch(namespace, documents, self.export_job_watchers(namespace))

    def export_job_watchers(self, namespace: str) -> list[Watcher]:
        """Every ExportJob's Job, and every ExportJob's Ready or Reconciling condition."""
        from kubernetes import client

        custom = client.CustomObjectsApi(self.api())
        return [
            Watcher(
                "jobs", custom.list_namespaced_custom_object, ("batch", "v1", namespace, "jobs"), _job_owner
            ),
            Watcher(
                "statuses",
                custom.list_namespaced_custom_object,
                (GROUP, VERSION, namespace, PLURAL),
                _status_ok,
            ),
        ]

    def config_maps(self, namespace: str, count: int) -> dict[str, Any]:
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        watchers = [Watcher("configmaps", core.list_namespaced_config_map, (namespace,), _config_map_name)]
        documents = [config_map(f"bench-{number:03d}") for number in range(count)]
        return self.batch(namespace, documents, watchers)

    # -- the benchmark --------------------------------------------------------------------------------

    def run(self) -> Benchmark:
        self.start()
        warm_up = self.namespace("bench-warm-up")
        log.info("warm-up: 5 ExportJobs and 5 ConfigMaps, not counted (also waits for the operator)")
        self.export_jobs(warm_up, 5)
        self.config_maps(warm_up, 5)
        namespaces = [
            (self.namespace(f"bench-configmaps-{n}"), self.namespace(f"bench-exportjobs-{n}"))
            for n in range(1, self.repetitions + 1)
        ]
        baselines: list[dict[str, Any]] = []
        subjects: list[dict[str, Any]] = []
        self.settle()
        for number, (cm_namespace, ej_namespace) in enumerate(namespaces, 1):
            baselines.append(self.config_maps(cm_namespace, self.objects))
            log.info("configmaps %d: %s", number, baselines[-1])
            subjects.append(self.export_jobs(ej_namespace, self.objects))
            log.info("exportjobs %d: %s", number, subjects[-1])
        requests = self.requests_per_object([ej for _, ej in namespaces])
        diagnosis = self.diagnose()
        return self.judge(subjects, baselines, requests, diagnosis)

    def diagnose(self) -> dict[str, dict[str, Any]]:
        """Once: the ExportJobs' `kubectl apply` with the operator paused (SIGSTOP), so that only the API
        server works; then the operator resumed with all of them waiting, so that only it (and the API
        server work it causes) runs."""
        from kubernetes import client

        assert self.operator is not None
        pid = self.operator.pid
        namespace = self.namespace("bench-diagnosis")
        self.settle()
        custom = client.CustomObjectsApi(self.api())
        documents = [export_job(f"bench-{number:03d}") for number in range(self.objects)]
        stored = Watcher(
            "exportjobs", custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL), _name
        )
        resumed = False

        def resume() -> None:
            nonlocal resumed
            os.killpg(pid, signal.SIGCONT)
            resumed = True

        log.info(
            "diagnosis: %d ExportJobs applied with the operator paused, then the operator alone", self.objects
        )
        os.killpg(pid, signal.SIGSTOP)
        try:
            paused = self.batch(namespace, documents, [stored])
            alone = self.batch(
                namespace, documents, self.export_job_watchers(namespace), action=resume, label="resume"
            )
        finally:
            if not resumed:
                os.killpg(pid, signal.SIGCONT)
        log.info("diagnosis: apply with the operator paused %s; operator alone %s", paused, alone)
        return {"apply_with_operator_paused": paused, "operator_alone": alone}

    def requests_per_object(self, namespaces: list[str]) -> dict[str, float]:
        """API requests per object of the batches in `namespaces`, by verb and resource, busiest first."""
        total: dict[str, int] = {}
        for namespace in namespaces:
            for key, count in self.requests.get(namespace, {}).items():
                total[key] = total.get(key, 0) + count
        objects = self.objects * len(namespaces)
        ordered = sorted(total.items(), key=lambda item: -item[1])
        return {key: round(count / objects, 2) for key, count in ordered if count / objects >= 0.05}

    def judge(
        self,
        subjects: list[dict[str, Any]],
        baselines: list[dict[str, Any]],
        requests: dict[str, float],
        diagnosis: dict[str, dict[str, Any]],
    ) -> Benchmark:
        subject = Side.from_runs(
            "ExportJobs through the operator",
            f"one `kubectl apply -f` of {self.objects} suspended one-off ExportJobs (one multi-document "
            "file) into an empty namespace; done when every one has its Job and a `Ready` or "
            "`Reconciling` condition (status True) with `observedGeneration` 1.",
            subjects,
        )
        baseline = Side.from_runs(
            "ConfigMaps through the API server",
            f"one `kubectl apply -f` of {self.objects} ConfigMaps of similar size into an empty namespace; "
            "done when all exist.",
            baselines,
        )
        findings = _findings(subject.median, baseline.median, requests, diagnosis)
        return Benchmark.judge(
            key="reconcile",
            title="Reconcile throughput",
            metric="seconds",
            unit="s",
            subject=subject,
            baseline=baseline,
            target=TARGET,
            ratio_definition=f"time for {self.objects} ExportJobs ÷ time for {self.objects} ConfigMaps; "
            "lower is better",
            parameters={"objects per batch": self.objects},
            details={"api_requests_per_exportjob": requests, "diagnosis": diagnosis},
            method=[
                "A fresh local control plane (etcd, kube-apiserver, kube-controller-manager and the local "
                "node) in a temporary folder, the CRDs from `crds/` installed, and the operator running as "
                "its own process (`python -m headwater_operator --standalone`), all stopped at the end.",
                "Each batch goes into its own empty namespace; times run from the start of `kubectl apply` "
                "to the moment a watch, opened before the apply, delivers the last object that completes "
                "the batch.",
                "The ExportJobs are suspended, so their Jobs start no pods: the operator is measured, not "
                "the node.",
                "A warm-up of 5 objects of each kind first (not counted); before each batch the benchmark "
                "waits until the operator and the API server are idle (under 5% of a core for a second).",
                "CPU seconds of the operator, kube-apiserver, etcd and kube-controller-manager from "
                "`/proc/<pid>/stat` at the start and the end of each batch, kubectl's from rusage; API "
                "requests from the API server's `apiserver_request_total` before the batch and once the "
                "cluster is idle again after it.",
                "After the measured batches, once: the same apply of ExportJobs into a fresh namespace with "
                "the operator paused (SIGSTOP), then the operator resumed (SIGCONT) with all of them "
                "waiting, timed until every one has its Job and status.",
            ],
            findings=findings,
        )


def run(objects: int = OBJECTS, repetitions: int = REPETITIONS) -> Benchmark:
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-reconcile-"))
    bench = ReconcileBench(root, objects, repetitions)
    try:
        return bench.run()
    finally:
        try:
            bench.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["OBJECTS", "REPETITIONS", "ReconcileBench", "run"]
