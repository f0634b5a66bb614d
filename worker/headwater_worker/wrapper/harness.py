"""The child process a collector module runs in: `python -I -m headwater_worker.wrapper.harness`.

It reads one request (JSON) from stdin: the module's code, the high water mark, the source. It runs the
module with builtins that lack everything in `contract.FORBIDDEN_NAMES` and an `__import__` that admits only
`contract.ALLOWED_IMPORTS`, calls `collect(since, source)` and writes each point it accepts to stdout as one
line (timestamp, value, series, other attributes as JSON; tab-separated), then an `#end` line with its
figures, or an `#error` line with the reason and a one-line message. What the module prints goes to stderr.
The parent (`sandbox`) sets the limits of this process before it starts and holds every secret but the
source's API key.
"""

from __future__ import annotations

import builtins
import json
import math
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urljoin

from .contract import ALLOWED_IMPORTS, FORBIDDEN_NAMES, Cell, Point, Response
from .source import ApiKey, FileSource, HttpSource, SourceError

MODULE_FILENAME = "wrapper.py"


class ForbiddenImportError(ImportError):
    pass


class InvalidPointError(ValueError):
    pass


class EndOfSampleError(Exception):
    """A dry run asked for a page the sample does not hold: where the sample ends, the dry run ends."""


def allowed_import(name: str, fromlist: Iterable[str] | None) -> bool:
    if name in ALLOWED_IMPORTS:
        return True
    # `from headwater_worker.wrapper import helpers` asks for the package with a from-list.
    return bool(fromlist) and all(f"{name}.{item}" in ALLOWED_IMPORTS for item in fromlist or ())


def _guarded_import(
    name: str,
    globals_: Mapping[str, Any] | None = None,
    locals_: Mapping[str, Any] | None = None,
    fromlist: tuple[str, ...] | None = (),
    level: int = 0,
) -> Any:
    if level != 0 or not allowed_import(name, fromlist):
        raise ForbiddenImportError(f"import of {name!r} is not allowed in a collector")
    return builtins.__import__(name, globals_, locals_, fromlist or (), 0)


def restricted_builtins() -> dict[str, Any]:
    allowed = {
        key: value
        for key, value in vars(builtins).items()
        if key not in FORBIDDEN_NAMES and not key.startswith("_")
    }
    allowed["__import__"] = _guarded_import
    allowed["__build_class__"] = builtins.__build_class__
    allowed["__name__"] = "builtins"
    return allowed


def load_collector(code: str) -> Any:
    """The module's `collect`, defined by running the code under restricted builtins."""
    namespace: dict[str, Any] = {"__builtins__": restricted_builtins(), "__name__": "wrapper"}
    exec(compile(code, MODULE_FILENAME, "exec"), namespace)  # noqa: S102 - checked code, restricted builtins
    collect = namespace.get("collect")
    if not callable(collect):
        raise InvalidPointError("the module defines no function collect(since, source)")
    return collect


def as_point(item: Any) -> Point:
    if isinstance(item, Point):
        point = item
    elif isinstance(item, tuple | list) and len(item) in (2, 3):
        point = Point(*item)
    elif isinstance(item, Mapping) and "timestamp" in item and "value" in item:
        point = Point(item["timestamp"], item["value"], item.get("attributes"))
    else:
        raise InvalidPointError(f"collect yielded {type(item).__name__}, not a point")
    if not isinstance(point.timestamp, datetime) or point.timestamp.utcoffset() is None:
        raise InvalidPointError(f"point timestamp {point.timestamp!r} is not a timezone-aware datetime")
    if isinstance(point.value, bool) or not isinstance(point.value, int | float):
        raise InvalidPointError(
            f"point value {point.value!r} at {point.timestamp.isoformat()} is not a number"
        )
    if not math.isfinite(point.value):
        raise InvalidPointError(f"point value {point.value!r} at {point.timestamp:%Y-%m-%d} is not finite")
    if point.attributes is not None and not isinstance(point.attributes, Mapping):
        raise InvalidPointError("point attributes must be a dict")
    return point


def _plain_point(item: Any) -> tuple[datetime, float] | None:
    """The time and value of a point that needs none of `as_point`'s conversions and checks (a tuple of a
    UTC datetime, a finite float and no attributes, as the helpers yield them); None for anything else,
    which `as_point` then reads. Tested by class, not isinstance: a subclass takes the long way."""
    if item.__class__ is not tuple or len(item) != 3 or item[2] is not None:
        return None
    moment, value, _ = item
    if moment.__class__ is not datetime or moment.tzinfo is not UTC:
        return None
    if value.__class__ is not float or value - value != 0.0:
        return None
    return moment, value


@dataclass
class ReplaySource:
    """An API as its sample recorded it: the pages fetched while sampling, and nothing else."""

    url: str | None
    pages: list[dict[str, Any]]
    requests: int = 0
    _confine: HttpSource = field(init=False)

    def __post_init__(self) -> None:
        self._confine = HttpSource(self.url)

    def get(self, url: str | None = None, params: Mapping[str, str | int | float] | None = None) -> Response:
        assert self.url is not None
        target = urljoin(self.url, url) if url else self.url
        self._confine._allowed(target)
        self.requests += 1
        wanted = {key: str(value) for key, value in (params or {}).items()}
        for page in self.pages:
            if page["url"] == target and page["params"] == wanted:
                headers = dict(page["headers"])
                return Response(page["status"], target, _Headers(headers), page["body"].encode("utf-8"))
        raise EndOfSampleError(target)

    def read_bytes(self) -> bytes:
        raise SourceError("SourceUnreadable", "an API source has no file")

    def csv_rows(self) -> Iterator[list[str]]:
        return FileSource(self.read_bytes()).csv_rows()

    def sheet_names(self) -> list[str]:
        return []

    def xlsx_rows(self, sheet: str | None = None) -> Iterator[list[Cell]]:
        return FileSource(self.read_bytes()).xlsx_rows(sheet)


class _Headers(dict[str, str]):
    """Headers looked up case-insensitively, as httpx's are."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__({key.lower(): value for key, value in headers.items()})

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


def build_source(spec: Mapping[str, Any]) -> FileSource | HttpSource | ReplaySource:
    kind = spec["kind"]
    if kind == "file":
        with builtins.open(spec["path"], "rb") as handle:
            return FileSource(handle.read(), spec.get("url"))
    if kind == "replay":
        return ReplaySource(spec.get("url"), list(spec["pages"]))
    key = spec.get("apiKey")
    api_key = ApiKey(key["value"], key.get("header"), key.get("queryParameter")) if key else None
    return HttpSource(spec["url"], api_key, max_retries=int(spec.get("maxRetries", 4)))


def _module_line(error: BaseException) -> str:
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == MODULE_FILENAME
    ]
    return f" (line {frames[-1].lineno})" if frames else ""


def failure_of(error: BaseException) -> tuple[str, str]:
    """Reason and one-line message of what stopped the collector."""
    if isinstance(error, SourceError):
        return error.reason, error.message
    if isinstance(error, ForbiddenImportError):
        return "ForbiddenImport", str(error)
    if isinstance(error, InvalidPointError):
        return "InvalidPoint", str(error)
    if isinstance(error, MemoryError):
        return "MemoryLimit", "the collector ran out of its memory limit"
    text = " ".join(str(error).split()) or type(error).__name__
    return "CollectorError", f"{type(error).__name__}{_module_line(error)}: {text}"[:1000]


def _clean(text: str) -> str:
    return " ".join(text.split())


def series_and_attributes(attributes: Mapping[str, Any] | None) -> tuple[str, str]:
    """The point's series (its `series` attribute, else empty) and the rest of its attributes as JSON, both
    free of tabs and newlines, which separate the output's fields and lines."""
    if not attributes:
        return "", ""
    rest = {str(key): str(value) for key, value in attributes.items() if key != "series"}
    series = _clean(str(attributes.get("series") or ""))
    return series, json.dumps(rest, ensure_ascii=True) if rest else ""


def run(request: Mapping[str, Any], out: IO[str]) -> int:
    since = datetime.fromisoformat(request["since"]) if request.get("since") else None
    count, stopped_at_sample_end = 0, False
    source: FileSource | HttpSource | ReplaySource | None = None
    try:
        source = build_source(request["source"])
        collect = load_collector(request["code"])
        produced = collect(since, source)
        for item in produced if produced is not None else ():
            fast = _plain_point(item)
            if fast is not None:
                # What the helpers yield: an aware UTC time, a finite float, no attributes.
                if since is None or fast[0] > since:
                    out.write(f"{fast[0].isoformat()}\t{fast[1]!r}\t\t\n")
                    count += 1
                continue
            point = as_point(item)
            if since is not None and point.timestamp <= since:
                continue
            moment = point.timestamp.astimezone(UTC).isoformat()
            series, attributes = series_and_attributes(point.attributes)
            out.write(f"{moment}\t{float(point.value)!r}\t{series}\t{attributes}\n")
            count += 1
    except EndOfSampleError:
        stopped_at_sample_end = True
    except BaseException as error:  # the module is untrusted: whatever it raises is its failure
        reason, message = failure_of(error)
        out.write("#error\t" + json.dumps({"reason": reason, "message": message, "points": count}) + "\n")
        out.flush()
        return 2
    requests = getattr(source, "requests", 0)
    summary = {"points": count, "requests": requests, "sampleEnded": stopped_at_sample_end}
    out.write("#end\t" + json.dumps(summary) + "\n")
    out.flush()
    return 0


def main() -> int:
    request = json.loads(sys.stdin.read())
    out = sys.stdout
    # The module's own prints must not mix with the points.
    sys.stdout = sys.stderr
    return run(request, out)


if __name__ == "__main__":
    sys.exit(main())
