"""Generated code is untrusted: the checks refuse what it must not do, the child process's limits stop what
the checks cannot see, and `source.get` reaches the source's host only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from headwater_worker.logs import redact
from headwater_worker.wrapper.command import status_patch
from headwater_worker.wrapper.config import CollectionReport
from headwater_worker.wrapper.sandbox import CollectorFailedError, CollectorProcess, Limits
from headwater_worker.wrapper.source import HttpSource, SourceError
from headwater_worker.wrapper.validation import validate

TIGHT = Limits(cpu_seconds=2, memory_bytes=400 << 20, wall_seconds=20.0)

GOOD = """\
from datetime import datetime, timezone


def collect(since, source):
    rows = list(source.csv_rows())
    for day, value in rows[1:]:
        moment = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        print("noise on stdout must not become a point")
        yield moment, float(value)
"""


@pytest.fixture
def csv_file(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "data.csv"
    path.write_text("day,value\n2024-01-01,1.5\n2024-01-02,2.25\n2024-01-03,3\n")
    return {"kind": "file", "path": str(path)}


def run(
    code: str, source: dict[str, Any], since: datetime | None = None, limits: Limits = TIGHT
) -> list[Any]:
    return list(CollectorProcess(code, since, source, limits).points())


def failure(code: str, source: dict[str, Any], limits: Limits = TIGHT) -> CollectorFailedError:
    with pytest.raises(CollectorFailedError) as caught:
        run(code, source, limits=limits)
    return caught.value


def test_a_module_that_keeps_to_the_contract_passes_and_collects(csv_file: dict[str, Any]) -> None:
    verdict = validate(GOOD, csv_file)
    assert verdict.errors == []
    assert verdict.points == 3
    points = run(GOOD, csv_file, since=datetime(2024, 1, 1, tzinfo=UTC))
    assert [(p.timestamp, p.value) for p in points] == [
        ("2024-01-02T00:00:00+00:00", 2.25),
        ("2024-01-03T00:00:00+00:00", 3.0),
    ], "only points newer than the high water mark, and no printed noise"


MANY_SHAPES = """\
from datetime import datetime, timedelta, timezone


def collect(since, source):
    utc = timezone.utc
    yield datetime(2024, 1, 1, tzinfo=utc), 1.5, None
    yield datetime(2024, 1, 2, 2, tzinfo=timezone(timedelta(hours=2))), 2.5, None
    yield datetime(2024, 1, 3, tzinfo=utc), 3, None
    yield datetime(2024, 1, 4, tzinfo=utc), 4.0, {"series": "north", "quality": "final"}
    yield datetime(2024, 1, 5, 0, 0, 0, 500000, tzinfo=utc), 5.25
"""


def test_points_of_every_shape_come_out_in_one_form(csv_file: dict[str, Any]) -> None:
    points = run(MANY_SHAPES, csv_file)
    assert [(p.timestamp, p.value, p.series, p.attributes) for p in points] == [
        ("2024-01-01T00:00:00+00:00", 1.5, "", ""),
        ("2024-01-02T00:00:00+00:00", 2.5, "", ""),
        ("2024-01-03T00:00:00+00:00", 3.0, "", ""),
        ("2024-01-04T00:00:00+00:00", 4.0, "north", '{"quality": "final"}'),
        ("2024-01-05T00:00:00.500000+00:00", 5.25, "", ""),
    ]
    later = run(MANY_SHAPES, csv_file, since=datetime(2024, 1, 2, tzinfo=UTC))
    assert [p.value for p in later] == [3.0, 4.0, 5.25], "the high water mark holds for every shape"


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        ("def collect(since, source):\n    return open('/etc/passwd').read()\n", "'open' is not allowed"),
        ("import os\n\n\ndef collect(since, source):\n    return os.listdir('/')\n", "import of 'os'"),
        (
            "import socket\n\n\ndef collect(since, source):\n    return socket.socket()\n",
            "import of 'socket'",
        ),
        (
            "from subprocess import run\n\n\ndef collect(since, source):\n    return run('id')\n",
            "'subprocess'",
        ),
        ("def collect(since, source):\n    return eval('1')\n", "'eval' is not allowed"),
        ("def collect(since, source):\n    return __import__('os')\n", "'__import__' is not allowed"),
        ("import typing\n\n\ndef collect(since, source):\n    return typing.sys.modules\n", "'sys'"),
        ("def collect(since, source):\n    return ().__class__.__bases__\n", "'__class__'"),
        ("import io\n\n\ndef collect(since, source):\n    return io.open('/etc/passwd')\n", "'open'"),
    ],
    ids=["open", "os", "socket", "subprocess", "eval", "dunder-import", "typing-sys", "dunder", "io-open"],
)
def test_a_module_reaching_for_files_sockets_or_the_interpreter_is_refused_before_it_runs(
    code: str, refusal: str, csv_file: dict[str, Any]
) -> None:
    verdict = validate(code, csv_file)
    assert not verdict.passed
    assert any(refusal in error for error in verdict.errors), verdict.errors
    assert verdict.points == 0, "refused code never reaches its dry run"


@pytest.mark.parametrize(
    ("code", "found"),
    [
        ("def collect(since, source):\n    pass\n", "placeholder"),
        ("def collect(since, source):\n    ...\n", "placeholder"),
        ("def collect(since, source):\n    # TODO: read the file\n    return []\n", "'TODO'"),
        ("def collect(since, source):\n    return source.get('https://example.com/api')\n", "'example.com'"),
        (
            "def collect(since, source):\n    return source.get(params={'key': 'your_api_key'})\n",
            "your_api_key",
        ),
        ("def gather(since, source):\n    return []\n", "no top-level function collect"),
        ("def collect(since, source):\n    unused = 1\n    return []\n", "ruff F841"),
        ("def collect(since, source)\n    return []\n", "syntax error"),
    ],
    ids=["pass", "ellipsis", "todo", "example-host", "key-placeholder", "no-collect", "lint", "syntax"],
)
def test_placeholders_lint_and_syntax_errors_are_named_with_their_line(
    code: str, found: str, csv_file: dict[str, Any]
) -> None:
    verdict = validate(code, csv_file)
    assert any(found in error for error in verdict.errors), verdict.errors
    assert all(error.startswith(("line ", "the module")) for error in verdict.errors)


def test_a_dry_run_that_yields_nothing_fails_validation(csv_file: dict[str, Any]) -> None:
    verdict = validate("def collect(since, source):\n    return []\n", csv_file)
    assert verdict.errors == ["dry run: collect yielded no point from the sample"]


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        ("    while True:\n        since = since", "CpuLimit", "CPU seconds"),
        (
            "    grown = []\n    while True:\n        grown.append(bytearray(50_000_000))",
            "MemoryLimit",
            "memory",
        ),
    ],
    ids=["loops-forever", "allocates-without-bound"],
)
def test_the_limits_stop_a_module_that_loops_forever_or_allocates_without_bound(
    body: str, reason: str, words: str, csv_file: dict[str, Any]
) -> None:
    stopped = failure(f"def collect(since, source):\n{body}\n", csv_file)
    assert (stopped.reason, words in stopped.message) == (reason, True), stopped.message


def test_a_module_that_outlives_its_wall_clock_limit_is_killed(slow_server: str) -> None:
    code = "def collect(since, source):\n    source.get()\n    return []\n"
    stopped = failure(
        code,
        {"kind": "http", "url": slow_server},
        Limits(cpu_seconds=30, memory_bytes=400 << 20, wall_seconds=1.5),
    )
    assert stopped.reason == "TimeLimit"


def test_the_runtime_refuses_an_import_the_checks_would_have_caught(csv_file: dict[str, Any]) -> None:
    stopped = failure("import os\n\n\ndef collect(since, source):\n    return []\n", csv_file)
    assert (stopped.reason, stopped.message) == (
        "ForbiddenImport",
        "import of 'os' is not allowed in a collector",
    )


@pytest.mark.parametrize(
    ("yielded", "words"),
    [
        ("datetime(2024, 1, 1), 1.0", "not a timezone-aware datetime"),
        ("datetime(2024, 1, 1, tzinfo=timezone.utc), float('nan')", "not finite"),
        ("datetime(2024, 1, 1, tzinfo=timezone.utc), float('inf'), None", "not finite"),
        ("datetime(2024, 1, 1, tzinfo=timezone.utc), '12'", "not a number"),
    ],
    ids=["naive", "nan", "infinite-with-no-attributes", "text"],
)
def test_an_invalid_point_stops_the_run_naming_it(yielded: str, words: str, csv_file: dict[str, Any]) -> None:
    code = f"from datetime import datetime, timezone\n\n\ndef collect(since, source):\n    yield {yielded}\n"
    stopped = failure(code, csv_file)
    assert stopped.reason == "InvalidPoint"
    assert words in stopped.message


# -- HTTP, confined to the source's host ---------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []
    delay = 0.0

    def do_GET(self) -> None:
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.delay:
            threading.Event().wait(self.delay)
        body = json.dumps({"results": [{"date": "2024-01-01", "value": "4.5"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api_server() -> Iterator[str]:
    Recorder.seen = []
    yield from _serve(Recorder)


@pytest.fixture
def slow_server() -> Iterator[str]:
    class Slow(Recorder):
        delay = 10.0

    yield from _serve(Slow)


def test_source_get_reaches_the_source_host_with_the_key_and_refuses_any_other(api_server: str) -> None:
    code = (
        "def collect(since, source):\n"
        "    source.get('/v1/points', {'page': 1})\n"
        "    source.get('http://198.51.100.7/steal')\n"
        "    return []\n"
    )
    source = {
        "kind": "http",
        "url": f"{api_server}/v1/points",
        "apiKey": {"value": "s3cr3t", "header": "X-API-Key"},
    }
    stopped = failure(code, source)
    assert stopped.reason == "HostRefused"
    assert "198.51.100.7" in stopped.message
    assert Recorder.seen == [("/v1/points?page=1", Recorder.seen[0][1])]
    assert Recorder.seen[0][1]["x-api-key"] == "s3cr3t"


def test_another_port_of_the_same_host_is_another_host(api_server: str) -> None:
    source = HttpSource(f"{api_server}/v1")
    with pytest.raises(SourceError) as refused:
        source.get("http://127.0.0.1:1/v1")
    assert refused.value.reason == "HostRefused"
    assert Recorder.seen == []


def test_a_continuous_collectors_status_report_never_carries_the_api_key() -> None:
    redact.add("k3y-of-the-source")
    try:
        report = CollectionReport(
            outcome="failed",
            ran_at=datetime(2026, 1, 1, tzinfo=UTC),
            reason="CollectorError",
            message="ValueError: k3y-of-the-source",
        )
        patch = status_patch(report, failures=2, empty=0)
    finally:
        redact.clear()
    assert "k3y-of-the-source" not in str(patch)
    assert patch["status"]["collector"]["reason"] == "CollectorError"
    assert patch["status"]["collectorFailures"] == 2
