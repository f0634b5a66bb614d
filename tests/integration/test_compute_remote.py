"""A task run on a `url` service: a real local HTTP service of the protocol, a real receiver for its PATCH.

What it shows: the service gets a ServiceTask of the protocol whose `callback_url` reaches the receiver;
its intermediate statuses reach `on_status` and its final TaskUpdate is the result; a service that ends
the task without calling back is believed after a grace period; a busy service is asked again; every
other way of going wrong (no answer, a refusal, a forgotten task, the deadline) ends the task in `error`
with a message naming the URL or the time. Deadlines are a second or two, intervals a few milliseconds.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from headwater_worker.compute.protocol import ServiceTask, Task, TaskStatus, TaskUpdate
from headwater_worker.compute.remote import CallbackReceiver, run_remote

from tests.fakes.compute import FakeComputeService, finished_with_outputs

if TYPE_CHECKING:
    from headwater_localcluster.services import S3Server

Serve = Callable[..., FakeComputeService]


@pytest.fixture
def serve() -> Iterator[Serve]:
    started: list[FakeComputeService] = []

    def start(**options: Any) -> FakeComputeService:
        fake = FakeComputeService(**options).start()
        started.append(fake)
        return fake

    try:
        yield start
    finally:
        for fake in started:
            fake.stop()


def service_task(data_out: list[str] | None = None, bucket: str = "inputs") -> ServiceTask:
    return ServiceTask(
        s3_access_key_id="access-key",
        s3_secret_access_key="s3cr3t-access",
        s3_region="us-east-1",
        s3_host="http://127.0.0.1:9000",
        s3_bucket=bucket,
        task=Task(id=uuid.uuid4(), data_in=["in/photo.png"], data_out=data_out, service_id=uuid.uuid4()),
        callback_url="",
    )


def run(
    url: str,
    task: ServiceTask,
    *,
    within: float = 2.0,
    poll: float = 0.02,
    seen: list[TaskStatus] | None = None,
) -> TaskUpdate:
    return run_remote(
        url,
        task,
        advertised_host="127.0.0.1",
        receiver_host="127.0.0.1",
        deadline=time.monotonic() + within,
        poll_interval=poll,
        grace_seconds=0.1,
        on_status=(seen if seen is not None else []).append,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_service_that_calls_back_later_gives_its_update(serve: Serve) -> None:
    fake = serve(stages=["fetching", "processing", "saving"])
    task = service_task(data_out=["out/rotated.png"])
    seen: list[TaskStatus] = []

    update = run(fake.url, task, poll=30, seen=seen)
    fake.join()

    assert update == TaskUpdate(status="finished", data_out=["out/rotated.png"])
    assert seen == ["fetching", "processing", "saving"]
    assert [c.status_code for c in fake.callbacks] == [200, 200, 200, 200]
    assert fake.callbacks[-1].answer == {"status": "finished"}


def test_the_service_receives_a_service_task_whose_callback_reaches_the_receiver(serve: Serve) -> None:
    fake = serve()
    task = service_task()

    run(fake.url, task)
    fake.join()

    (posted,) = fake.received("/compute")
    body = json.loads(posted.body)
    assert set(body) == {
        "s3_access_key_id",
        "s3_secret_access_key",
        "s3_region",
        "s3_host",
        "s3_bucket",
        "task",
        "callback_url",
    }
    received = ServiceTask.model_validate(body)
    assert received.model_copy(update={"callback_url": ""}) == task
    assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/tasks/{task.task.id}", received.callback_url)
    (callback,) = fake.callbacks
    assert callback.url == received.callback_url
    assert callback.status_code == 200


def test_a_service_that_never_calls_back_but_finishes_is_believed_after_the_grace(serve: Serve) -> None:
    fake = serve(stages=["processing"], calls_back=False)
    task = service_task(data_out=["out/a.png"])
    seen: list[TaskStatus] = []

    update = run(fake.url, task, seen=seen)

    assert update == TaskUpdate(status="finished", data_out=["out/a.png"], error_message=None)
    assert fake.callbacks == []
    assert len(fake.received(f"/tasks/{task.task.id}/status")) > 1
    assert set(seen) <= {"pending", "processing"}


def test_a_service_that_ends_in_error_without_calling_back(serve: Serve) -> None:
    fake = serve(calls_back=False, result=lambda _: TaskUpdate(status="error", error_message="out of memory"))
    task = service_task()

    update = run(fake.url, task)

    assert update.status == "error"
    assert update.data_out == []
    assert (
        update.error_message
        == f"the service ended task {task.task.id} with status error without calling back"
    )


def test_a_service_that_neither_calls_back_nor_finishes_meets_the_deadline(serve: Serve) -> None:
    fake = serve(calls_back=False, finishes=False)

    update = run(fake.url, service_task(), within=1.0)

    assert update == TaskUpdate(status="error", error_message="the service did not finish within 1 s")


def test_a_busy_service_is_asked_again(serve: Serve) -> None:
    fake = serve(busy=2)

    update = run(fake.url, service_task(data_out=["out/x.csv"]))

    assert update == TaskUpdate(status="finished", data_out=["out/x.csv"])
    assert len(fake.received("/compute")) == 3
    assert len(fake.tasks) == 1


def test_a_service_that_stays_busy_ends_the_task(serve: Serve) -> None:
    fake = serve(busy=10)

    update = run(fake.url, service_task())

    assert update.status == "error"
    assert update.error_message == (
        f"POST {fake.url}/compute answered 503 Service Unavailable: Service is busy "
        "(4 times: the service stayed busy)"
    )


def test_a_refusal_of_compute_ends_the_task_naming_the_url_and_status(serve: Serve) -> None:
    fake = serve(compute_answer=(500, {"detail": "model not loaded"}))

    update = run(fake.url, service_task())

    assert update == TaskUpdate(
        status="error",
        error_message=f"POST {fake.url}/compute answered 500 Internal Server Error: model not loaded",
    )


def test_an_unreachable_service_ends_the_task_naming_the_url() -> None:
    port = closed_port()

    update = run(f"http://127.0.0.1:{port}/", service_task())

    assert update.status == "error"
    assert update.error_message is not None
    assert update.error_message.startswith(
        f"could not reach the service at http://127.0.0.1:{port}/compute: "
    )


def test_a_forgotten_task_ends_in_error(serve: Serve) -> None:
    fake = serve(calls_back=False, finishes=False, status_answer=(404, {"detail": "Task not found"}))
    task = service_task()

    update = run(fake.url, task)

    assert update.status == "error"
    assert update.error_message == (
        f"the service does not know task {task.task.id} "
        f"(GET {fake.url}/tasks/{task.task.id}/status answered 404)"
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((500, {"detail": "boom"}), "answered 500 Internal Server Error"),
        ((200, {"status": "done"}), """answered '{"status": "done"}', not a task status"""),
    ],
)
def test_status_polls_failing_again_and_again_end_the_task(
    serve: Serve, answer: tuple[int, Any], problem: str
) -> None:
    fake = serve(calls_back=False, finishes=False, status_answer=answer)
    task = service_task()

    update = run(fake.url, task)

    assert update.error_message == (
        f"GET {fake.url}/tasks/{task.task.id}/status {problem} (3 status polls failed in a row)"
    )
    assert len(fake.received(f"/tasks/{task.task.id}/status")) == 3


def test_a_bad_patch_body_is_refused_and_the_wait_goes_on(serve: Serve) -> None:
    fake = serve(bad_bodies=[b"not json", b'{"status": "done", "data_out": null}'])
    task = service_task(data_out=["out/ok.png"])

    update = run(fake.url, task, poll=30)
    fake.join()

    assert update == TaskUpdate(status="finished", data_out=["out/ok.png"])
    not_json, invalid, good = fake.callbacks
    assert not_json.status_code == 400
    assert not_json.answer["detail"][0]["type"] == "json_invalid"
    assert invalid.status_code == 400
    assert {(tuple(e["loc"]), e["type"]) for e in invalid.answer["detail"]} == {
        (("body", "data_out"), "list_type"),
        (("body", "status"), "literal_error"),
    }
    assert good.status_code == 200


def test_the_receiver_takes_only_its_own_task() -> None:
    task_id = uuid.uuid4()
    with CallbackReceiver(task_id, "127.0.0.1") as receiver:
        url = receiver.callback_url("127.0.0.1")
        other = httpx.patch(url.replace(str(task_id), str(uuid.uuid4())), json={"status": "finished"})
        wrong_method = httpx.get(url)
        taken = httpx.patch(url.replace(str(task_id), str(task_id).upper()), json={"status": "processing"})

        assert other.status_code == 404
        assert wrong_method.status_code == 405
        assert taken.status_code == 200
        assert taken.json() == {"status": "processing"}
        assert receiver.next_update(1.0) == TaskUpdate(status="processing")
        assert receiver.next_update(0.0) is None


def test_the_receiver_serves_ipv6_with_a_bracketed_callback_url() -> None:
    task_id = uuid.uuid4()
    with CallbackReceiver(task_id, "::1") as receiver:
        url = receiver.callback_url("::1")
        answer = httpx.patch(url, json={"status": "finished", "data_out": ["k"], "error_message": None})

        assert url == f"http://[::1]:{receiver.port}/tasks/{task_id}"
        assert answer.status_code == 200
        assert receiver.next_update(1.0) == TaskUpdate(status="finished", data_out=["k"])


@pytest.mark.s3
def test_the_outputs_a_service_writes_are_in_s3_when_it_calls_back(
    serve: Serve, s3: S3Server, bucket: str
) -> None:
    client = s3.client()
    fake = serve(s3=client, content=lambda key: f"made {key}".encode())
    task = service_task(data_out=["out/a.txt", "out/b.txt"], bucket=bucket)

    update = run(fake.url, task)

    assert update == finished_with_outputs(task)
    for key in update.data_out:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == f"made {key}".encode()
