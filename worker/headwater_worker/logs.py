"""Structured logs: one JSON object per line on stderr, with every registered secret redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import urllib.parse
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "***"
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s]*):(?P<password>[^@/?#\s]*)@", re.I
)


class Redactor:
    """Replaces secrets (and any URL's password) in text before it leaves the process."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:
            self._secrets.add(secret)
            self._secrets.add(urllib.parse.quote(secret, safe=""))
            self._secrets.add(urllib.parse.quote_plus(secret, safe=""))

    def add_dsn(self, dsn: str | None) -> None:
        """Register a database DSN (URL or key=value form) and the password inside it."""
        if not dsn:
            return
        self.add(dsn)
        match = _URL_PASSWORD.search(dsn)
        if match:
            self.add(urllib.parse.unquote(match.group("password")))
        for kv in re.finditer(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
            value = kv.group(1)
            self.add(value.strip("'"))

    def clear(self) -> None:
        self._secrets.clear()

    def __call__(self, text: str) -> str:
        # Longest first, so that a secret containing another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)


redact = Redactor()

# What database libraries add around the error itself: SQLAlchemy's link to its docs and its echo of the
# statement and parameters, and psycopg's caret under the failing position.
_BOILERPLATE = re.compile(r"^(\(Background on this error at: .*\)|\[SQL: .*|\[parameters: .*|\^)$")


def one_line(text: str) -> str:
    """Text fit for a status, an Event or a termination message: one line, without library boilerplate."""
    lines = (line.strip() for line in text.splitlines())
    return " ".join(line for line in lines if line and not _BOILERPLATE.match(line))


def error_line(error: BaseException) -> str:
    """An exception as one readable, redacted line. A driver error that SQLAlchemy wraps speaks for itself:
    its wrapper only adds the driver's class name and a link."""
    original = getattr(error, "orig", None)
    return one_line(redact(str(original if isinstance(original, BaseException) else error)))


def redact_dsn(dsn: str) -> str:
    """A DSN fit for an error message: its password replaced."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", dsn)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return redact(json.dumps(payload, default=str, ensure_ascii=False))


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("...", extra=fields(task="x", rows=3))` adds keys to the JSON line."""
    return {"fields": values}


def setup(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route every log record to `stream` (stderr) as JSON; quiet the chatty libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
