"""The sources a collector is given: a file's bytes and readers, and HTTP confined to the source's host.

The API key is applied here and never handed to the module: as the header or query parameter the Wrapper's
spec names. Transient failures (connection errors, timeouts, 5xx, 429) are retried with exponential backoff;
a 429 waits what its ``Retry-After`` says, within the same cap. Other answers are returned as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from ..retry_after import retry_after_seconds
from .contract import Cell, Response

USER_AGENT = "headwater-wrapper/1"
MAX_DELAY_SECONDS = 60.0
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class SourceError(Exception):
    """The source cannot be read; `reason` says why (`SourceUnreachable`, `HostRefused`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ApiKey:
    """Where the API key goes: a header (`X-API-Key`, or `Authorization` as `Bearer <key>`) or a query
    parameter."""

    value: str
    header: str | None = "X-API-Key"
    query_parameter: str | None = None

    def apply(self, headers: dict[str, str], params: dict[str, str]) -> None:
        if self.query_parameter:
            params[self.query_parameter] = self.value
        elif self.header and self.header.lower() == "authorization":
            headers["Authorization"] = f"Bearer {self.value}"
        elif self.header:
            headers[self.header] = self.value


def decode(data: bytes) -> str:
    """A text file's content: UTF-8 (with or without BOM), else Latin-1, which decodes any byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def csv_rows(data: bytes) -> Iterator[list[str]]:
    text = decode(data)
    head = text[:16384]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(head, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    yield from csv.reader(io.StringIO(text, newline=""), dialect)


def _workbook(data: bytes):  # type: ignore[no-untyped-def]  # openpyxl's Workbook
    import openpyxl

    try:
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as failure:  # openpyxl raises many kinds on a file that is not a workbook
        raise SourceError("SourceUnreadable", f"the file is not an XLSX workbook: {failure}") from failure


def sheet_names(data: bytes) -> list[str]:
    workbook = _workbook(data)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def xlsx_rows(data: bytes, sheet: str | None = None) -> Iterator[list[Cell]]:
    workbook = _workbook(data)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise SourceError("SourceChanged", f"the workbook has no sheet {sheet!r}")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        for row in worksheet.iter_rows(values_only=True):
            yield [_cell(value) for value in row]
    finally:
        workbook.close()


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return str(value)


@dataclass
class FileSource:
    """A CSV or XLSX file, read from memory."""

    data: bytes
    url: str | None = None

    def get(self, url: str | None = None, params: Mapping[str, str | int | float] | None = None) -> Response:
        raise SourceError("HostRefused", "a file source has no HTTP access")

    def read_bytes(self) -> bytes:
        return self.data

    def csv_rows(self) -> Iterator[list[str]]:
        return csv_rows(self.data)

    def sheet_names(self) -> list[str]:
        return sheet_names(self.data)

    def xlsx_rows(self, sheet: str | None = None) -> Iterator[list[Cell]]:
        return xlsx_rows(self.data, sheet)


@dataclass
class HttpSource:
    """An API: GETs confined to the host (and port) of the source's URL."""

    url: str | None
    api_key: ApiKey | None = None
    max_retries: int = 4
    backoff_seconds: float = 1.0
    timeout_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    requests: int = 0
    _client: httpx.Client | None = field(default=None, repr=False)

    def _origin(self, url: str) -> tuple[str, str, int | None]:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        return parts.scheme, (parts.hostname or "").lower(), port

    def _allowed(self, url: str) -> None:
        assert self.url is not None
        if self._origin(url) != self._origin(self.url):
            host = urlsplit(url).netloc or url
            raise SourceError("HostRefused", f"the collector asked for {host}: not the source's host")

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.timeout_seconds,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json, text/csv, */*"},
                follow_redirects=False,
                transport=self.transport,
            )
        return self._client

    def get(self, url: str | None = None, params: Mapping[str, str | int | float] | None = None) -> Response:
        if self.url is None:
            raise SourceError("HostRefused", "the source has no URL")
        target = urljoin(self.url, url) if url else self.url
        self._allowed(target)
        headers: dict[str, str] = {}
        query = {key: str(value) for key, value in (params or {}).items()}
        if self.api_key is not None:
            self.api_key.apply(headers, query)
        delay = self.backoff_seconds
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                response = self.client.get(target, params=query or None, headers=headers)
            except httpx.HTTPError as failure:
                problem = f"{type(failure).__name__}"
                wait = delay
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    url = str(response.url)
                    return Response(response.status_code, url, response.headers, response.content)
                problem = f"HTTP {response.status_code}"
                wait = retry_after_seconds(response.headers.get("Retry-After")) or delay
            if attempt == self.max_retries:
                break
            self.sleep(min(wait, MAX_DELAY_SECONDS))
            delay = min(delay * 2, MAX_DELAY_SECONDS)
        host = urlsplit(target).netloc
        raise SourceError(
            "SourceUnreachable", f"{host} did not answer after {self.max_retries + 1} attempts: {problem}"
        )

    def read_bytes(self) -> bytes:
        response = self.get()
        if response.status_code >= 400:
            raise SourceError("SourceUnreachable", f"downloading the file: HTTP {response.status_code}")
        return response.content

    def csv_rows(self) -> Iterator[list[str]]:
        return csv_rows(self.read_bytes())

    def sheet_names(self) -> list[str]:
        return sheet_names(self.read_bytes())

    def xlsx_rows(self, sheet: str | None = None) -> Iterator[list[Cell]]:
        return xlsx_rows(self.read_bytes(), sheet)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
