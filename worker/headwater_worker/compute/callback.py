"""Deliver a task's TaskUpdate: PATCH it to the callback URL, retrying what may pass.

A connection error, a timeout, a `5xx`, a `408` or a `429` is tried again after an exponential backoff
(`Retry-After` honoured, every wait capped by `maxDelaySeconds`), within `attempts` and a total deadline.
Any other answer is final: `2xx` delivers, a `404` means the Core does not know the task, and no other
`4xx` would be answered differently the next time.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..logs import error_line, fields, redact
from ..retry_after import retry_after_seconds
from .protocol import TaskUpdate
from .urls import register_url_secrets, shown_url

log = logging.getLogger(__name__)

RETRIED_CLIENT_ERRORS = frozenset({408, 429})
MAX_ERROR_LENGTH = 300


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class CallbackPolicy(_Model):
    """How hard to try delivering a TaskUpdate (camelCase in JSON, as the operator passes it on)."""

    attempts: int = Field(default=5, ge=1, le=50, description="attempts in all, the first included")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="for each attempt")
    initial_delay_seconds: float = Field(default=1.0, ge=0, le=300, description="before the first retry")
    max_delay_seconds: float = Field(default=30.0, ge=0, le=3600, description="cap of every wait")
    deadline_seconds: float = Field(default=120.0, gt=0, le=86400, description="for all attempts together")
    jitter: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="fraction by which a backoff may be shortened, the same for the same URL, so that tasks "
        "ending together do not retry together",
    )

    def backoff(self, retry: int, url: str) -> float:
        """The wait before retry number `retry` (1, 2, ...) of a delivery to `url`, without `Retry-After`."""
        base = min(self.initial_delay_seconds * 2.0 ** (retry - 1), self.max_delay_seconds)
        digest = hashlib.sha256(f"{url}#{retry}".encode()).digest()
        spread = int.from_bytes(digest[:8], "big") / 2**64
        return base * (1.0 - self.jitter * spread)


class CallbackOutcome(_Model):
    """What became of a delivery; `to_status()` is the ComputeTask's `status.callback`."""

    url: str = Field(description="where the update went, without credentials or query")
    attempts: int
    delivered: bool
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_time: datetime | None = None

    def to_status(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def deliver(
    url: str,
    update: TaskUpdate,
    policy: CallbackPolicy | None = None,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CallbackOutcome:
    """PATCH `update` (all three fields) to `url` until it is accepted or the policy says stop."""
    policy = policy or CallbackPolicy()
    register_url_secrets(url)
    shown = shown_url(url)
    body = update.model_dump(mode="json")
    http = client or httpx.Client()
    deadline = clock() + policy.deadline_seconds
    attempts = 0
    try:
        while True:
            attempts += 1
            attempt_time = datetime.now(UTC)
            timeout = max(0.001, min(policy.timeout_seconds, deadline - clock()))
            status_code: int | None = None
            error: str | None
            hinted: float | None = None
            try:
                response = http.patch(url, json=body, timeout=timeout)
            except httpx.TimeoutException:
                error = f"timed out after {timeout:g} s"
            except httpx.TransportError as failure:
                error = f"connection failed: {error_line(failure)}"
            else:
                status_code = response.status_code
                error = _answer_problem(response)
                if response.is_success or not _retried(status_code):
                    break
                hinted = retry_after_seconds(response.headers.get("Retry-After"))
            if attempts >= policy.attempts:
                break
            wait = policy.backoff(attempts, url) if hinted is None else hinted
            wait = min(wait, policy.max_delay_seconds)
            if clock() + wait >= deadline:
                log.warning(
                    "callback deadline reached",
                    extra=fields(url=shown, attempts=attempts, deadlineSeconds=policy.deadline_seconds),
                )
                break
            log.warning(
                "callback failed; retrying",
                extra=fields(url=shown, attempt=attempts, problem=error, retryInSeconds=round(wait, 2)),
            )
            sleep(wait)
    finally:
        if client is None:
            http.close()
    outcome = CallbackOutcome(
        url=shown,
        attempts=attempts,
        delivered=error is None,
        last_status_code=status_code,
        last_error=None if error is None else redact(error)[:MAX_ERROR_LENGTH],
        last_attempt_time=attempt_time,
    )
    if outcome.delivered:
        log.info("callback delivered", extra=fields(url=shown, attempts=attempts, statusCode=status_code))
    else:
        log.warning(
            "callback not delivered", extra=fields(url=shown, attempts=attempts, problem=outcome.last_error)
        )
    return outcome


def _retried(status_code: int) -> bool:
    return status_code >= 500 or status_code in RETRIED_CLIENT_ERRORS


def _answer_problem(response: httpx.Response) -> str | None:
    """None for an answer that delivers, else what was wrong with it, in one line."""
    if response.is_success:
        return None
    problem = f"{response.status_code} {response.reason_phrase}".strip()
    if response.status_code == 404:
        return f"{problem}: the callback's server does not know the task"
    return problem
