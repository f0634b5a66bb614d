"""A watcher's figures in its Connector's status: the patch it builds, and a writer that survives every
failure of the API server and tries again after the next scan."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from headwater_worker.ingest.config import IngestSummary, RunFigures
from headwater_worker.ingest.runner import took_something_in
from headwater_worker.ingest.status import StatusReporter, reporter, status_patch
from headwater_worker.kubeapi import ApiServer

TOTALS = IngestSummary(
    rows_loaded=24,
    rows_rejected=1,
    batches=1,
    quality_score=0.96,
    last_batch_id="b-1",
    run=RunFigures(batches=1, rows_loaded=24),
)
LOADED_AT = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
STATUS_URL = "https://10.0.0.1:6443/apis/headwater.dev/v1alpha1/namespaces/team-a/connectors/farm/status"


def test_the_patch_holds_the_totals_and_the_load_time_and_nothing_the_operator_writes() -> None:
    eastern = LOADED_AT.astimezone(timezone(timedelta(hours=2)))
    assert status_patch(TOTALS, eastern) == {
        "status": {
            "rowsLoaded": 24,
            "rowsRejected": 1,
            "batches": 1,
            "qualityScore": 0.96,
            "lastBatchId": "b-1",
            "lastLoadTime": "2026-01-01T10:00:00Z",
        }
    }


def test_a_scan_counts_when_it_loaded_or_refused_an_input_not_for_a_duplicate() -> None:
    before = RunFigures(batches=1, rows_loaded=24)
    assert not took_something_in(before, before.model_copy(update={"duplicates": 1}))
    assert took_something_in(before, before.model_copy(update={"batches": 2, "rows_loaded": 48}))
    assert took_something_in(before, before.model_copy(update={"rejected_inputs": 1}))


@pytest.fixture
def account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("token-one\n")
    return tmp_path


def test_the_api_server_is_found_only_in_a_pod_with_a_token(account: Path, tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert ApiServer.in_cluster(env, account) == ApiServer("https://10.0.0.1:6443", account)
    assert ApiServer.in_cluster({}, account) is None
    assert ApiServer.in_cluster(env, tmp_path / "none") is None
    six = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert ApiServer.in_cluster(six, account) == ApiServer("https://[fd00::1]:6443", account)
    assert reporter({}, "team-a/farm") is None


class FakeApi:
    """Answers each PATCH with the next of `answers` (a status code or an exception), 200 when none left."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"kind": "Status", "message": f"answer {answer}"})

    def reporter(self, account: Path) -> StatusReporter:
        return StatusReporter(
            "team-a/farm",
            ApiServer("https://10.0.0.1:6443", account),
            open_client=lambda _: httpx.Client(transport=httpx.MockTransport(self.handle)),
            now=lambda: LOADED_AT,
        )


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The `error` field of each log record that has one."""
    return [
        str(getattr(record, "fields", {})["error"]) for record in caplog.records if hasattr(record, "fields")
    ]


def test_the_totals_are_merge_patched_into_the_status_with_the_current_token(account: Path) -> None:
    api = FakeApi()
    report = api.reporter(account)
    report(None)
    assert api.requests == [], "a scan that took nothing in writes nothing"
    report(TOTALS)
    (account / "token").write_text("token-two")  # rotated by the kubelet
    report(TOTALS)
    first, second = api.requests
    assert first.method == "PATCH"
    assert str(first.url) == f"{STATUS_URL}?fieldManager=headwater-worker"
    assert first.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(first.content) == status_patch(TOTALS, LOADED_AT)
    assert (first.headers["Authorization"], second.headers["Authorization"]) == (
        "Bearer token-one",
        "Bearer token-two",
    )
    report(None)
    assert len(api.requests) == 2, "nothing left to write"


def test_a_failed_write_is_logged_without_the_token_and_tried_again_after_the_next_scan(
    account: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(httpx.ConnectError("connection refused token-one"), 403, 500)
    report = api.reporter(account)
    with caplog.at_level(logging.DEBUG, logger="headwater_worker.ingest.status"):
        report(TOTALS)
        report(None)
        report(None)
        report(None)
    assert len(api.requests) == 4, "retried after each scan until written"
    assert json.loads(api.requests[-1].content) == status_patch(TOTALS, LOADED_AT)
    assert problems(caplog) == [
        "ConnectError: connection refused ***",
        "HTTP 403: answer 403",
        "HTTP 500: answer 500",
    ]
    levels = [record.levelno for record in caplog.records if record.name == "headwater_worker.ingest.status"]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO], "one warning per outage"
    assert not [record for record in caplog.records if "token-one" in str(record.__dict__)]
    report(None)
    assert len(api.requests) == 4


def test_a_missing_token_or_an_unreachable_server_never_stops_the_watcher(
    account: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (account / "token").unlink()
    api = FakeApi()
    report = api.reporter(account)
    report(TOTALS)
    assert api.requests == []
    [problem] = problems(caplog)
    assert problem.startswith("cannot read the ServiceAccount token")
    # The real client, against a port nothing listens on and a CA file that is not there.
    (account / "token").write_text("token-one")
    StatusReporter("team-a/farm", ApiServer("https://127.0.0.1:9", account))(TOTALS)
    assert problems(caplog)[-1].startswith("FileNotFoundError")
