"""Local stand-ins for both sides of the compute service protocol, each a thread serving on 127.0.0.1.

`FakeComputeService` is a service: it answers `POST /compute` at once with `{"status": "Task added to the
queue"}`, then, in a thread of its own, moves the task through `stages` and PATCHes the callback (or, as
scripted, never calls back, never finishes, is busy, fails, or forgets the task), answering
`GET /status` and `GET /tasks/{id}/status` meanwhile. `FakeCallbackReceiver` is the Core engine's side of
the callback: it records every PATCH and answers as scripted (`500`s then `200`, `404`, or not at all).
Both keep what they received.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Self
from uuid import UUID

import httpx
from headwater_worker.compute.protocol import (
    SERVICE_AVAILABLE,
    TASK_QUEUED,
    ServiceTask,
    TaskStatus,
    TaskUpdate,
)

from .apis import Request

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Json = Any
# A status, a JSON answer and extra headers; None leaves the request unanswered and closes the connection.
Answer = tuple[int, Json, dict[str, str]] | None


class FakeServer:
    """A threaded HTTP server passing every request to `answer(request)`, keeping a log of them."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.released = threading.Event()  # set at stop: whatever waits inside a request gives up
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parsed.path,
                    dict(urllib.parse.parse_qsl(parsed.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with fake.lock:
                    fake.requests.append(request)
                answer = fake.answer(request)
                if answer is None:
                    return
                status, document, headers = answer
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _serve  # noqa: N815 - the names http.server calls

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def received(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, request: Request) -> Answer:
        return 404, {"detail": "Not Found"}, {}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that gave up before the answer: nothing a test needs to see


# -- the service side ------------------------------------------------------------------------------------


@dataclass
class Callback:
    """One PATCH the service sent: where, what, and what the receiver answered (None: no answer)."""

    url: str
    body: bytes
    status_code: int | None
    answer: Json

    def json(self) -> Json:
        return json.loads(self.body)


def finished_with_outputs(service_task: ServiceTask) -> TaskUpdate:
    """The default result: `finished`, with the task's `data_out` or one key under its id."""
    task = service_task.task
    return TaskUpdate(status="finished", data_out=task.data_out or [f"{task.id}/result.txt"])


class FakeComputeService(FakeServer):
    """A service of the protocol, scripted per test.

    - `stages`: intermediate statuses, each PATCHed (and shown by the status endpoint) `delay` apart;
    - `result(service_task)`: the final TaskUpdate, PATCHed `delay` after the last stage;
    - `calls_back=False`: no PATCH ever comes, only the status endpoint tells how the task goes;
    - `finishes=False`: the task stays in its last status for ever;
    - `busy=N`: the first N `/compute` get `503` (with `Retry-After: 0`); `compute_answer`: every `/compute`
      gets this status and JSON instead of being queued;
    - `status_answer`: every `GET /tasks/{id}/status` gets this status and JSON (`404`: a forgotten task);
    - `bad_bodies`: PATCHed (raw) before anything else, to see how the receiver takes them;
    - `s3` with `content(key)`: a finished task's outputs are written to the ServiceTask's bucket first.
    """

    def __init__(
        self,
        *,
        stages: Sequence[TaskStatus] = (),
        delay: float = 0.05,
        result: Callable[[ServiceTask], TaskUpdate] = finished_with_outputs,
        calls_back: bool = True,
        finishes: bool = True,
        busy: int = 0,
        compute_answer: tuple[int, Json] | None = None,
        status_answer: tuple[int, Json] | None = None,
        bad_bodies: Sequence[bytes] = (),
        s3: S3Client | None = None,
        content: Callable[[str], bytes] = lambda key: f"output {key}\n".encode(),
    ) -> None:
        super().__init__()
        self.stages, self.delay, self.result = tuple(stages), delay, result
        self.calls_back, self.finishes, self.busy = calls_back, finishes, busy
        self.compute_answer, self.status_answer = compute_answer, status_answer
        self.bad_bodies = tuple(bad_bodies)
        self.s3, self.content = s3, content
        self.tasks: list[ServiceTask] = []
        self.callbacks: list[Callback] = []
        self.statuses: dict[UUID, TaskStatus] = {}
        self.workers: list[threading.Thread] = []
        self.http = httpx.Client(timeout=2.0)

    def join(self, timeout: float = 5.0) -> None:
        """Wait until every task taken has been processed (its last PATCH answered and recorded)."""
        for worker in list(self.workers):
            worker.join(timeout)

    def stop(self) -> None:
        super().stop()
        self.join()
        self.http.close()

    def answer(self, request: Request) -> Answer:
        if request.method == "GET" and request.path == "/status":
            return 200, SERVICE_AVAILABLE.model_dump(), {}
        if request.method == "POST" and request.path == "/compute":
            return self._compute(request)
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 3 and parts[0] == "tasks" and parts[2] == "status":
            if self.status_answer is not None:
                return self.status_answer[0], self.status_answer[1], {}
            task_id = _uuid(parts[1])
            with self.lock:
                status = None if task_id is None else self.statuses.get(task_id)
            if status is None:
                return 404, {"detail": "Task not found"}, {}
            return 200, {"status": status}, {}
        return super().answer(request)

    def _compute(self, request: Request) -> Answer:
        if self.compute_answer is not None:
            return self.compute_answer[0], self.compute_answer[1], {}
        with self.lock:
            if self.busy > 0:
                self.busy -= 1
                return 503, {"detail": "Service is busy"}, {"Retry-After": "0"}
        service_task = ServiceTask.model_validate_json(request.body)
        with self.lock:
            self.tasks.append(service_task)
            self.statuses[service_task.task.id] = "pending"
        worker = threading.Thread(target=self._process, args=(service_task,), daemon=True)
        self.workers.append(worker)
        worker.start()
        return 200, TASK_QUEUED.model_dump(), {}

    def _process(self, service_task: ServiceTask) -> None:
        task_id = service_task.task.id
        for body in self.bad_bodies:
            self._patch(service_task.callback_url, body)
        for stage in self.stages:
            if self.released.wait(self.delay):
                return
            with self.lock:
                self.statuses[task_id] = stage
            if self.calls_back:
                self._patch(service_task.callback_url, TaskUpdate(status=stage).model_dump_json().encode())
        if self.released.wait(self.delay) or not self.finishes:
            return
        update = self.result(service_task)
        if self.s3 is not None and update.status == "finished":
            for key in update.data_out:
                self.s3.put_object(Bucket=service_task.s3_bucket, Key=key, Body=self.content(key))
        with self.lock:
            self.statuses[task_id] = update.status
        if self.calls_back:
            self._patch(service_task.callback_url, update.model_dump_json().encode())

    def _patch(self, url: str, body: bytes) -> None:
        status_code: int | None = None
        answer: Json = None
        try:
            response = self.http.patch(url, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as failure:
            answer = str(failure)
        else:
            status_code = response.status_code
            answer = response.json() if response.content else None
        with self.lock:
            self.callbacks.append(Callback(url, body, status_code, answer))


# -- the Core engine's side of the callback -----------------------------------------------------------------

HANG: Literal["hang"] = "hang"
# A status code, a status code with its `Retry-After`, or HANG: accept the request and never answer.
ScriptedAnswer = int | tuple[int, str] | Literal["hang"]


class FakeCallbackReceiver(FakeServer):
    """`PATCH /tasks/{id}` as a Core engine takes it, answered as scripted, then `200`.

    `script(500, (503, "7"), 404)` answers the next three with 500, with 503 and `Retry-After: 7`, and with
    404; `script(HANG)` keeps the next one waiting (until `hang_seconds` or the fake stops) and closes it
    unanswered."""

    hang_seconds = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.scripted: deque[ScriptedAnswer] = deque()

    def script(self, *answers: ScriptedAnswer) -> None:
        with self.lock:
            self.scripted.extend(answers)

    def url_for(self, task_id: UUID | str) -> str:
        return f"{self.url}/tasks/{task_id}"

    @property
    def patches(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "PATCH"]

    def answer(self, request: Request) -> Answer:
        if request.method != "PATCH" or not request.path.startswith("/tasks/"):
            return super().answer(request)
        with self.lock:
            scripted = self.scripted.popleft() if self.scripted else 200
        if isinstance(scripted, str):  # HANG
            self.released.wait(self.hang_seconds)
            return None
        status, retry_after = scripted if isinstance(scripted, tuple) else (scripted, None)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if status == 200:
            return 200, json.loads(request.body), headers
        if status == 404:
            return 404, {"detail": "Task Not Found"}, headers
        return status, {"detail": "scripted failure"}, headers


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
