"""The local node's container logs: the CRI file format, tails, fallback messages and log queries."""

from __future__ import annotations

import datetime
import io
import threading
from pathlib import Path

from headwater_localcluster import logfiles
from headwater_localcluster.kubelet_server import LogQuery, initial_entries


def write_log(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_pump_splits_lines_and_long_lines(tmp_path: Path) -> None:
    writer = logfiles.LogWriter(tmp_path / "0.log")
    long = b"x" * (logfiles.MAX_ENTRY + 10)
    reader, sink = _pipe(b"one\ntwo\n" + long + b"\nlast without newline")
    logfiles.pump(reader, "stdout", writer)
    writer.close()
    entries = logfiles.read_entries(tmp_path / "0.log")
    assert [e.content for e in entries[:2]] == [b"one", b"two"]
    assert entries[2].partial
    assert not entries[3].partial
    assert entries[2].content + entries[3].content == long
    assert entries[4].content == b"last without newline"
    assert logfiles.render(entries).endswith(b"two\n" + long + b"\nlast without newline\n")
    assert all(e.stream == "stdout" for e in entries)
    sink.close()


def _pipe(data: bytes) -> tuple[io.BufferedReader, io.BufferedWriter]:
    import os

    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    return open(read_fd, "rb"), open(os.devnull, "wb")


def test_tail_counts_lines_not_partial_entries(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_log(
        path,
        "2026-01-01T00:00:00.000000001Z stdout F first",
        "2026-01-01T00:00:01.000000000Z stdout P sec",
        "2026-01-01T00:00:01.000000001Z stdout F ond",
        "2026-01-01T00:00:02.000000000Z stderr F third",
    )
    entries = logfiles.read_entries(path)
    assert logfiles.render(logfiles.tail_entries(entries, 2)) == b"second\nthird\n"
    assert logfiles.render(logfiles.tail_entries(entries, 10)) == b"first\nsecond\nthird\n"
    assert logfiles.tail_entries(entries, 0) == []
    stamped = logfiles.render(entries[-1:], timestamps=True)
    assert stamped == b"2026-01-01T00:00:02.000000000Z third\n"


def test_fallback_message_is_the_last_80_lines_or_2048_bytes(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_log(path, *(f"2026-01-01T00:00:00.000000000Z stdout F line {i}" for i in range(100)))
    message = logfiles.fallback_message(path)
    assert message.startswith("line 20\n")
    assert message.endswith("line 99\n")
    write_log(path, *(f"2026-01-01T00:00:00.000000000Z stdout F {'y' * 100}" for _ in range(50)))
    assert len(logfiles.fallback_message(path)) == 2048
    assert logfiles.fallback_message(tmp_path / "absent.log") == ""


def test_log_query_parsing() -> None:
    moment = datetime.datetime(2026, 1, 1, 0, 1, 0, tzinfo=datetime.UTC)
    query = LogQuery.parse("follow=true&tailLines=5&timestamps=1&sinceSeconds=30&unknown=x", moment)
    assert query.follow
    assert query.timestamps
    assert not query.previous
    assert query.tail_lines == 5
    assert query.since == "2026-01-01T00:00:30.000000000Z"
    assert LogQuery.parse("sinceTime=2026-01-01T00:00:30Z").since == "2026-01-01T00:00:30.000000000Z"
    assert LogQuery.parse("").tail_lines is None


def test_initial_entries_apply_since_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_log(
        path,
        "2026-01-01T00:00:00.000000000Z stdout F old",
        "2026-01-01T00:00:40.000000000Z stdout F new 1",
        "2026-01-01T00:00:50.000000000Z stdout F new 2",
    )
    with path.open("ab") as handle:
        handle.write(b"2026-01-01T00:00:55.000000000Z stdout F incomplete")
    query = LogQuery(since="2026-01-01T00:00:30.000000000Z", tail_lines=5)
    entries, offset = initial_entries(path, query)
    assert [e.content for e in entries] == [b"new 1", b"new 2"]
    assert path.read_bytes()[offset:] == b"2026-01-01T00:00:55.000000000Z stdout F incomplete"
    assert [e.content for e in initial_entries(path, LogQuery(tail_lines=1))[0]] == [b"new 2"]


def test_follow_stops_when_the_run_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_log(path, "2026-01-01T00:00:00.000000000Z stdout F a")
    finished = threading.Event()
    followed = logfiles.follow(path, 0, finished, poll=0.01)
    assert next(followed).content == b"a"
    with path.open("a") as handle:
        handle.write("2026-01-01T00:00:01.000000000Z stdout F b\n")
    finished.set()
    assert [e.content for e in followed] == [b"b"]
