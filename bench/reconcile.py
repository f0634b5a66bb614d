"""Reconcile throughput: 200 ExportJobs through the operator against 200 ConfigMaps through the API server.

Headwater side: one `kubectl apply -f` of 200 suspended one-off ExportJobs; done when every one has its Job
and a `Ready` or `Reconciling` condition (status True) with `observedGeneration` 1. Suspended, so that no
pod runs: what is measured is the operator (and the API server work it causes), not the node.

Baseline: one `kubectl apply -f` of 200 ConfigMaps of about the same size; done when all 200 exist.

Both are observed through watches opened before the apply (no polling load on the API server), on a fresh
local control plane with the CRDs installed and the operator running as its own process.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from .cluster import ClusterBench, Json, Watcher
from .processes import cpu_delta, cpu_of
from .results import Benchmark, Side, Target

log = logging.getLogger("bench.reconcile")

OBJECTS = 200
REPETITIONS = 3
TARGET = Target("<=", 3.0)
GROUP, VERSION, PLURAL = "headwater.dev", "v1alpha1", "exportjobs"
OWNER_LABEL = "headwater.dev/exportjob"
TIMEOUT = 300.0
SELECT = "SELECT id, recorded_at, station, reading, note FROM readings ORDER BY id"


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


# -- what completes a batch ----------------------------------------------------------------------------


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


class ReconcileBench(ClusterBench):
    def __init__(self, root: Path, objects: int = OBJECTS, repetitions: int = REPETITIONS) -> None:
        super().__init__(root)
        self.objects = objects
        self.repetitions = repetitions
        self.requests: dict[str, dict[str, int]] = {}

    # -- one batch ------------------------------------------------------------------------------------

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
                self.check_operator()
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
