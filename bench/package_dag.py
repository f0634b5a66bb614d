"""Package: the DAG's parallelism. A Package of the shipped processors with `parallelism: 2` on a fresh local
control plane, against the sum of the same processors' Jobs each run alone, in the same run.

Headwater side: one `kubectl apply` of a Package of every shipped processor (a raster crop of the 16,000 by
8,000 GeoTIFF of `bench/package.py`, a vector clip of generated roads, the test processor) with
`parallelism: 2`, timed from the apply to the moment a watch sees it `Ready` (setup, the processors and
finalise included). Baseline: each processor alone in a Package of its own; what counts is its processor
Job's time (created to `Complete`), so the sum leaves out three setups and three finalises the Package side
pays once.

Storage is S3 (moto's server), a fresh prefix per Package so that nothing is skipped; the sources are served
over HTTP on 127.0.0.1 and downloaded by each Job into its scratch folder (no `cache`), alike on both sides.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from headwater_localcluster.services import S3Server

from .cluster import ClusterBench, Json, Watcher
from .package import BOUNDARY, NORTH, WEST, SourceServer, write_source
from .processes import cpu_seconds
from .results import Benchmark, Figures, Side, Target

log = logging.getLogger("bench.package_dag")

REPETITIONS = 3
PARALLELISM = 2
TARGET = Target("<=", 0.65)
RASTER, VECTOR, TEST = (
    "natural_earth_raster.version_1",
    "natural_earth_vector.version_1",
    "test_processor.version_1",
)
PROCESSORS = (RASTER, VECTOR, TEST)
ROADS = 200_000
BUCKET = "bench-packages"
SECRET = "bench-s3"  # noqa: S105 - the name of a Secret
GROUP, VERSION, PLURAL = "headwater.dev", "v1alpha1", "packages"
OWNER_LABEL = "headwater.dev/package"
COMPONENT_LABEL = "app.kubernetes.io/component"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
TIMEOUT = 900.0


def write_roads(path: Path, count: int = ROADS) -> Path:
    """`count` short random polylines (5 vertices) over the raster's region, about half of them crossing
    into or lying inside The Gambia."""
    import shapely
    from pyogrio import raw

    generator = np.random.default_rng(11)
    starts = np.column_stack(
        [generator.uniform(WEST, WEST + 4, count), generator.uniform(NORTH - 2, NORTH, count)]
    )
    steps = generator.normal(0, 0.01, (count, 5, 2)).cumsum(axis=1)
    lines = shapely.linestrings(starts[:, None, :] + steps)
    raw.write(
        path,
        geometry=shapely.to_wkb(lines),
        field_data=[
            np.array([f"road {n}" for n in range(count)], dtype=object),
            np.arange(count, dtype="int32"),
        ],
        fields=["name", "lanes"],
        layer="roads",
        driver="GPKG",
        geometry_type="LineString",
        crs="EPSG:4326",
    )
    return path


# -- watching ------------------------------------------------------------------------------------------


def _labels(body: Json) -> dict[str, str]:
    return dict((body.get("metadata") or {}).get("labels") or {})


def _job(body: Json) -> str | None:
    return str(body["metadata"]["name"]) if OWNER_LABEL in _labels(body) else None


def _job_complete(body: Json) -> str | None:
    conditions = (body.get("status") or {}).get("conditions") or ()
    done = any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)
    return _job(body) if done else None


def _job_failed(body: Json) -> str | None:
    conditions = (body.get("status") or {}).get("conditions") or ()
    failed = any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions)
    return _job(body) if failed else None


def _pod_job(body: Json) -> str | None:
    labels = _labels(body)
    return labels.get(JOB_NAME_LABEL) if OWNER_LABEL in labels else None


def _pod_running(body: Json) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return _pod_job(body) if phase in ("Running", "Succeeded", "Failed") else None


def _pod_ended(body: Json) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return _pod_job(body) if phase in ("Succeeded", "Failed") else None


def _ready(body: Json) -> str | None:
    status = body.get("status") or {}
    conditions = status.get("conditions") or ()
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return str(body["metadata"]["name"]) if ready else None


def _failed(body: Json) -> str | None:
    return str(body["metadata"]["name"]) if (body.get("status") or {}).get("phase") == "Failed" else None


# -- the benchmark -------------------------------------------------------------------------------------


class DagBench(ClusterBench):
    def __init__(self, root: Path, repetitions: int = REPETITIONS) -> None:
        super().__init__(root)
        self.repetitions = repetitions
        self.work = root / "runs"
        self.s3 = S3Server(root / "s3")
        self.served = root / "served"
        self.sources: SourceServer | None = None
        self.runs = 0

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.served.mkdir()
        log.info("writing the sources")
        write_source(self.served / "source.tif")
        write_roads(self.served / "roads.gpkg")
        self.sources = SourceServer(self.served)
        self.sources.thread.start()
        super().start()
        self.s3.start()
        self.s3.client().create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        try:
            if self.sources is not None:
                self.sources.server.shutdown()
                self.sources.server.server_close()
            self.s3.stop()
        finally:
            super().stop()

    def package(self, name: str, processors: tuple[str, ...], prefix: str) -> Json:
        assert self.sources is not None
        options = {
            RASTER: {"source": {"url": self.sources.url("source.tif")}},
            VECTOR: {"source": {"url": self.sources.url("roads.gpkg")}},
        }
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Package",
            "metadata": {"name": name},
            "spec": {
                "boundary": {
                    "name": "gambia",
                    "longName": "The Gambia",
                    "geometry": {"geojson": BOUNDARY.read_text(encoding="utf-8")},
                },
                "processors": list(processors),
                "options": {key: value for key, value in options.items() if key in processors},
                "parallelism": PARALLELISM,
                "storage": {
                    "s3": {
                        "bucket": BUCKET,
                        "prefix": prefix,
                        "endpoint": self.s3.endpoint_url,
                        "forcePathStyle": True,
                        "credentialsSecretRef": {"name": SECRET},
                    }
                },
                "backoffLimit": 0,
            },
        }

    def prepare(self, namespace: str) -> None:
        self.namespace(namespace)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {
                "AWS_ACCESS_KEY_ID": self.s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_access_key,
            },
        }
        path = self.work / f"{namespace}-secret.yaml"
        path.write_text(yaml.safe_dump(secret))
        self.kubectl("apply", "-n", namespace, "-f", str(path))

    def one_package(self, processors: tuple[str, ...]) -> Figures:
        """Apply one Package in a namespace of its own and wait for `Ready`: its time, every Job's and pod's
        moments (seconds from the apply), and the CPU time of its pods (the local node's reaped children,
        read once the node is idle again)."""
        from kubernetes import client

        self.runs += 1
        namespace = f"dag-{self.runs}"
        self.prepare(namespace)
        custom = client.CustomObjectsApi(self.api())
        core = client.CoreV1Api(self.api())
        jobs = Watcher(
            "job",
            custom.list_namespaced_custom_object,
            ("batch", "v1", namespace, "jobs"),
            _job,
            {"complete": _job_complete, "failed": _job_failed},
        )
        pods = Watcher(
            "pod",
            core.list_namespaced_pod,
            (namespace,),
            _pod_job,
            {"running": _pod_running, "ended": _pod_ended},
        )
        packages = Watcher(
            "package",
            custom.list_namespaced_custom_object,
            (GROUP, VERSION, namespace, PLURAL),
            _ready,
            {"failed": _failed},
        )
        watchers = (jobs, pods, packages)
        manifest = self.work / f"{namespace}.yaml"
        manifest.write_text(yaml.safe_dump(self.package("bench", processors, f"run-{self.runs}")))
        for watcher in watchers:
            watcher.start()
        try:
            pods_cpu_before = self.pods_cpu()
            started = time.monotonic()
            self.kubectl("apply", "-n", namespace, "-f", str(manifest))
            while not packages.count():
                self.check_operator()
                for watcher in watchers:
                    if watcher.error is not None:
                        raise RuntimeError(f"watching {watcher.name} failed: {watcher.error}")
                if packages.count("failed") or jobs.count("failed"):
                    raise RuntimeError(
                        f"the package failed: {self.kubectl('get', 'package', '-n', namespace, '-o', 'yaml')}"
                    )
                if time.monotonic() > started + TIMEOUT:
                    raise TimeoutError(f"the package was not Ready after {TIMEOUT:.0f}s")
                time.sleep(0.05)
            moments = {
                f"{watcher.name}_{check}": {
                    key: round(at - started, 3) for key, at in watcher.times(check).items()
                }
                for watcher in watchers
                for check in watcher.seen
            }
        finally:
            for watcher in watchers:
                watcher.stop()
        ready = round(packages.last() - started, 3)
        self.settle(also={"localnode": self.pids()["localnode"]})
        pods_cpu = round(self.pods_cpu() - pods_cpu_before, 2)
        self.kubectl("delete", "namespace", namespace, "--wait=false")
        return {"seconds": ready, "pods_cpu_seconds": pods_cpu, "moments": moments}

    def pods_cpu(self) -> float:
        node = self.pids()["localnode"]
        return cpu_seconds(node, with_children=True) - cpu_seconds(node)

    def run(self) -> Benchmark:
        self.start()
        subjects: list[Figures] = []
        baselines: list[Figures] = []
        timelines: list[Figures] = []
        log.info("warm-up: one package of the test processor")
        self.one_package((TEST,))
        for number in range(1, self.repetitions + 1):
            alone: dict[str, float] = {}
            alone_timelines: dict[str, Any] = {}
            for processor in PROCESSORS:
                self.settle(also={"localnode": self.pids()["localnode"]})
                log.info("repetition %d: %s alone", number, processor)
                result = self.one_package((processor,))
                alone[processor] = processor_job_seconds(result["moments"])[0]
                alone_timelines[processor] = result
            self.settle(also={"localnode": self.pids()["localnode"]})
            log.info("repetition %d: the package of %d processors", number, len(PROCESSORS))
            together = self.one_package(PROCESSORS)
            jobs = processor_job_seconds(together["moments"])
            stages = stage_seconds(together["moments"], together["seconds"])
            subjects.append(
                {
                    "seconds": together["seconds"],
                    **stages,
                    "processor_jobs_seconds": round(sum(jobs), 3),
                    "pods_cpu_seconds": together["pods_cpu_seconds"],
                }
            )
            baselines.append(
                {
                    "seconds": round(sum(alone.values()), 3),
                    **{f"{_short(name)}_seconds": value for name, value in alone.items()},
                    "pods_cpu_seconds": round(
                        sum(alone_timelines[name]["pods_cpu_seconds"] for name in PROCESSORS), 2
                    ),
                    **{
                        f"{_short(name)}_package_seconds": alone_timelines[name]["seconds"]
                        for name in PROCESSORS
                    },
                }
            )
            timelines.append({"together": together["moments"], "alone": alone_timelines})
        return self.judge(subjects, baselines, timelines)

    def judge(self, subjects: list[Figures], baselines: list[Figures], timelines: list[Figures]) -> Benchmark:
        subject = Side.from_runs(
            f"a Package of {len(PROCESSORS)} processors, parallelism {PARALLELISM}",
            f"one `kubectl apply` of a Package of {', '.join(PROCESSORS)} with `parallelism: {PARALLELISM}`, "
            "S3 storage at a fresh prefix; from the apply to `Ready` (setup Job, processor Jobs, finalise "
            "Job).",
            subjects,
        )
        baseline = Side.from_runs(
            "the processors' Jobs one at a time",
            "each processor in a Package of its own, run one after the other; the figure is the sum of the "
            "processor Jobs' times (the Job created to `Complete`, seen by a watch), setup and finalise left "
            "out.",
            baselines,
        )
        return Benchmark.judge(
            key="package_dag",
            title="Package: processors in parallel",
            metric="seconds",
            unit="s",
            subject=subject,
            baseline=baseline,
            target=TARGET,
            ratio_definition="the Package's time from apply to Ready ÷ the sum of its processors' Jobs "
            "alone; lower is better",
            parameters={
                "processors": len(PROCESSORS),
                "parallelism": PARALLELISM,
                "raster source": "16,000 by 8,000 Float32 GeoTIFF, downloaded by its Job",
                "vector source roads": ROADS,
            },
            method=[
                "A fresh local control plane (etcd, kube-apiserver, kube-controller-manager and the local "
                "node) in a temporary folder, the CRDs installed and the operator running as its own "
                "process; moto's S3 server for the storage, the sources served over HTTP on 127.0.0.1 by the "
                "benchmark.",
                f"Headwater ships {len(PROCESSORS)} processors and a Package runs each processor once, so "
                f"the Package holds {len(PROCESSORS)}, not 4: a processor is an entry point of the installed "
                "distribution, which a benchmark cannot add to the pods' environment without shipping it.",
                "A warm-up Package first (not counted). Before each Package the benchmark waits until the "
                "operator, the API server and the node are idle. Every Package has a namespace of its own.",
                "Watches opened before each apply record when each Job was created and `Complete`, and when "
                "each of its pods was created, `Running` and ended.",
            ],
            findings=dag_findings(subject.median, baseline.median),
            details={"timelines": timelines},
        )


def _short(processor: str) -> str:
    return processor.split(".")[0]


def processor_job_seconds(moments: Mapping[str, Mapping[str, float]]) -> list[float]:
    """Created to `Complete` of each processor Job (neither setup nor finalise)."""
    created, complete = moments["job_job"], moments["job_complete"]
    return [
        round(complete[name] - created[name], 3)
        for name in created
        if "-setup-" not in name and "-finalise-" not in name and name in complete
    ]


def stage_seconds(moments: Mapping[str, Mapping[str, float]], ready: float) -> Figures:
    """When setup ended, when the last processor ended, the finalise Job's own time, and the operator's
    steps between them (a Job `Complete` to the next Job created, finalise `Complete` to `Ready`); and the
    pods' way (created to Running, Running to ended, ended to `Complete`) as medians over the Jobs."""
    created, complete = moments["job_job"], moments["job_complete"]
    setup = next(name for name in created if "-setup-" in name)
    finalise = next(name for name in created if "-finalise-" in name)
    processors = [name for name in created if name not in (setup, finalise)]
    pod_created, running, ended = moments["pod_pod"], moments["pod_running"], moments["pod_ended"]
    starts = [running[job] - pod_created[job] for job in running if job in pod_created]
    works = [ended[job] - running[job] for job in ended if job in running]
    ended_to_complete = [complete[job] - ended[job] for job in complete if job in ended]
    return {
        "setup_complete_seconds": complete[setup],
        "processors_complete_seconds": max(complete[name] for name in processors),
        "setup_to_processors_seconds": round(min(created[name] for name in processors) - complete[setup], 3),
        "processors_to_finalise_seconds": round(
            created[finalise] - max(complete[name] for name in processors), 3
        ),
        "finalise_job_seconds": round(complete[finalise] - created[finalise], 3),
        "finalise_to_ready_seconds": round(ready - complete[finalise], 3),
        "pod_start_p50_seconds": round(float(np.median(starts)), 3),
        "pod_running_p50_seconds": round(float(np.median(works)), 3),
        "pod_ended_to_job_complete_p50_seconds": round(float(np.median(ended_to_complete)), 3),
    }


def dag_findings(s: Figures, b: Figures) -> list[str]:
    cores = os.cpu_count() or 1
    total, alone = float(s["seconds"]), float(b["seconds"])
    pods_cpu, jobs = float(s["pods_cpu_seconds"]), float(s["processor_jobs_seconds"])
    each = ", ".join(f"{name} {float(b[_short(name) + '_seconds']):.1f} s" for name in PROCESSORS)
    setup, last = float(s["setup_complete_seconds"]), float(s["processors_complete_seconds"])
    processing = last - setup
    ideal = max(alone / PARALLELISM, max(float(b[_short(name) + "_seconds"]) for name in PROCESSORS))
    return [
        f"The Package took {total:.1f} s from apply to Ready; its processors' Jobs alone took {alone:.1f} s "
        f"together ({each}): ratio {total / alone:.2f}.",
        f"Of the Package's {total:.1f} s: setup done at {setup:.1f} s, the last processor done at "
        f"{last:.1f} s ({processing:.1f} s of processing: {processing / alone:.2f} of the sum alone, where "
        f"{PARALLELISM} Jobs at once on unlimited cores could reach {ideal:.1f} s, {ideal / alone:.2f}), "
        f"then finalise ({float(s['finalise_job_seconds']):.1f} s as a Job) and the operator's Ready.",
        f"Each pod of the Package: created to Running p50 {float(s['pod_start_p50_seconds']):.2f} s, "
        f"Running to ended p50 {float(s['pod_running_p50_seconds']):.2f} s, ended to its Job `Complete` p50 "
        f"{float(s['pod_ended_to_job_complete_p50_seconds']):.2f} s (the Job controller's batching).",
        f"The operator's steps: setup `Complete` to the first processor Job created "
        f"{float(s['setup_to_processors_seconds']):.2f} s, the last processor `Complete` to the finalise Job "
        f"created {float(s['processors_to_finalise_seconds']):.2f} s, finalise `Complete` to `Ready` "
        f"{float(s['finalise_to_ready_seconds']):.2f} s. Setup and finalise together hold the Package "
        f"{setup + float(s['finalise_job_seconds']):.1f} s that no parallelism shortens; the processors "
        f"alone are {alone:.1f} s, so even processing in {ideal:.1f} s would give "
        f"{(total - processing + ideal) / alone:.2f}.",
        f"CPU: the Package's pods used {pods_cpu:.1f} s of CPU; the three single-processor Packages' pods "
        f"{float(b['pods_cpu_seconds']):.1f} s together (each with its own setup and finalise). On {cores} "
        f"cores, {pods_cpu:.1f} CPU-seconds need at least {pods_cpu / cores:.1f} s, and the cores are shared "
        "with the control plane, the operator, the S3 server and the benchmark's source server. Processor "
        f"Jobs in the Package took {jobs:.1f} s together against {alone:.1f} s alone ({jobs / alone:.2f} "
        f"of it), running {PARALLELISM} at once (the raster crop alone already compresses on "
        "every core).",
    ]


def run(repetitions: int = REPETITIONS) -> Benchmark:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-package-dag-"))
    bench = DagBench(root, repetitions)
    try:
        return bench.run()
    finally:
        try:
            bench.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["REPETITIONS", "run"]
