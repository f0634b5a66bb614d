"""A processor's progress in its Package's status: its own entry of `status.reports`, spaced writes, and
failures that never stop the processor; the operator reads the same entry back."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from headwater_operator.api.package import PackageStatus
from headwater_worker.kubeapi import ApiServer
from headwater_worker.package.progress import MIN_INTERVAL, ProgressWriter, progress_writer, report_patch

RASTER = "natural_earth_raster.version_1"
JOB = "gambia-natural-earth-raster-version-1-0a1b2c"
AT = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
STATUS_URL = "https://10.0.0.1:6443/apis/headwater.dev/v1alpha1/namespaces/geo/packages/gambia/status"


@pytest.fixture
def account(tmp_path: Path) -> Path:
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text("token-one")
    (folder / "ca.crt").write_text("")
    return folder


class FakeApi:
    """Answers each PATCH with the next of `answers` (a status code or an exception), 200 when none left."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.time = 0.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"kind": "Status", "message": f"answer {answer}"})

    def writer(self, account: Path) -> ProgressWriter:
        return ProgressWriter(
            "geo/gambia",
            JOB,
            ApiServer("https://10.0.0.1:6443", account),
            open_client=lambda _: httpx.Client(transport=httpx.MockTransport(self.handle)),
            clock=lambda: self.time,
            now=lambda: AT,
        )

    def written(self) -> list[tuple[int, str]]:
        entries = [json.loads(r.content)["status"]["reports"][RASTER] for r in self.requests]
        return [(entry["percent"], entry["message"]) for entry in entries]


def test_a_report_patches_the_processors_own_entry_which_the_operators_model_reads() -> None:
    patch = report_patch(RASTER, JOB, 44, "cropping the source", AT)
    assert patch == {
        "status": {
            "reports": {
                RASTER: {
                    "jobName": JOB,
                    "percent": 44,
                    "message": "cropping the source",
                    "time": "2026-01-01T10:00:00Z",
                }
            }
        }
    }
    report = PackageStatus.model_validate(patch["status"]).reports[RASTER]
    assert (report.job_name, report.percent, report.message) == (JOB, 44, "cropping the source")


def test_writes_are_spaced_and_the_last_report_always_goes(account: Path) -> None:
    api = FakeApi()
    write = api.writer(account)
    write(RASTER, 0, "checking the sources")
    write(RASTER, 20, "cropping the source")  # too soon after the first
    api.time += MIN_INTERVAL
    write(RASTER, 44, "cropping the source")
    write(RASTER, 100, "done")
    assert api.written() == [(0, "checking the sources"), (44, "cropping the source"), (100, "done")]
    first = api.requests[0]
    assert first.method == "PATCH"
    assert str(first.url) == f"{STATUS_URL}?fieldManager=headwater-package"
    assert first.headers["Content-Type"] == "application/merge-patch+json"
    assert first.headers["Authorization"] == "Bearer token-one"


def test_a_failed_write_is_logged_once_without_the_token_and_the_processor_goes_on(
    account: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(httpx.ConnectError("refused token-one"), 403)
    write = api.writer(account)
    with caplog.at_level(logging.WARNING, logger="headwater_worker.package.progress"):
        write(RASTER, 0, "checking the sources")
        api.time += MIN_INTERVAL
        write(RASTER, 50, "cropping the source")
        api.time += MIN_INTERVAL
        write(RASTER, 60, "cropping the source")
    assert len(api.requests) == 3
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "token-one" not in caplog.text


def test_only_a_processors_job_with_a_token_writes(account: Path, tmp_path: Path) -> None:
    in_pod = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "HEADWATER_PACKAGE_JOB": JOB,
    }
    writer = progress_writer(in_pod, "geo/gambia", account)
    assert writer is not None
    assert (writer.url, writer.job) == (STATUS_URL, JOB)
    assert progress_writer(in_pod, "geo/gambia", tmp_path / "no-token") is None
    assert progress_writer({**in_pod, "HEADWATER_PACKAGE_JOB": ""}, "geo/gambia", account) is None
    assert progress_writer(in_pod, None, account) is None
