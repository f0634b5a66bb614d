"""Run a task on a `url` service, one that speaks the protocol: POST the ServiceTask to `<url>/compute`, wait
for the service to PATCH its TaskUpdate back.

The `callback_url` the service gets reaches a receiver in this process: a stdlib HTTP server in a thread on
an ephemeral port (several tasks may share a host), enough for the one PATCH or few a task expects, and
with no event loop to share with the caller. While waiting, `GET <url>/tasks/{id}/status` is polled, so that
a service that ends the task without calling back is noticed, and one that forgot it too.

Every way it can go wrong ends the task in `error` with a message naming the service's URL (without
credentials), never with an exception.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import httpx
from pydantic import TypeAdapter, ValidationError

from ..logs import error_line, fields, one_line, redact
from ..retry_after import retry_after_seconds
from .protocol import ENDED, ServiceTask, StatusAnswer, Task, TaskStatus, TaskUpdate
from .urls import register_url_secrets, shown_url, url_host

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
BUSY_ATTEMPTS = 4  # a 503 on /compute: the service cannot take more now
BUSY_DELAY_SECONDS = 0.5  # doubled at each 503
MAX_BUSY_DELAY_SECONDS = 30.0
POLL_FAILURES = 3  # in a row, and the service is taken for gone
MAX_UPDATE_BYTES = 1 << 20

_task_status: TypeAdapter[TaskStatus] = TypeAdapter(TaskStatus)


class RemoteError(Exception):
    """The task cannot go on: it ends in `error` with this message."""


def run_remote(
    service_url: str,
    service_task: ServiceTask,
    *,
    advertised_host: str,
    receiver_host: str = "0.0.0.0",  # noqa: S104 - the service calls back from outside the pod
    deadline: float | None = None,
    poll_interval: float = 2.0,
    grace_seconds: float = 5.0,
    on_status: Callable[[TaskStatus], None] | None = None,
) -> TaskUpdate:
    """The task's TaskUpdate as the service sent it (or as its status said, or an `error`).

    `service_task.callback_url` is replaced by the receiver's, `http://{advertised_host}:{port}/tasks/{id}`.
    `deadline` is a `time.monotonic()` moment; `on_status` hears each intermediate status (fetching,
    processing, ...) the service reports; a status poll saying the task ended waits `grace_seconds` for the
    PATCH before it is believed.
    """
    base = service_url.rstrip("/")
    register_url_secrets(base)
    redact.add(service_task.s3_secret_access_key)
    started = time.monotonic()
    with CallbackReceiver(service_task.task.id, receiver_host) as receiver, httpx.Client() as http:
        sent = service_task.model_copy(update={"callback_url": receiver.callback_url(advertised_host)})
        watch = _Watch(
            http=http,
            base=base,
            task=sent.task,
            receiver=receiver,
            deadline=deadline,
            budget=None if deadline is None else deadline - started,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            on_status=on_status or (lambda _status: None),
        )
        try:
            _submit(http, base, sent, deadline)
            return watch.wait()
        except RemoteError as failure:
            log.warning("remote task failed", extra=fields(service=shown_url(base), problem=str(failure)))
            return TaskUpdate(status="error", error_message=str(failure))


def _submit(http: httpx.Client, base: str, service_task: ServiceTask, deadline: float | None) -> None:
    """POST the ServiceTask; only a 200 means the service took it. A busy service (503) is asked again."""
    url = f"{base}/compute"
    shown = shown_url(url)
    body = service_task.model_dump(mode="json")
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        timeout = _timeout(deadline)
        try:
            response = http.post(url, json=body, timeout=timeout)
        except httpx.TimeoutException:
            raise RemoteError(f"POST {shown} timed out after {timeout:g} s") from None
        except httpx.TransportError as failure:
            raise RemoteError(f"could not reach the service at {shown}: {error_line(failure)}") from None
        if response.status_code == 200:
            log.info("task submitted", extra=fields(service=shown, callbackUrl=service_task.callback_url))
            return
        problem = f"POST {shown} answered {response.status_code} {response.reason_phrase}{_detail(response)}"
        if response.status_code != 503:
            raise RemoteError(problem)
        if attempt == BUSY_ATTEMPTS:
            raise RemoteError(f"{problem} ({BUSY_ATTEMPTS} times: the service stayed busy)")
        hinted = retry_after_seconds(response.headers.get("Retry-After"))
        backoff = BUSY_DELAY_SECONDS * 2 ** (attempt - 1)
        wait = min(backoff if hinted is None else hinted, MAX_BUSY_DELAY_SECONDS)
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise RemoteError(f"{problem} (the service stayed busy until the deadline)")
        log.info("service busy; asking again", extra=fields(service=shown, retryInSeconds=wait))
        time.sleep(wait)


class _Watch:
    """Waiting for the end of a submitted task: the receiver's PATCHes first, the status poll as fallback."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        base: str,
        task: Task,
        receiver: CallbackReceiver,
        deadline: float | None,
        budget: float | None,
        poll_interval: float,
        grace_seconds: float,
        on_status: Callable[[TaskStatus], None],
    ) -> None:
        self.http, self.task, self.receiver = http, task, receiver
        self.status_url = f"{base}/tasks/{task.id}/status"
        self.deadline, self.budget = deadline, budget
        self.poll_interval, self.grace_seconds = poll_interval, grace_seconds
        self.on_status = on_status
        self.reported: TaskStatus | None = None
        self.poll_failures = 0
        self.polled_end: TaskStatus | None = None
        self.grace_end: float | None = None

    def wait(self) -> TaskUpdate:
        next_poll = time.monotonic() + self.poll_interval
        while True:
            wake = min(t for t in (next_poll, self.deadline, self.grace_end) if t is not None)
            update = self.receiver.next_update(max(0.0, wake - time.monotonic()))
            if update is not None:
                if update.status in ENDED:
                    return update
                self._report(update.status)
                continue
            now = time.monotonic()
            if self.grace_end is not None and now >= self.grace_end:
                return self._ended_without_callback()
            if self.deadline is not None and now >= self.deadline:
                raise RemoteError(f"the service did not finish within {round(self.budget or 0, 1):g} s")
            if now >= next_poll:
                self._poll()
                next_poll = time.monotonic() + self.poll_interval

    def _report(self, status: TaskStatus) -> None:
        if status not in ENDED and status != self.reported:
            self.reported = status
            self.on_status(status)

    def _poll(self) -> None:
        shown = shown_url(self.status_url)
        try:
            response = self.http.get(self.status_url, timeout=_timeout(self.deadline))
        except httpx.TransportError as failure:
            self._poll_failed(f"GET {shown} failed: {error_line(failure) or type(failure).__name__}")
            return
        if response.status_code == 404:
            raise RemoteError(f"the service does not know task {self.task.id} (GET {shown} answered 404)")
        if response.status_code != 200:
            self._poll_failed(f"GET {shown} answered {response.status_code} {response.reason_phrase}")
            return
        try:
            status = _task_status.validate_python(StatusAnswer.model_validate_json(response.content).status)
        except ValidationError:
            shown_body = redact(one_line(response.text))[:100]
            self._poll_failed(f"GET {shown} answered {shown_body!r}, not a task status")
            return
        self.poll_failures = 0
        self._report(status)
        if status in ENDED and self.grace_end is None:
            self.polled_end = status
            self.grace_end = time.monotonic() + self.grace_seconds

    def _poll_failed(self, problem: str) -> None:
        self.poll_failures += 1
        log.warning("status poll failed", extra=fields(problem=problem, inARow=self.poll_failures))
        if self.poll_failures >= POLL_FAILURES:
            raise RemoteError(f"{problem} ({self.poll_failures} status polls failed in a row)")

    def _ended_without_callback(self) -> TaskUpdate:
        status = self.polled_end or "error"
        message = (
            f"the service ended task {self.task.id} with status error without calling back"
            if status == "error"
            else None
        )
        log.warning("task ended without a callback", extra=fields(task=str(self.task.id), status=status))
        return TaskUpdate(status=status, data_out=list(self.task.data_out or []), error_message=message)


def _timeout(deadline: float | None) -> float:
    if deadline is None:
        return REQUEST_TIMEOUT_SECONDS
    return max(0.05, min(REQUEST_TIMEOUT_SECONDS, deadline - time.monotonic()))


def _detail(response: httpx.Response) -> str:
    """`: <detail>` of a JSON error answer (FastAPI's shape), or nothing."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    if detail is None:
        return ""
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return f": {redact(one_line(text))[:200]}"


# -- the receiver ----------------------------------------------------------------------------------------


class CallbackReceiver:
    """`PATCH /tasks/{task_id}` with a TaskUpdate body, for one task, on an ephemeral port of `host`.

    Answers `200 {"status": <the status received>}`; a body that is not a TaskUpdate gets `400` with the
    errors in FastAPI's `{"detail": [{"loc", "msg", "type"}]}` shape, and the receiver keeps waiting; another
    task's id gets `404`.
    """

    def __init__(self, task_id: UUID, host: str) -> None:
        self.task_id = task_id
        self.updates: queue.Queue[TaskUpdate] = queue.Queue()
        self._server = _server_class(host)((host, 0), self._handler_class())
        # serve_forever checks for shutdown this often: each task waits that long for its receiver to stop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"callback-receiver-{task_id}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def callback_url(self, advertised_host: str) -> str:
        return f"http://{url_host(advertised_host)}:{self.port}/tasks/{self.task_id}"

    def next_update(self, timeout: float) -> TaskUpdate | None:
        try:
            return self.updates.get(timeout=timeout)
        except queue.Empty:
            return None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer to a request; a valid PATCH queues its update."""
        segments = urllib.parse.urlsplit(path).path.strip("/").split("/")
        if len(segments) != 2 or segments[0] != "tasks":
            return 404, {"detail": "Not Found"}
        if method != "PATCH":
            return 405, {"detail": "Method Not Allowed"}
        if _uuid(segments[1]) != self.task_id:
            return 404, {"detail": f"Task {segments[1]} not found"}
        if body is None:
            return 411, {"detail": f"a Content-Length of at most {MAX_UPDATE_BYTES} bytes is required"}
        try:
            update = TaskUpdate.model_validate_json(body)
        except ValidationError as invalid:
            errors = invalid.errors(include_url=False, include_context=False, include_input=False)
            return 400, {"detail": [{**error, "loc": ["body", *error["loc"]]} for error in errors]}
        log.info("callback received", extra=fields(task=str(self.task_id), status=update.status))
        self.updates.put(update)
        return 200, StatusAnswer(status=update.status).model_dump()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 30  # a client that stops sending mid-request does not hold a thread for ever

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("receiver: " + format, *args)

            def _serve(self) -> None:
                length = self.headers.get("Content-Length")
                body = None
                if length is not None and length.isdigit() and int(length) <= MAX_UPDATE_BYTES:
                    body = self.rfile.read(int(length))
                status, document = receiver.answer(self.command, self.path, body)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PATCH = do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's names

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("callback receiver: a request failed", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _server_class(host: str) -> type[_Server]:
    return _Server6 if ":" in host else _Server


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
