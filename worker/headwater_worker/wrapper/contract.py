"""The collector contract: what a generated module defines, and the only ways out it is given.

A collector module defines ``collect(since, source)``. ``since`` is the high water mark (the newest
timestamp already stored, timezone-aware) or ``None`` on the first run; the function returns or yields the
points newer than it. A point is a :class:`Point`, or a ``(timestamp, value)`` /
``(timestamp, value, attributes)`` tuple: a timezone-aware ``datetime``, a finite ``float`` and an optional
``dict`` of string attributes (``series`` names the series a point belongs to).

``source`` is a :class:`Source`: HTTP to the source's own host with the Wrapper's API key applied, or the
bytes of the source file and readers for it. The module imports nothing but :data:`ALLOWED_IMPORTS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

# What a collector may import: pure standard-library modules, and the helpers made for collectors. Nothing
# that reaches files, processes, sockets or the interpreter's internals.
ALLOWED_IMPORTS = frozenset(
    {
        "__future__",
        "collections",
        "collections.abc",
        "csv",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "functools",
        "io",
        "itertools",
        "json",
        "math",
        "re",
        "statistics",
        "string",
        "typing",
        "zoneinfo",
        "headwater_worker.wrapper.helpers",
    }
)

# Builtins a collector may not name: they read files, run code or reach the interpreter's internals.
FORBIDDEN_NAMES = frozenset(
    {
        "open",
        "eval",
        "exec",
        "compile",
        "__import__",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "memoryview",
        "exit",
        "quit",
        "help",
    }
)

# Attributes a collector may not reach, on any object: the ways to files and processes that modules on the
# allow-list still hold (`io.open`, `io.FileIO`).
FORBIDDEN_ATTRIBUTES = frozenset({"open", "open_code", "FileIO", "system", "popen", "load_module"})

Cell = str | int | float | datetime | None


class Point(NamedTuple):
    """One value of the indicator at one time."""

    timestamp: datetime
    value: float
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Response:
    """An HTTP response as ``source.get`` returns it; ``headers`` are looked up case-insensitively."""

    status_code: int
    url: str
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Source(Protocol):
    """What a collector is given of its source."""

    @property
    def url(self) -> str | None:
        """The source's URL from the Wrapper's spec (an API, or where a file is downloaded from)."""
        ...

    def get(self, url: str | None = None, params: Mapping[str, str | int | float] | None = None) -> Response:
        """GET a URL of the source's host (default: the source's URL) with the API key applied; retried with
        backoff on connection errors, 5xx and 429 (honouring ``Retry-After``). Refuses any other host."""
        ...

    def read_bytes(self) -> bytes:
        """The source file's bytes."""
        ...

    def csv_rows(self) -> Iterator[list[str]]:
        """The CSV file's rows: decoded (UTF-8, else Latin-1), delimiter detected."""
        ...

    def sheet_names(self) -> list[str]:
        """The XLSX workbook's sheet names, in order."""
        ...

    def xlsx_rows(self, sheet: str | None = None) -> Iterator[list[Cell]]:
        """The rows of a sheet (default: the first) as cell values; merged cells carry their value in their
        top-left cell only."""
        ...
