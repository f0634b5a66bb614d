"""A collector run: load the stored module, run it from the high water mark, write what it collected.

The module comes from the mounted ConfigMap and runs only if its SHA-256 is the one the operator recorded
when it was generated (a ConfigMap edited by hand is refused). It runs in a child process (`sandbox`); its
points stream into the output as they come. A failure is named: `SourceUnreachable` (the source did not
answer), `SourceChanged` (a module that passed its dry run failed on the source as it is now: the operator
regenerates it once), `OutputUnavailable`, `CodeMismatch`, or the limit that stopped it.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..logs import error_line, fields
from .config import DATABASE_URL_ENV, CollectionReport, SourceConfig, WrapperConfig
from .sandbox import CollectorFailedError, CollectorProcess, Limits
from .store import CountingStore, DatabaseStore, OutputError, S3Store, Store
from .validation import Verdict, static_errors

log = logging.getLogger(__name__)

RUN_LIMITS = Limits(cpu_seconds=1800, memory_bytes=768 << 20, wall_seconds=3600.0)
# What a module that passed its dry run raising means on the source as it is now: its shape changed.
# Read size of a source streamed from S3 to the collector's file.
CHUNK_BYTES = 1 << 20
SHAPE_FAILURES = frozenset({"CollectorError", "InvalidPoint", "SourceChanged", "SourceUnreadable"})


class RunError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_code(config: WrapperConfig) -> str:
    if not config.code_path or not config.code_sha256:
        raise RunError("CodeMismatch", "no collector code is configured")
    try:
        code = Path(config.code_path).read_text(encoding="utf-8")
    except OSError as error:
        raise RunError("CodeMismatch", f"cannot read the collector code: {error_line(error)}") from None
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
    if digest != config.code_sha256:
        raise RunError(
            "CodeMismatch",
            f"the collector code's SHA-256 is {digest[:12]}…, not the generated {config.code_sha256[:12]}…",
        )
    verdict = Verdict()
    static_errors(ast.parse(code), code, verdict)
    if not verdict.passed:
        raise RunError("CodeMismatch", f"the collector code fails its checks: {verdict.errors[0]}")
    return code


def harness_source(source: SourceConfig, env: Mapping[str, str], folder: Path) -> dict[str, Any]:
    """The child's view of the source: a file it reads (an S3 object downloaded here first, since the
    child holds no S3 key), or HTTP with the API key placed as the spec says."""
    if source.path is not None:
        return {"kind": "file", "path": source.path}
    if source.s3 is not None:
        from .. import s3

        target = folder / "source"
        with s3.failures("downloading the source", lambda message, _: RunError("SourceUnreachable", message)):
            body = s3.client(source.s3).get_object(Bucket=source.s3.bucket, Key=source.s3.key)["Body"]
            with target.open("wb") as handle:
                shutil.copyfileobj(body, handle, CHUNK_BYTES)
        return {"kind": "file", "path": str(target)}
    spec: dict[str, Any] = {"kind": "http", "url": source.url}
    api_key = source.api_key(env)
    if api_key is not None:
        spec["apiKey"] = {
            "value": api_key.value,
            "header": api_key.header,
            "queryParameter": api_key.query_parameter,
        }
    return spec


@contextmanager
def open_store(config: WrapperConfig, env: Mapping[str, str]) -> Iterator[Store]:
    output = config.output
    if output is not None and output.database is not None:
        from ..ingest.errors import IngestError
        from ..ingest.runner import connect

        dsn = env.get(DATABASE_URL_ENV)
        if not dsn:
            raise RunError("OutputUnavailable", f"{DATABASE_URL_ENV} is not set")
        try:
            conn = connect(dsn, application_name="headwater-wrapper")
        except IngestError as failure:
            raise RunError("OutputUnavailable", failure.message) from None
        with conn:
            store = DatabaseStore(
                conn, output.database.table, config.resource_id, config.wrapper, config.indicator
            )
            store.ensure_tables()
            yield store
        return
    if output is not None and output.s3 is not None:
        yield S3Store(output.s3, config.resource_id)
        return
    yield CountingStore()


@dataclass
class Collector:
    """Runs of one Wrapper's module; `collect()` once per run or poll."""

    config: WrapperConfig
    env: Mapping[str, str]
    limits: Limits = RUN_LIMITS
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def collect(self) -> CollectionReport:
        ran_at = self.now()
        try:
            return self._collect(ran_at)
        except RunError as failure:
            log.warning("collection failed", extra=fields(reason=failure.reason, error=failure.message))
            return CollectionReport(
                outcome="failed", ran_at=ran_at, reason=failure.reason, message=failure.message
            )

    def _collect(self, ran_at: datetime) -> CollectionReport:
        import psycopg

        code = load_code(self.config)
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wrapper-")))
            source = harness_source(self.config.source, self.env, folder)
            try:
                store = stack.enter_context(open_store(self.config, self.env))
                since = store.high_water_mark()
                process = CollectorProcess(code, since, source, self.limits)
                written = store.write(process.points())
            except CollectorFailedError as failure:
                reason = "SourceChanged" if failure.reason in SHAPE_FAILURES else failure.reason
                raise RunError(reason, failure.message) from None
            except (OutputError, psycopg.Error) as error:
                raise RunError("OutputUnavailable", error_line(error)) from None
        log.info(
            "collected",
            extra=fields(new_points=written.new_points, since=since.isoformat() if since else None),
        )
        return CollectionReport(
            outcome="collected",
            ran_at=ran_at,
            resource_id=self.config.resource_id,
            new_points=written.new_points,
            total_points=written.total_points,
            high_water_mark=written.high_water_mark or since,
            low_water_mark=written.low_water_mark,
            collection_phase="historical" if since is None else "continuous",
        )
