"""`python -m headwater_worker wrapper run` as a collector's pod runs it, with modules written by hand (the
contract holds whoever wrote them): real PostgreSQL, a real S3 protocol endpoint, a real HTTP server."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_localcluster.services import S3Server
from headwater_worker.wrapper.config import WrapperConfig

pytestmark = [pytest.mark.postgres]

DAILY = """\
from datetime import datetime, timezone


def collect(since, source):
    rows = list(source.csv_rows())
    header = rows[0]
    where = header.index("consumption_kwh")
    for row in rows[1:]:
        moment = datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc)
        if since is None or moment > since:
            yield moment, float(row[where])
"""

CSV = "date,consumption_kwh\n2025-01-01,1520.5\n2025-01-02,1488.0\n2025-01-03,1610.25\n"


def config(tmp_path: Path, code: str, output: dict[str, Any] | None, **source: Any) -> dict[str, str]:
    module = tmp_path / "wrapper.py"
    module.write_text(code)
    settings = WrapperConfig.model_validate(
        {
            "wrapper": "team/site-electricity",
            "resourceId": "0f6a2d47-1b7c-4f0e-9c35-2d1f6e9a8b10",
            "generation": 1,
            "indicator": {"name": "Site electricity", "unit": "kWh"},
            "source": source or {"type": "CSV", "path": str(tmp_path / "source.csv")},
            "generator": {"type": "template"},
            "output": output,
            "codePath": str(module),
            "codeSha256": hashlib.sha256(code.encode()).hexdigest(),
        }
    )
    return {
        "HEADWATER_WRAPPER_CONFIG": settings.to_env(),
        "HEADWATER_TERMINATION_LOG": str(tmp_path / "report"),
    }


def run(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    finished = subprocess.run(
        [sys.executable, "-m", "headwater_worker", "wrapper", "run"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = Path(env["HEADWATER_TERMINATION_LOG"]).read_text()
    assert report, finished.stderr
    return finished.returncode, json.loads(report)


def points(dsn: str, table: str = "indicator_points") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(f"SELECT series, ts, value FROM {table} ORDER BY series, ts").fetchall()


def day(number: int) -> datetime:
    return datetime(2025, 1, number, tzinfo=UTC)


def test_points_go_to_the_table_once_and_the_resource_keeps_its_periods(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "source.csv").write_text(CSV)
    env = {**config(tmp_path, DAILY, {"database": {"table": "indicator_points"}}), "DATABASE_URL": database}
    code, report = run(env)
    assert code == 0, report
    assert (report["outcome"], report["newPoints"], report["totalPoints"]) == ("collected", 3, 3)
    assert (report["lowWaterMark"], report["highWaterMark"]) == (
        "2025-01-01T00:00:00Z",
        "2025-01-03T00:00:00Z",
    )
    assert report["collectionPhase"] == "historical"
    assert points(database) == [("", day(1), 1520.5), ("", day(2), 1488.0), ("", day(3), 1610.25)]

    code, again = run(env)
    assert (code, again["newPoints"], again["totalPoints"], again["collectionPhase"]) == (
        0,
        0,
        3,
        "continuous",
    )

    (tmp_path / "source.csv").write_text(CSV + "2025-01-04,1590\n")
    code, more = run(env)
    assert (more["newPoints"], more["totalPoints"], more["highWaterMark"]) == (1, 4, "2025-01-04T00:00:00Z")
    assert len(points(database)) == 4
    with psycopg.connect(database) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        resource = conn.execute(
            "SELECT id, wrapper, name, type, unit, start_period, end_period, points, deleted FROM resources"
        ).fetchall()
    assert resource == [
        (
            "0f6a2d47-1b7c-4f0e-9c35-2d1f6e9a8b10",
            "team/site-electricity",
            "Site electricity",
            "sustainability_indicator",
            "kWh",
            day(1),
            day(4),
            4,
            False,
        )
    ]


@pytest.mark.s3
def test_s3_output_gets_one_object_per_run_in_the_seeds_format_never_overwritten(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "source.csv").write_text(CSV)
    output = {
        "s3": {"bucket": bucket, "prefix": "points", "endpoint": s3.endpoint_url, "forcePathStyle": True}
    }
    env = {**config(tmp_path, DAILY, output), **s3.client_env()}
    code, report = run(env)
    assert (code, report["newPoints"], report["highWaterMark"]) == (0, 3, "2025-01-03T00:00:00Z")
    code, again = run(env)
    assert (code, again["newPoints"]) == (0, 0), (
        "the newest object's high water mark is where the next run starts"
    )
    (tmp_path / "source.csv").write_text(CSV + "2025-01-04,1590\n")
    assert run(env)[1]["newPoints"] == 1

    client = s3.client()
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 2, "a run that collected nothing writes nothing"
    assert all(key.startswith("points/0f6a2d47-1b7c-4f0e-9c35-2d1f6e9a8b10/") for key in keys)
    first, second = (json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys)
    assert first == {
        "resource_id": "0f6a2d47-1b7c-4f0e-9c35-2d1f6e9a8b10",
        "data": [
            {"x": "2025-01-01T00:00:00+00:00", "y": 1520.5},
            {"x": "2025-01-02T00:00:00+00:00", "y": 1488.0},
            {"x": "2025-01-03T00:00:00+00:00", "y": 1610.25},
        ],
    }
    assert second["data"] == [{"x": "2025-01-04T00:00:00+00:00", "y": 1590.0}]


def test_code_that_is_not_the_generated_code_is_refused(database: str, tmp_path: Path) -> None:
    (tmp_path / "source.csv").write_text(CSV)
    env = config(tmp_path, DAILY, None)
    (tmp_path / "wrapper.py").write_text(DAILY + "\n# edited by hand\n")
    code, report = run(env)
    assert (code, report["outcome"], report["reason"]) == (1, "failed", "CodeMismatch")
    assert "SHA-256" in report["message"]


def test_a_collector_that_no_longer_fits_its_source_reports_that_the_source_changed(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "source.csv").write_text("date,usage\n2025-01-01,1\n")
    env = {**config(tmp_path, DAILY, {"database": {"table": "indicator_points"}}), "DATABASE_URL": database}
    code, report = run(env)
    assert (code, report["reason"]) == (1, "SourceChanged")
    assert "ValueError" in report["message"]
    assert "'consumption_kwh' is not in list" in report["message"]


# -- an API source ----------------------------------------------------------------------------------------

PAGED = """\
from datetime import datetime, timezone


def collect(since, source):
    url = None
    while True:
        body = source.get(url).json()
        for record in body["results"]:
            moment = datetime.fromisoformat(record["date"]).replace(tzinfo=timezone.utc)
            if since is None or moment > since:
                yield moment, float(record["value"])
        url = body.get("next")
        if not url:
            return
"""


class Paged(BaseHTTPRequestHandler):
    keys: list[str | None] = []  # noqa: RUF012 - the test's record of what the server saw

    second_page_asked = threading.Event()
    hold_second_page = threading.Event()

    def do_GET(self) -> None:
        type(self).keys.append(self.headers.get("X-API-Key"))
        page = 2 if "page=2" in self.path else 1
        if page == 2:
            self.second_page_asked.set()
            self.hold_second_page.wait(timeout=60)
        body: dict[str, Any] = {
            "results": [
                {"date": f"2025-02-0{2 * page - 1 + i}", "value": str(10 * page + i)} for i in range(2)
            ]
        }
        if page == 1:
            body["next"] = "/v1/points?page=2"
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def paged_api() -> Iterator[str]:
    Paged.keys = []
    Paged.second_page_asked.clear()
    Paged.hold_second_page.set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Paged)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/points"
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_source_is_read_page_by_page_with_its_key_and_the_key_stays_out_of_the_report(
    database: str, tmp_path: Path, paged_api: str
) -> None:
    env = {
        **config(tmp_path, PAGED, {"database": {"table": "indicator_points"}}, type="API", url=paged_api),
        "DATABASE_URL": database,
        "HEADWATER_SOURCE_API_KEY": "k3y-never-shown",
    }
    code, report = run(env)
    assert (code, report["newPoints"]) == (0, 4), report
    assert Paged.keys == ["k3y-never-shown", "k3y-never-shown"]
    assert [value for _, _, value in points(database)] == [10.0, 11.0, 20.0, 21.0]
    assert "k3y-never-shown" not in json.dumps(report)


def test_an_unreachable_api_is_retried_then_reported(tmp_path: Path) -> None:
    env = config(tmp_path, PAGED, None, type="API", url="http://127.0.0.1:9/v1/points")
    started = time.monotonic()
    code, report = run(env)
    assert (code, report["reason"]) == (1, "SourceUnreachable")
    assert "did not answer after 5 attempts" in report["message"]
    assert time.monotonic() - started > 5, "with backoff between the attempts"


def test_a_run_killed_half_way_writes_nothing_and_the_next_collects_everything_once(
    database: str, tmp_path: Path, paged_api: str
) -> None:
    env = {
        **config(tmp_path, PAGED, {"database": {"table": "indicator_points"}}, type="API", url=paged_api),
        "DATABASE_URL": database,
    }
    Paged.hold_second_page.clear()
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater_worker", "wrapper", "run"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The first page's points are on their way into the table when the second page is asked for.
        assert Paged.second_page_asked.wait(timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        Paged.hold_second_page.set()
    assert points(database) == [], "a run that did not finish wrote nothing"

    code, report = run(env)
    assert (code, report["newPoints"], report["totalPoints"]) == (0, 4, 4)
    assert [value for _, _, value in points(database)] == [10.0, 11.0, 20.0, 21.0]


REPEATING = """\
from datetime import datetime, timezone


def collect(since, source):
    rows = list(source.csv_rows())[1:]
    for row in rows + rows[:2]:
        yield datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc), float(row[1])
"""


def test_a_point_the_source_repeats_is_stored_once_and_counted_once(database: str, tmp_path: Path) -> None:
    (tmp_path / "source.csv").write_text(CSV)
    env = {
        **config(tmp_path, REPEATING, {"database": {"table": "indicator_points"}}),
        "DATABASE_URL": database,
    }
    code, report = run(env)
    assert (code, report["outcome"], report["newPoints"], report["totalPoints"]) == (0, "collected", 3, 3)
    assert points(database) == [("", day(1), 1520.5), ("", day(2), 1488.0), ("", day(3), 1610.25)]
