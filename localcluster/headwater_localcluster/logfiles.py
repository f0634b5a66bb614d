"""Container log files in the CRI format a kubelet reads: one entry a line,
`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>`; `P` marks a partial line continued by the next
entry (a line longer than `MAX_ENTRY` bytes), `F` a full one."""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_ENTRY = 16 * 1024
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def timestamp(epoch_ns: int | None = None) -> str:
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def normalise_time(text: str) -> str:
    """Any RFC 3339 time as our fixed-width timestamp, so that entries compare as strings."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return timestamp(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


@dataclass(frozen=True)
class Entry:
    timestamp: str
    stream: str
    partial: bool
    content: bytes

    def render(self, *, timestamps: bool) -> bytes:
        text = self.content if self.partial else self.content + b"\n"
        return (self.timestamp.encode() + b" " + text) if timestamps else text


def parse(line: bytes) -> Entry | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return Entry(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


class LogWriter:
    """Appends entries from several threads (stdout and stderr pumps); each entry is one write."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._lock = threading.Lock()

    def write(self, stream: str, content: bytes, *, partial: bool = False) -> None:
        line = b"%s %s %s %s\n" % (timestamp().encode(), stream.encode(), b"P" if partial else b"F", content)
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def pump(source: IO[bytes], stream: str, writer: LogWriter) -> None:
    """Copy a pipe into the log until end of file, line by line."""
    fd = source.fileno()
    buffer = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                line, buffer = buffer[:newline], buffer[newline + 1 :]
                while len(line) > MAX_ENTRY:
                    writer.write(stream, line[:MAX_ENTRY], partial=True)
                    line = line[MAX_ENTRY:]
                writer.write(stream, line)
            while len(buffer) > MAX_ENTRY:
                writer.write(stream, buffer[:MAX_ENTRY], partial=True)
                buffer = buffer[MAX_ENTRY:]
        if buffer:
            writer.write(stream, buffer)
    finally:
        source.close()


def read_entries(path: Path) -> list[Entry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [entry for line in data.splitlines() if (entry := parse(line)) is not None]


def tail_entries(entries: list[Entry], lines: int) -> list[Entry]:
    """The entries of the last `lines` lines (a line may span several partial entries)."""
    if lines <= 0:
        return []
    count = 0
    for index in range(len(entries) - 1, -1, -1):
        if not entries[index].partial:
            count += 1
            if count > lines:
                return entries[index + 1 :]
    return entries


def render(entries: Iterable[Entry], *, timestamps: bool = False) -> bytes:
    return b"".join(entry.render(timestamps=timestamps) for entry in entries)


def fallback_message(path: Path) -> str:
    """What FallbackToLogsOnError reports: the last 80 lines or 2048 bytes of the log, whichever is less."""
    text = render(tail_entries(read_entries(path), FALLBACK_LINES))
    return text[-FALLBACK_BYTES:].decode("utf-8", "replace")


def follow(path: Path, offset: int, finished: threading.Event, poll: float = 0.2) -> Iterator[Entry]:
    """Entries appended after byte `offset`, until `finished` is set and the file has been read to its end."""
    pending = b""
    while True:
        done = finished.is_set()
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            entry = parse(line)
            if entry is not None:
                yield entry
        if done and not data:
            return
        if not data:
            time.sleep(poll)
