"""Delivering a TaskUpdate to a callback URL served by a real local HTTP server.

What it shows: the body is exactly the protocol's TaskUpdate; 5xx, 429 and timeouts are retried with the
backoff or the `Retry-After` asked for (capped), within the attempts and the deadline; a 404 or another
4xx is final; the outcome is the operator's `status.callback`, and no credential of the URL reaches it or
the logs. Waits are recorded by an injected `sleep`, never slept.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Iterator

import pytest
from headwater_operator.api.computetask import CallbackStatus
from headwater_worker.compute.callback import CallbackOutcome, CallbackPolicy, deliver
from headwater_worker.compute.protocol import TaskUpdate
from headwater_worker.logs import JsonFormatter

from tests.fakes.compute import HANG, FakeCallbackReceiver

FAST = CallbackPolicy(attempts=3, timeout_seconds=2, initial_delay_seconds=1.0, max_delay_seconds=8, jitter=0)
FINISHED = TaskUpdate(status="finished", data_out=["out/a.png", "out/b.json"])


@pytest.fixture
def receiver() -> Iterator[FakeCallbackReceiver]:
    fake = FakeCallbackReceiver().start()
    try:
        yield fake
    finally:
        fake.stop()


class Sleeps(list[float]):
    """An injected `sleep` that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_the_body_is_exactly_the_task_update_of_the_protocol(receiver: FakeCallbackReceiver) -> None:
    task_id = uuid.uuid4()
    failed = TaskUpdate(status="error", error_message="image: not a PNG")

    finished = deliver(receiver.url_for(task_id), FINISHED, FAST)
    errored = deliver(receiver.url_for(task_id), failed, FAST)

    assert finished.delivered
    assert errored.delivered
    first, second = receiver.patches
    assert first.method == "PATCH"
    assert first.path == f"/tasks/{task_id}"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {
        "data_out": ["out/a.png", "out/b.json"],
        "status": "finished",
        "error_message": None,
    }
    assert json.loads(second.body) == {"data_out": [], "status": "error", "error_message": "image: not a PNG"}


def test_500s_are_retried_with_the_backoff_or_the_retry_after_asked(receiver: FakeCallbackReceiver) -> None:
    receiver.script((500, "3"), 500)
    sleeps = Sleeps()

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, FAST, sleep=sleeps)

    assert outcome.delivered
    assert outcome.attempts == 3
    assert len(receiver.patches) == 3
    assert outcome.last_status_code == 200
    assert outcome.last_error is None
    assert sleeps == [3.0, 2.0]  # Retry-After, then the second backoff step (1 s doubled)


def test_a_retry_after_beyond_the_cap_waits_the_cap(receiver: FakeCallbackReceiver) -> None:
    receiver.script((429, "3600"), (503, "Wed, 21 Oct 2099 07:28:00 GMT"))
    sleeps = Sleeps()

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, FAST, sleep=sleeps)

    assert outcome.delivered
    assert outcome.attempts == 3
    assert sleeps == [8.0, 8.0]


def test_a_callback_that_never_answers_is_given_up_after_the_attempts(receiver: FakeCallbackReceiver) -> None:
    receiver.script(HANG, HANG, HANG)
    policy = FAST.model_copy(update={"attempts": 2, "timeout_seconds": 0.2})
    sleeps = Sleeps()

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, policy, sleep=sleeps)

    assert not outcome.delivered
    assert outcome.attempts == 2
    assert len(receiver.patches) == 2
    assert outcome.last_status_code is None
    assert outcome.last_error == "timed out after 0.2 s"
    assert sleeps == [1.0]


def test_404_means_the_core_does_not_know_the_task_and_is_not_retried(receiver: FakeCallbackReceiver) -> None:
    receiver.script(404)
    sleeps = Sleeps()

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, FAST, sleep=sleeps)

    assert not outcome.delivered
    assert outcome.attempts == 1
    assert len(receiver.patches) == 1
    assert sleeps == []
    assert outcome.last_status_code == 404
    assert outcome.last_error == "404 Not Found: the callback's server does not know the task"


@pytest.mark.parametrize(("code", "attempts"), [(400, 1), (401, 1), (422, 1), (408, 2)])
def test_only_408_and_429_of_the_client_errors_are_retried(
    receiver: FakeCallbackReceiver, code: int, attempts: int
) -> None:
    receiver.script(code)

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, FAST, sleep=Sleeps())

    assert outcome.attempts == attempts
    assert outcome.delivered == (attempts == 2)


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()

    outcome = deliver(f"http://127.0.0.1:{port}/tasks/x", FINISHED, FAST, sleep=sleeps)

    assert not outcome.delivered
    assert outcome.attempts == 3
    assert sleeps == [1.0, 2.0]
    assert outcome.last_error is not None
    assert outcome.last_error.startswith("connection failed:")


def test_the_deadline_stops_retries_before_the_attempts_run_out(receiver: FakeCallbackReceiver) -> None:
    receiver.script(500, 500, 500, 500)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    policy = FAST.model_copy(update={"attempts": 10, "deadline_seconds": 5.0})

    outcome = deliver(receiver.url_for(uuid.uuid4()), FINISHED, policy, sleep=sleep, clock=lambda: now[0])

    # Waits of 1 and 2 s fit in 5 s; the next, 4 s, would end past the deadline.
    assert outcome.attempts == 3
    assert now[0] == 3.0
    assert not outcome.delivered
    assert outcome.last_status_code == 500
    assert outcome.last_error == "500 Internal Server Error"


def test_jitter_shortens_the_backoff_the_same_way_for_the_same_url() -> None:
    policy = CallbackPolicy(initial_delay_seconds=2, max_delay_seconds=60, jitter=0.5)
    waits = [policy.backoff(retry, "http://core/tasks/1") for retry in (1, 2, 3)]

    assert waits == [policy.backoff(retry, "http://core/tasks/1") for retry in (1, 2, 3)]
    assert waits != [policy.backoff(retry, "http://core/tasks/2") for retry in (1, 2, 3)]
    for wait, full in zip(waits, (2, 4, 8), strict=True):
        assert full / 2 <= wait <= full


def test_credentials_in_the_url_reach_the_server_but_not_the_outcome_or_the_logs(
    receiver: FakeCallbackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(500, 500, 500)
    host = receiver.url.removeprefix("http://")
    url = f"http://core:pa55w0rd-x@{host}/tasks/42?token=t0ken-abc"

    with caplog.at_level(logging.DEBUG):
        outcome = deliver(url, FINISHED, FAST, sleep=Sleeps())

    assert receiver.patches[0].query == {"token": "t0ken-abc"}
    assert receiver.patches[0].headers["authorization"].startswith("Basic ")
    assert outcome.url == f"http://{host}/tasks/42"
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "callback failed; retrying" in logged
    shown = json.dumps(outcome.to_status()) + logged
    assert "pa55w0rd-x" not in shown
    assert "t0ken-abc" not in shown


def test_the_outcome_is_the_operators_callback_status(receiver: FakeCallbackReceiver) -> None:
    receiver.script(502)

    outcome = deliver(receiver.url_for("7"), FINISHED, FAST, sleep=Sleeps())
    status = outcome.to_status()

    assert set(status) == {"url", "attempts", "delivered", "lastStatusCode", "lastError", "lastAttemptTime"}
    assert status["lastStatusCode"] == 200
    assert status["attempts"] == 2
    assert outcome.last_attempt_time is not None
    assert outcome.last_attempt_time.utcoffset() is not None
    parsed = CallbackStatus.model_validate(status)
    assert parsed.delivered is True
    assert parsed.last_attempt_time == outcome.last_attempt_time
    assert CallbackOutcome.model_validate(status) == outcome


def test_the_policy_reads_from_camel_case_json() -> None:
    policy = CallbackPolicy.model_validate_json('{"attempts": 2, "timeoutSeconds": 3, "deadlineSeconds": 30}')

    assert (policy.attempts, policy.timeout_seconds, policy.deadline_seconds) == (2, 3.0, 30.0)
    assert CallbackPolicy.model_validate(policy.model_dump(by_alias=True)) == policy
