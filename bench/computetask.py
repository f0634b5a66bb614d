"""ComputeTask throughput and latency: 50 `image-rotate` ComputeTasks through the operator against the same 50
tasks sent to a long-running FastAPI service of the seed's design, in the same run.

Headwater side: one `kubectl apply -f` of 50 ComputeTasks (`service.name: image-rotate`), each rotating its
own copy of a 1-megapixel PNG by 90° into its own `dataOut` key and PATCHing its TaskUpdate to a local
callback receiver; done when every one has `status.phase` Succeeded and the receiver has every TaskUpdate.

Baseline: the same 50 tasks POSTed at once to `/compute` of `bench/compute_service.py` (uvicorn, started
before the batches and kept running): it answers at once, then its one background worker reads, rotates,
writes and PATCHes the same receiver, task after task, as the Core engine's services do.

Per task, latency runs from the start of the batch (the apply, or the first POST) to the moment the
receiver got its TaskUpdate: that is when the task's client learns it finished. On the Headwater side the
moment its status says Succeeded is reported as well, and watches opened before the apply time each task's
way through the cluster (its Job, its pod, the worker's first state, the callback, the status).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from headwater_localcluster.control_plane import free_port
from headwater_localcluster.services import S3Server
from PIL import Image, ImageDraw

from .callbacks import Arrival, CallbackReceiver
from .cluster import ClusterBench, Json, Watcher
from .processes import Usage, cpu_seconds, measured
from .results import REPO, TIMES, Benchmark, Side, Target, median

log = logging.getLogger("bench.computetask")

TASKS = 50
REPETITIONS = 3
WARM_UP_TASKS = 3
TARGET = Target(">=", 0.25)
P50_TARGET_SECONDS = 3.0
SIDE_PIXELS = 1000
ROTATION_DEGREES = 90
BUCKET = "bench-compute"
SECRET = "bench-s3"  # noqa: S105 - the name of a Secret
GROUP, VERSION, PLURAL = "headwater.dev", "v1alpha1", "computetasks"
OWNER_LABEL = "headwater.dev/computetask"
COMPONENT_LABEL = "app.kubernetes.io/component"
TIMEOUT = 600.0
POLL_SECONDS = 0.02
SERVICE_START_SECONDS = 60.0
PROCESS_RUNS = 3
# The steps of a task's way through the cluster, each from the moment the one before it was seen.
STEPS = ("created", "job", "pod", "running", "worker", "callback", "exited", "completed", "status")
CLUSTER_PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "localnode", "operator")


# -- the data ------------------------------------------------------------------------------------------


def sample_png(side: int = SIDE_PIXELS) -> bytes:
    """A PNG with structure at every scale: smooth gradients in two channels, grain in the third (as a
    photo's, so that the PNG does not compress to almost nothing) and shapes with hard edges."""
    red = Image.linear_gradient("L").resize((side, side))
    green = Image.radial_gradient("L").resize((side, side))
    blue = Image.effect_noise((side, side), 24)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    step = side // 14
    for i in range(12):
        draw.rectangle(
            (i * step, i * step // 2, i * step + 2 * step, i * step // 2 + 4 * step),
            outline=(255, i * 20, 0),
            width=6,
        )
        draw.ellipse(
            (side - (i + 2) * step, i * step, side - i * step, i * step + 2 * step),
            fill=(i * 20, 255 - i * 20, 128),
        )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pixels(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def input_keys(number: int) -> list[str]:
    """Every task has inputs of its own, as a Core engine gives them (it uploads each task's files under
    fresh keys): no two tasks of a batch read the same object."""
    return [f"in/{number:03d}/photo.png", f"in/{number:03d}/rotation.txt"]


def output_key(batch: str, number: int) -> str:
    return f"out/{batch}/{number:03d}.png"


@dataclass(frozen=True)
class Planned:
    """One task of a batch: its ComputeTask name (also its Job's and pod's label), id and input number."""

    name: str
    task_id: str
    number: int


def plan(count: int) -> list[Planned]:
    return [Planned(f"rotate-{number:03d}", str(uuid.uuid4()), number) for number in range(count)]


def compute_task(task: Planned, batch: str, endpoint: str, callback_url: str) -> Json:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputeTask",
        "metadata": {"name": task.name},
        "spec": {
            "service": {"name": "image-rotate"},
            "dataIn": input_keys(task.number),
            "dataOut": [output_key(batch, task.number)],
            "s3": {
                "bucket": BUCKET,
                "endpoint": endpoint,
                "forcePathStyle": True,
                "credentialsSecretRef": {"name": SECRET},
            },
            "callbackUrl": callback_url,
            "taskId": task.task_id,
        },
    }


def service_task(task: Planned, batch: str, s3: S3Server, callback_url: str) -> Json:
    """The ServiceTask a Core engine POSTs to a service's `/compute`."""
    return {
        "s3_access_key_id": s3.access_key_id,
        "s3_secret_access_key": s3.secret_access_key,
        "s3_region": s3.region,
        "s3_host": s3.endpoint_url,
        "s3_bucket": BUCKET,
        "task": {
            "id": task.task_id,
            "data_in": input_keys(task.number),
            "data_out": [output_key(batch, task.number)],
            "status": "pending",
        },
        "callback_url": callback_url,
    }


def expected_update(batch: str, number: int) -> Json:
    return {"data_out": [output_key(batch, number)], "status": "finished", "error_message": None}


# -- figures -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_figures(prefix: str, lengths: Iterable[float], *, with_max: bool = False) -> dict[str, float]:
    values = list(lengths)
    figures = {
        f"{prefix}_p50_seconds": round(percentile(values, 0.5), 3),
        f"{prefix}_p95_seconds": round(percentile(values, 0.95), 3),
    }
    if with_max:
        figures[f"{prefix}_max_seconds"] = round(max(values), 3)
    return figures


def since(started: float, moments: Mapping[str, float]) -> list[float]:
    return [moment - started for moment in moments.values()]


def between(first: Mapping[str, float], then: Mapping[str, float]) -> list[float]:
    """Per task seen at both, from `first` to `then`."""
    return [moment - first[task] for task, moment in then.items() if task in first]


def step_figures(
    started: float, seen: Mapping[str, Mapping[str, float]], steps: Sequence[str]
) -> dict[str, float]:
    """The median over the tasks of each step's length: from the start (for the first step) or the step
    before to the moment the step was seen. `seen[step][task]` is a monotonic time."""
    figures: dict[str, float] = {}
    for number, step in enumerate(steps):
        lengths = since(started, seen[step]) if number == 0 else between(seen[steps[number - 1]], seen[step])
        figures[f"to_{step}_p50_seconds"] = round(median(lengths), 3) if lengths else 0.0
    return figures


def stage_figures(statuses: Iterable[Json]) -> dict[str, float]:
    """The worker's own timing of its stages (from each ComputeTask's `status.stages`), medians over tasks."""
    durations: dict[str, list[float]] = {"fetching": [], "processing": [], "saving": []}
    for status in statuses:
        for stage in status.get("stages") or ():
            if stage.get("status") in durations and stage.get("durationSeconds") is not None:
                durations[stage["status"]].append(float(stage["durationSeconds"]))
    return {f"{name}_p50_seconds": round(median(values), 3) for name, values in durations.items() if values}


def import_seconds(importtime_log: str) -> float:
    """The imports' total from `python -X importtime` output: the cumulative times of the top-level
    modules (the ones not imported by another)."""
    total = 0
    for line in importtime_log.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip().isdigit() and not name[1:].startswith(" "):
            total += int(cumulative)
    return total / 1e6


def _cpu_key(process: str) -> str:
    return f"{process.replace('-', '_')}_cpu_seconds"


def _cpu_total(figures: Mapping[str, Any], names: Iterable[str]) -> float:
    return sum(float(figures.get(_cpu_key(name), 0.0)) for name in names)


# -- watching a batch ----------------------------------------------------------------------------------


def _owner(body: Json) -> str | None:
    """The ComputeTask a task Job or task pod belongs to."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    owner = labels.get(OWNER_LABEL)
    return str(owner) if owner and labels.get(COMPONENT_LABEL) == "task" else None


def _running(body: Json) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return _owner(body) if phase in ("Running", "Succeeded", "Failed") else None


def _exited(body: Json) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return _owner(body) if phase in ("Succeeded", "Failed") else None


def _completed(body: Json) -> str | None:
    """A Job the Job controller has marked `Complete`."""
    conditions = (body.get("status") or {}).get("conditions") or ()
    done = any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)
    return _owner(body) if done else None


def _worker_started(body: Json) -> str | None:
    """The worker writes each state into the status as it enters it; the first one means it runs."""
    return _name(body) if (body.get("status") or {}).get("stages") else None


def _succeeded(body: Json) -> str | None:
    return _name(body) if (body.get("status") or {}).get("phase") == "Succeeded" else None


def _failed(body: Json) -> str | None:
    return _name(body) if (body.get("status") or {}).get("phase") == "Failed" else None


def _name(body: Json) -> str | None:
    return str((body.get("metadata") or {}).get("name") or "") or None


# -- the benchmark -------------------------------------------------------------------------------------


class ComputeBench(ClusterBench):
    def __init__(self, root: Path, tasks: int = TASKS, repetitions: int = REPETITIONS) -> None:
        super().__init__(root)
        self.tasks = tasks
        self.repetitions = repetitions
        self.work = root / "runs"
        self.s3 = S3Server(root / "s3")
        self.receiver = CallbackReceiver()
        self.service: subprocess.Popen[bytes] | None = None
        self.service_url = ""
        self.source = b""
        self.expected = b""
        self.requests: dict[str, dict[str, int]] = {}

    # -- setup ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        super().start()
        log.info("starting the S3 endpoint, the callback receiver and the baseline service")
        self.s3.start()
        self.receiver.start()
        s3 = self.s3.client()
        s3.create_bucket(Bucket=BUCKET)
        self.source = sample_png()
        with Image.open(io.BytesIO(self.source)) as image:
            self.expected = image.transpose(Image.Transpose.ROTATE_270).convert("RGB").tobytes()
        for number in range(max(self.tasks, WARM_UP_TASKS)):
            photo, rotation = input_keys(number)
            s3.put_object(Bucket=BUCKET, Key=photo, Body=self.source, ContentType="image/png")
            s3.put_object(Bucket=BUCKET, Key=rotation, Body=str(ROTATION_DEGREES).encode())
        self.start_service()

    def start_service(self) -> None:
        port = free_port()
        self.service_url = f"http://127.0.0.1:{port}"
        with (self.root / "service.log").open("ab") as out:
            self.service = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "uvicorn", "bench.compute_service:app"),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                    "--no-access-log",
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait(self._service_up, SERVICE_START_SECONDS, "the baseline service did not answer GET /status")

    def _service_up(self) -> bool:
        assert self.service is not None
        if self.service.poll() is not None:
            log_text = (self.root / "service.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the baseline service exited ({self.service.returncode}):\n{log_text}")
        try:
            answer = httpx.get(f"{self.service_url}/status", timeout=2)
        except httpx.HTTPError:
            return False
        return bool(answer.json() == {"status": "Service is available"})

    def stop(self) -> None:
        try:
            if self.service is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.service.pid, signal.SIGTERM)
                try:
                    self.service.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.service.pid, signal.SIGKILL)
                    self.service.wait()
                self.service = None
            self.receiver.stop()
            self.s3.stop()
        finally:
            super().stop()

    # -- measuring ------------------------------------------------------------------------------------

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process taking part. A pod's processes are the local node's
        children: their time counts once they have been reaped, which every pod of a finished batch has."""
        pids = self.pids()
        node = pids["localnode"]
        figures = {name: cpu_seconds(pids[name]) for name in CLUSTER_PROCESSES}
        figures["pods"] = cpu_seconds(node, with_children=True) - figures["localnode"]
        assert self.s3.state is not None
        figures["s3"] = cpu_seconds(self.s3.state.pid)
        assert self.service is not None
        figures["service"] = cpu_seconds(self.service.pid)
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        figures["bench"] = own.ru_utime + own.ru_stime
        figures["kubectl"] = children.ru_utime + children.ru_stime
        return figures

    def cpu_figures(self, before: Mapping[str, float], names: Iterable[str], count: int) -> dict[str, float]:
        after = self.cpu()
        names = list(names)
        figures = {_cpu_key(name): round(after[name] - before[name], 2) for name in names}
        work = [name for name in names if name != "bench"]
        figures["cpu_seconds_per_task"] = round(_cpu_total(figures, work) / count, 3)
        return figures

    def until(
        self, done: Callable[[], bool], check: Callable[[], None], started: float, what: Callable[[], str]
    ) -> None:
        while not done():
            check()
            if time.monotonic() > started + TIMEOUT:
                raise TimeoutError(f"batch incomplete after {TIMEOUT:.0f}s: {what()}")
            time.sleep(POLL_SECONDS)

    def check_results(self, batch: str, tasks: Sequence[Planned], arrivals: Mapping[str, Arrival]) -> None:
        """Every task's TaskUpdate is the protocol's `finished` one, and its output is the source turned by a
        quarter, pixel for pixel; the outputs are removed afterwards, so that the S3 endpoint's memory does
        not grow from batch to batch."""
        for task in tasks:
            update = arrivals[task.task_id].update
            if update != expected_update(batch, task.number):
                raise RuntimeError(f"task {task.name} of {batch}: unexpected TaskUpdate {update}")
        s3 = self.s3.client()
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"out/{batch}/")
        keys = sorted(item["Key"] for item in listing.get("Contents", []))
        if keys != sorted(output_key(batch, task.number) for task in tasks):
            raise RuntimeError(f"{batch}: the outputs in S3 are {keys}")
        for key in keys:
            if pixels(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) != self.expected:
                raise RuntimeError(f"{batch}: {key} is not the source rotated by {ROTATION_DEGREES}°")
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in keys]})

    def quiet(self) -> None:
        """Between batches: the cluster, the node and the service idle again."""
        pids = self.pids()
        assert self.service is not None
        self.settle(also={"localnode": pids["localnode"], "service": self.service.pid})

    # -- the Headwater side ---------------------------------------------------------------------------

    def prepare_namespace(self, namespace: str) -> None:
        self.kubectl("create", "namespace", namespace)
        self.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
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

    def watchers(self, namespace: str) -> dict[str, Watcher]:
        """One watch per resource: the task Jobs (created, complete); the task pods (created, running,
        ended); the ComputeTasks (Succeeded; created, the worker's first state, Failed)."""
        from kubernetes import client

        custom = client.CustomObjectsApi(self.api())
        core = client.CoreV1Api(self.api())
        jobs = ("batch", "v1", namespace, "jobs")
        tasks = (GROUP, VERSION, namespace, PLURAL)
        also = {"created": _name, "worker": _worker_started, "failed": _failed}
        return {
            "job": Watcher(
                "job", custom.list_namespaced_custom_object, jobs, _owner, {"completed": _completed}
            ),
            "pod": Watcher(
                "pod",
                core.list_namespaced_pod,
                (namespace,),
                _owner,
                {"running": _running, "exited": _exited},
            ),
            "status": Watcher("status", custom.list_namespaced_custom_object, tasks, _succeeded, also),
        }

    def headwater_batch(self, namespace: str, count: int, *, paused: bool = False) -> dict[str, Any]:
        """Apply `count` ComputeTasks at once and wait for all of them. `paused`: apply them with the
        operator stopped (SIGSTOP), then time from the moment it is resumed with all of them waiting."""
        self.prepare_namespace(namespace)
        tasks = plan(count)
        ids = {task.task_id for task in tasks}
        by_id = {task.task_id: task.name for task in tasks}
        documents = [
            compute_task(task, namespace, self.s3.endpoint_url, self.receiver.url_for(task.task_id))
            for task in tasks
        ]
        manifest = self.work / f"{namespace}.yaml"
        manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        requests_before = self.api_requests()
        watchers = self.watchers(namespace)
        statuses = watchers["status"]
        for watcher in watchers.values():
            watcher.start()

        def done() -> bool:
            return statuses.count() == count and len(self.receiver.received(ids)) == count

        def check() -> None:
            self.check_operator()
            for watcher in watchers.values():
                if watcher.error is not None:
                    raise RuntimeError(f"watching {watcher.name} failed: {watcher.error}")
            if statuses.count("failed"):
                failed = sorted(statuses.times("failed"))
                raise RuntimeError(f"ComputeTasks failed: {failed}: {self.describe(namespace, failed[0])}")

        def what() -> str:
            counts = ", ".join(
                f"{check} {len(seen)}" for w in watchers.values() for check, seen in w.seen.items()
            )
            return f"{counts}, callbacks {len(self.receiver.received(ids))} of {count}"

        assert self.operator is not None
        try:
            if paused:
                os.killpg(self.operator.pid, signal.SIGSTOP)
                try:
                    apply_seconds = self.apply(namespace, manifest)
                    before, started = self.cpu(), time.monotonic()
                finally:
                    os.killpg(self.operator.pid, signal.SIGCONT)
            else:
                before, started = self.cpu(), time.monotonic()
                apply_seconds = self.apply(namespace, manifest)
            self.until(done, check, started, what)
            arrivals = self.receiver.received(ids)
            seen = {step: w.times(step) for w in watchers.values() for step in w.seen}
        finally:
            for watcher in watchers.values():
                watcher.stop()
        seen["callback"] = {by_id[task_id]: arrival.at for task_id, arrival in arrivals.items()}
        finished = max(max(seen["status"].values()), max(seen["callback"].values()))
        # The pods of the batch have all ended (their tasks are Succeeded): wait until the node reaped them.
        self.quiet()
        cpu = self.cpu_figures(before, (*CLUSTER_PROCESSES, "pods", "s3", "kubectl", "bench"), count)
        made = {key: n - requests_before.get(key, 0) for key, n in self.api_requests().items()}
        self.requests[namespace] = {
            key: n for key, n in made.items() if n > 0 and not key.startswith("WATCH")
        }
        status_of = [
            item.get("status") or {}
            for item in json.loads(self.kubectl("get", PLURAL, "-n", namespace, "-o", "json"))["items"]
        ]
        undelivered = [s.get("taskId") for s in status_of if not (s.get("callback") or {}).get("delivered")]
        if undelivered:
            raise RuntimeError(f"{namespace}: callbacks not recorded as delivered for tasks {undelivered}")
        self.check_results(namespace, tasks, arrivals)
        figures = {
            "seconds": round(finished - started, 3),
            "tasks_per_second": round(count / (finished - started), 3),
            "kubectl_apply_seconds": round(apply_seconds, 3),
            **latency_figures("latency", since(started, seen["callback"]), with_max=True),
            **latency_figures("status", since(started, seen["status"])),
        }
        if not paused:  # else every task was created before the start
            figures.update(latency_figures("own_latency", between(seen["created"], seen["callback"])))
        steps = STEPS[1:] if paused else STEPS
        figures["api_requests_per_task"] = round(sum(self.requests[namespace].values()) / count, 1)
        return {**figures, **step_figures(started, seen, steps), **stage_figures(status_of), **cpu}

    def apply(self, namespace: str, manifest: Path) -> float:
        """`kubectl apply -f manifest`; how long it took."""
        started = time.monotonic()
        self.kubectl("apply", "-n", namespace, "-f", str(manifest), timeout=TIMEOUT)
        return time.monotonic() - started

    def describe(self, namespace: str, name: str) -> str:
        """A failed task's status and its pods' logs."""
        task = json.loads(self.kubectl("get", PLURAL, name, "-n", namespace, "-o", "json"))
        selector = f"{OWNER_LABEL}={name}"
        logs = self.kubectl("logs", "-n", namespace, "-l", selector, "--all-containers", "--tail=40")
        return f"{json.dumps(task.get('status') or {}, indent=1)[-3000:]}\nlogs:\n{logs[-4000:]}"

    # -- the baseline ---------------------------------------------------------------------------------

    def service_batch(self, batch: str, count: int) -> dict[str, Any]:
        tasks = plan(count)
        ids = {task.task_id for task in tasks}
        bodies = [service_task(task, batch, self.s3, self.receiver.url_for(task.task_id)) for task in tasks]
        before = self.cpu()
        started = time.monotonic()
        answers = asyncio.run(_post_all(f"{self.service_url}/compute", bodies))
        posted = time.monotonic()
        refused = [answer for answer in answers if answer != (200, {"status": "Task added to the queue"})]
        if refused:
            raise RuntimeError(f"{batch}: the service refused tasks: {refused[:3]}")

        def check() -> None:
            assert self.service is not None
            if self.service.poll() is not None:
                raise RuntimeError(f"the baseline service exited ({self.service.returncode})")

        def what() -> str:
            return f"callbacks {len(self.receiver.received(ids))} of {count}"

        self.until(lambda: len(self.receiver.received(ids)) == count, check, started, what)
        arrivals = self.receiver.received(ids)
        finished = max(arrival.at for arrival in arrivals.values())
        self.quiet()
        cpu = self.cpu_figures(before, ("service", "s3", "bench"), count)
        self.check_results(batch, tasks, arrivals)
        return {
            "seconds": round(finished - started, 3),
            "tasks_per_second": round(count / (finished - started), 3),
            "post_seconds": round(posted - started, 3),
            **latency_figures("latency", (a.at - started for a in arrivals.values()), with_max=True),
            **cpu,
        }

    # -- the run --------------------------------------------------------------------------------------

    def run(self) -> Benchmark:
        self.start()
        log.info("warm-up: %d tasks on each side, not counted", WARM_UP_TASKS)
        self.service_batch("service-warm-up", WARM_UP_TASKS)
        self.headwater_batch("bench-compute-warm-up", WARM_UP_TASKS)
        self.quiet()
        subjects: list[dict[str, Any]] = []
        baselines: list[dict[str, Any]] = []
        for number in range(1, self.repetitions + 1):
            baselines.append(self.service_batch(f"service-{number}", self.tasks))
            log.info("service %d: %s", number, baselines[-1])
            subjects.append(self.headwater_batch(f"bench-compute-{number}", self.tasks))
            log.info("computetasks %d: %s", number, subjects[-1])
        requests = self.requests_per_task([f"bench-compute-{n}" for n in range(1, self.repetitions + 1)])
        diagnosis = self.diagnose()
        return self.judge(subjects, baselines, requests, diagnosis)

    def requests_per_task(self, namespaces: list[str]) -> dict[str, float]:
        """API requests per task of the batches in `namespaces`, by verb and resource, busiest first."""
        total: dict[str, int] = {}
        for namespace in namespaces:
            for key, count in self.requests.get(namespace, {}).items():
                total[key] = total.get(key, 0) + count
        tasks = self.tasks * len(namespaces)
        ordered = sorted(total.items(), key=lambda item: -item[1])
        return {key: round(count / tasks, 2) for key, count in ordered if count / tasks >= 0.05}

    def diagnose(self) -> dict[str, Any]:
        """Once each: one task alone through the cluster and through the service (latency without
        queueing), and the worker's command as a plain process beside the cluster (no pod, no API)."""
        log.info("diagnosis: one task alone on each side, then the worker as a plain process")
        alone = self.headwater_batch("bench-compute-alone", 1)
        service_alone = self.service_batch("service-alone", 1)
        self.quiet()
        log.info("diagnosis: %d ComputeTasks applied with the operator paused, then resumed", self.tasks)
        paused = self.headwater_batch("bench-compute-paused", self.tasks, paused=True)
        diagnosis = {
            "operator_resumed_with_all_waiting": paused,
            "one_computetask_alone": alone,
            "one_service_task_alone": service_alone,
            "worker_process": self.worker_process(),
            "pillow": self.pillow(),
        }
        log.info("diagnosis: %s", diagnosis)
        return diagnosis

    def worker_process(self) -> dict[str, float]:
        """`python -m headwater_worker compute task` run directly with the configuration a pod gets (no status
        writes: it has no API access), plainly and under `-X importtime`, and a bare interpreter; medians of
        `PROCESS_RUNS` runs each."""
        runs: dict[str, list[float]] = {}
        for number in range(PROCESS_RUNS):
            bare = measured([sys.executable, "-c", "pass"], folder=self.work, name=f"bare-python-{number}")
            figures = {"bare_python_seconds": bare.seconds}
            usage, result = self.run_worker(f"worker-{number}")
            figures["worker_process_seconds"] = usage.seconds
            figures["worker_process_cpu_seconds"] = usage.cpu_seconds
            figures["worker_process_peak_rss_mib"] = usage.max_rss_mib
            for stage in result.get("stages") or ():
                if stage.get("durationSeconds") is not None:
                    figures[f"worker_process_{stage['status']}_seconds"] = float(stage["durationSeconds"])
            self.run_worker(f"worker-importtime-{number}", "-X", "importtime")
            text = (self.work / f"worker-importtime-{number}.err").read_text()
            figures["worker_import_seconds"] = import_seconds(text)
            for key, value in figures.items():
                runs.setdefault(key, []).append(value)
        return {key: round(median(values), 3) for key, values in runs.items()}

    def pillow(self) -> dict[str, float]:
        """The work of one task in this process, by part: medians of `PROCESS_RUNS` runs."""
        runs: dict[str, list[float]] = {"decode_seconds": [], "rotate_seconds": [], "encode_seconds": []}
        for _ in range(PROCESS_RUNS):
            started = time.perf_counter()
            with Image.open(io.BytesIO(self.source)) as image:
                image.load()
                decoded = time.perf_counter()
                turned = image.transpose(Image.Transpose.ROTATE_270)
            rotated = time.perf_counter()
            turned.save(io.BytesIO(), "PNG")
            encoded = time.perf_counter()
            runs["decode_seconds"].append(decoded - started)
            runs["rotate_seconds"].append(rotated - decoded)
            runs["encode_seconds"].append(encoded - rotated)
        return {key: round(median(values), 3) for key, values in runs.items()}

    def run_worker(self, name: str, *flags: str) -> tuple[Usage, Json]:
        """One task run by the worker's command as a plain process; its usage and its result."""
        from headwater_worker.compute.config import CONFIG_ENV, ComputeConfig

        task = plan(1)[0]
        config = ComputeConfig.model_validate(
            {
                "task": {"id": task.task_id, "data_in": input_keys(0), "data_out": [output_key(name, 0)]},
                "service": "image-rotate",
                "s3": {"bucket": BUCKET, "endpoint": self.s3.endpoint_url, "forcePathStyle": True},
                "callbackUrl": self.receiver.url_for(task.task_id),
            }
        )
        termination = self.work / f"{name}.termination"
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
        env = {
            **{key: os.environ[key] for key in keep if key in os.environ},
            CONFIG_ENV: config.to_env(),
            "AWS_ACCESS_KEY_ID": self.s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_access_key,
            "HEADWATER_TERMINATION_LOG": str(termination),
        }
        command = [sys.executable, *flags, "-m", "headwater_worker", "compute", "task"]
        usage = measured(command, folder=self.work, name=name, env=env)
        result: Json = json.loads(termination.read_text()) if termination.exists() else {}
        if usage.returncode != 0 or (result.get("update") or {}).get("status") != "finished":
            stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker process failed ({usage.returncode}): {result}\n{stderr}")
        self.check_results(name, [task], self.receiver.received({task.task_id}))
        return usage, result

    def judge(
        self,
        subjects: list[dict[str, Any]],
        baselines: list[dict[str, Any]],
        requests: dict[str, float],
        diagnosis: dict[str, Any],
    ) -> Benchmark:
        subject = Side.from_runs(
            "ComputeTasks through the operator",
            f"one `kubectl apply -f` of {self.tasks} `image-rotate` ComputeTasks (one multi-document file) "
            "into an empty namespace; the operator starts a Job per task, whose pod (`python -m "
            "headwater_worker compute task` on the local node) reads the task's PNG and rotation from S3, "
            "rotates, writes its `dataOut` key, writes each protocol state into the status and PATCHes the "
            "TaskUpdate to the callback receiver. Done when every ComputeTask is `Succeeded` and every "
            "TaskUpdate arrived.",
            subjects,
        )
        baseline = Side.from_runs(
            "a FastAPI service of the seed's design",
            f"the same {self.tasks} tasks as ServiceTasks POSTed at once to `/compute` of a long-running "
            "uvicorn process (`bench/compute_service.py`): it queues each and answers at once; one "
            "background worker takes them in turn, reads the inputs with boto3 (a client per task, from the "
            "task's key pair), rotates with Pillow exactly as `image-rotate` does, writes the output and "
            "PATCHes the TaskUpdate to the same receiver. Done when every TaskUpdate arrived.",
            baselines,
        )
        return Benchmark.judge(
            key="computetask",
            title="ComputeTask throughput and latency",
            metric="tasks_per_second",
            unit="tasks/s",
            subject=subject,
            baseline=baseline,
            target=TARGET,
            ratio_definition=f"Headwater's tasks/s ÷ the service's tasks/s for {self.tasks} tasks (the "
            "service's time ÷ Headwater's); higher is better",
            parameters=self.parameters(subject.median, baseline.median, diagnosis),
            details={"api_requests_per_task": requests, "diagnosis": diagnosis},
            method=self.method(),
            findings=findings(subject.median, baseline.median, requests, diagnosis, self.tasks),
        )

    def parameters(self, s: Mapping[str, Any], b: Mapping[str, Any], d: Mapping[str, Any]) -> dict[str, Any]:
        alone, process = d["one_computetask_alone"], d["worker_process"]
        return {
            "tasks per batch": self.tasks,
            "image": f"{SIDE_PIXELS}{TIMES}{SIDE_PIXELS} RGB PNG",
            "png bytes": len(self.source),
            "rotation degrees": ROTATION_DEGREES,
            "p50 target seconds": P50_TARGET_SECONDS,
            "Headwater p50 seconds": s["latency_p50_seconds"],
            "Headwater p95 seconds": s["latency_p95_seconds"],
            "service p50 seconds": b["latency_p50_seconds"],
            "service p95 seconds": b["latency_p95_seconds"],
            "p50 target met": "yes" if float(s["latency_p50_seconds"]) <= P50_TARGET_SECONDS else "no",
            "one ComputeTask alone seconds": alone["latency_p50_seconds"],
            "one service task alone seconds": d["one_service_task_alone"]["latency_p50_seconds"],
            "worker process seconds": process["worker_process_seconds"],
            "worker process CPU seconds": process["worker_process_cpu_seconds"],
            "worker imports seconds": process["worker_import_seconds"],
            "pod created to Running p50 seconds": s["to_running_p50_seconds"],
            "pod Running to the worker's first state p50 seconds": s["to_worker_p50_seconds"],
            "CPU seconds per task, Headwater": s["cpu_seconds_per_task"],
            "CPU seconds per task, service": b["cpu_seconds_per_task"],
        }

    def method(self) -> list[str]:
        return [
            "A fresh local control plane (etcd, kube-apiserver, kube-controller-manager and the local node) "
            "in a temporary folder, the CRDs from `crds/` installed and the operator running as its own "
            "process (`python -m headwater_operator --standalone`); the S3 endpoint (`S3Server`, moto as its "
            "own process), the callback receiver (a threaded HTTP server inside the benchmark) and the "
            "baseline service (uvicorn) on the same machine; all stopped at the end.",
            f"The image: a {SIDE_PIXELS}{TIMES}{SIDE_PIXELS} RGB PNG of gradients, grain and shapes "
            f"({len(self.source):,} bytes), with `rotation` {ROTATION_DEGREES}. Each task of a batch has its "
            "own copy of both inputs (as a Core engine uploads each task's files under keys of its own); "
            "the inputs are only read, so one set serves every batch of both sides. Each batch writes keys "
            "of its own; every output is checked pixel for pixel against Pillow's rotation of the source, "
            "every TaskUpdate against the protocol's `finished` update, then the outputs are deleted.",
            "Latency of a task: from the start of the batch (`kubectl apply`, or the first POST) to the "
            "moment the receiver got its PATCH. Headwater's `status` latency is the moment a watch (opened "
            "before the apply) delivered the ComputeTask with `phase: Succeeded`; its `own latency` runs "
            "from the moment the ComputeTask was created.",
            "Each Headwater task's way is timed by watches opened before the apply: the ComputeTask created, "
            "its Job, its pod, the pod `Running`, the worker's first state in the status (`fetching`), the "
            "callback, the pod ended, the Job `Complete`, `Succeeded`; each step's median over the tasks, "
            "from the step before, is a `to <step> p50` figure.",
            f"A warm-up of {WARM_UP_TASKS} tasks on each side first (not counted); before each batch and "
            "before its CPU time is read, the benchmark waits until the operator, the API server, the node "
            "and the service are idle (under 5% of a core for a second), so a batch's CPU time includes "
            "its aftermath (its pods reaped).",
            "CPU seconds from `/proc/<pid>/stat` at the start and the end of each batch: the pods' are the "
            "local node's reaped children's; kubectl's and the benchmark's own (`bench`: the watches and "
            "the receiver) from rusage. CPU per task leaves the benchmark's own out. API requests from the "
            "API server's `apiserver_request_total`, before the batch and once it is idle again.",
            f"After the measured batches, once each: one ComputeTask alone and one service task alone; "
            f"{self.tasks} ComputeTasks applied with the operator paused (SIGSTOP), then timed from the "
            f"moment it is resumed (SIGCONT) with all of them waiting; and, {PROCESS_RUNS} times each "
            "(medians), the worker's command run directly as a process beside the cluster (the "
            "configuration a pod gets, no status writes), plainly and under `python -X importtime`, and a "
            "bare `python -c pass`.",
        ]


async def _post_all(url: str, bodies: Sequence[Json]) -> list[tuple[int, Any]]:
    """POST every body at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        answers = await asyncio.gather(*(client.post(url, json=body) for body in bodies))
    return [(answer.status_code, answer.json()) for answer in answers]


# -- findings ------------------------------------------------------------------------------------------


def _seconds(figures: Mapping[str, Any], key: str) -> str:
    value = float(figures.get(key, 0.0))
    return f"{value:.3f} s" if value < 0.1 else f"{value:.2f} s"


def _steps(figures: Mapping[str, Any], steps: Sequence[str]) -> str:
    return ", ".join(f"{step} {_seconds(figures, f'to_{step}_p50_seconds')}" for step in steps)


def findings(
    s: Mapping[str, Any],
    b: Mapping[str, Any],
    requests: Mapping[str, float],
    d: Mapping[str, Any],
    tasks: int,
) -> list[str]:
    """What the figures say, in words: every number here comes from this run."""
    cores = os.cpu_count() or 1
    alone, service_alone = d["one_computetask_alone"], d["one_service_task_alone"]
    resumed, process, pillow = d["operator_resumed_with_all_waiting"], d["worker_process"], d["pillow"]
    work = float(b["cpu_seconds_per_task"])
    floor = (tasks / 2) * work / cores
    p50 = float(s["latency_p50_seconds"])
    apply, quiet_apply = float(s["kubectl_apply_seconds"]), float(resumed["kubectl_apply_seconds"])
    cluster_cpu = ", ".join(
        f"{name} {float(s[_cpu_key(name)]):.1f} s" for name in ("pods", *CLUSTER_PROCESSES, "s3", "kubectl")
    )
    busiest = ", ".join(f"{key} {count:g}" for key, count in list(requests.items())[:8])
    outside = float(process["worker_process_seconds"]) - sum(
        float(process.get(f"worker_process_{stage}_seconds", 0.0))
        for stage in ("fetching", "processing", "saving")
    )
    said = [
        f"{tasks} ComputeTasks took {float(s['seconds']):.1f} s ({float(s['tasks_per_second']):.2f} "
        f"tasks/s); the service took {float(b['seconds']):.1f} s ({float(b['tasks_per_second']):.2f} "
        f"tasks/s; all {tasks} POSTs answered in {_seconds(b, 'post_seconds')}).",
        f"Latency from the start of the batch to the callback (medians of the repetitions): Headwater p50 "
        f"{p50:.1f} s, p95 {float(s['latency_p95_seconds']):.1f} s (`Succeeded` in the status: p50 "
        f"{float(s['status_p50_seconds']):.1f} s); the service p50 {float(b['latency_p50_seconds']):.1f} s, "
        f"p95 {float(b['latency_p95_seconds']):.1f} s. The p50 target of {P50_TARGET_SECONDS:g} s is "
        f"{'met' if p50 <= P50_TARGET_SECONDS else 'not met'}. From each ComputeTask's own creation to its "
        f"callback: p50 {float(s['own_latency_p50_seconds']):.1f} s.",
        f"A Headwater task's way in the batch (median of each step, from the one before; `created` counts "
        f"from the start of the apply): {_steps(s, STEPS)}. The worker's own stages: fetching "
        f"{_seconds(s, 'fetching_p50_seconds')}, processing {_seconds(s, 'processing_p50_seconds')}, "
        f"saving {_seconds(s, 'saving_p50_seconds')}.",
    ]
    if apply > 2 * quiet_apply:
        said.append(
            f"`kubectl apply` of the batch took {apply:.1f} s, against {quiet_apply:.2f} s for the same "
            "apply with the operator paused: kubectl creates the objects one request after the other, and "
            "the pods of the first ones take the cores from it and from the API server, so the last tasks "
            "are created late. The local cluster's control plane shares the cores with the pods; a real "
            "one does not."
        )
    said += [
        f"With the operator paused, the {tasks} ComputeTasks were applied in {quiet_apply:.2f} s; resumed "
        f"with all of them waiting, they took {float(resumed['seconds']):.1f} s, p50 "
        f"{float(resumed['latency_p50_seconds']):.1f} s from the resume to the callback "
        f"({_steps(resumed, STEPS[1:])}). Created all at once, the pods wait for the local node, which "
        "starts containers one after the other from one thread, and then share the cores to the end.",
        f"One ComputeTask alone on the idle cluster: {float(alone['latency_p50_seconds']):.2f} s from the "
        f"apply to its callback, {float(alone['status_p50_seconds']):.2f} s to `Succeeded` "
        f"({_steps(alone, STEPS)}). Between the pod's end and the Job's `Complete` lies the Job controller's "
        "batching (it syncs a Job at most once a second after its pods change). One task alone through the "
        f"service: {float(service_alone['latency_p50_seconds']):.2f} s.",
        f"The worker's command run directly as a process: {_seconds(process, 'worker_process_seconds')}, "
        f"{_seconds(process, 'worker_process_cpu_seconds')} of CPU. Its stages took fetching "
        f"{_seconds(process, 'worker_process_fetching_seconds')}, processing "
        f"{_seconds(process, 'worker_process_processing_seconds')}, saving "
        f"{_seconds(process, 'worker_process_saving_seconds')}; the other {outside:.2f} s are the "
        f"interpreter and the imports ({_seconds(process, 'worker_import_seconds')} by `-X importtime`; a "
        f"bare interpreter starts in {_seconds(process, 'bare_python_seconds')}), the S3 client, the "
        "callback and the exit. The work itself, in Pillow: decoding "
        f"{_seconds(pillow, 'decode_seconds')}, turning {_seconds(pillow, 'rotate_seconds')}, encoding the "
        f"PNG {_seconds(pillow, 'encode_seconds')}.",
        f"CPU per task: Headwater {float(s['cpu_seconds_per_task']):.2f} s (batch medians: {cluster_cpu}), "
        f"the service {work:.2f} s (service {float(b['service_cpu_seconds']):.1f} s, S3 endpoint "
        f"{float(b['s3_cpu_seconds']):.1f} s). API requests per ComputeTask (watches left out, counted "
        f"until the cluster was idle again): {float(s['api_requests_per_task']):.1f}; the busiest: "
        f"{busiest}.",
        f"The floor: the work alone (the service's CPU per task, {work:.2f} s) means that on {cores} cores "
        f"no design ends half of {tasks} tasks started together before {floor:.1f} s. The service, one task "
        "at a time on one core, ends them one by one; Headwater starts them all and they share the cores, "
        "so its tasks end late and close together, its p50 near its batch time.",
        "What would lower the latency: (1) admit only about as many task pods at once as there are cores "
        "(a queue in the operator, or a quota per namespace): tasks then end in turn, p50 near half the "
        "batch time for the same throughput, and the apply is not starved; (2) a cheaper pod: the "
        "interpreter and the imports (boto3, pydantic, httpx, the entry points) are paid by every task, a "
        "resident worker pool (or `url` mode to a long-running service) pays them once; (3) fewer API "
        f"writes per task: {requests.get('PATCH computetasks/status', 0):g} status patches (the worker's "
        f"states and the operator's answers to each change) and {requests.get('POST events', 0):g} Events; "
        "(4) for the work itself, a lower PNG compression level.",
    ]
    return said


def run(tasks: int = TASKS, repetitions: int = REPETITIONS) -> Benchmark:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the progress
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-computetask-"))
    bench = ComputeBench(root, tasks, repetitions)
    try:
        return bench.run()
    finally:
        try:
            bench.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["REPETITIONS", "TASKS", "ComputeBench", "run"]
