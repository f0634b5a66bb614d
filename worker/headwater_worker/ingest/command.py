"""`python -m headwater_worker ingest run|migrate`: the Connector worker.

  run       ingest what the source has (files, or API data since the cursor) into PostgreSQL, once; with a
            file connector whose configuration says `watch`, scan until stopped
  migrate   bring the ingest schema to the newest revision (also done at the start of every run)

Environment:
  HEADWATER_INGEST_CONFIG    the non-secret configuration, JSON of `IngestConfig` (run)
  DATABASE_URL               the database DSN (from a Secret)
  HEADWATER_CREDENTIALS_DIR  the source's credentials, one file per Secret key
                             (default /var/run/headwater/credentials)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                             an S3 file source's access key pair (from a Secret); absent, the pod's
                             ambient credentials
  HEADWATER_MAPPINGS_DIR     where shipped mappings are (default: the image's /opt/headwater/mappings)
  HEADWATER_TERMINATION_LOG  where to write the summary (default /dev/termination-log when it exists)
  KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT
                             with a mounted ServiceAccount token, where a watcher writes its figures into
                             its Connector's status after each load (see `status`)

Exit status 0 when the run succeeded (refused files and rejected rows are outcomes, not failures); 1 with
the reason in the termination message otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..envconfig import InvalidEnvironment, config_from_env
from ..logs import error_line, fields, one_line, redact
from ..process import Terminated, worker_process
from ..termination import TERMINATION_MESSAGE_LIMIT, termination_log_path, write_termination_message
from .config import (
    CONFIG_ENV,
    CREDENTIALS_DIR_ENV,
    DATABASE_URL_ENV,
    DEFAULT_CREDENTIALS_DIR,
    ErrorInfo,
    IngestConfig,
    IngestSummary,
)
from .errors import FailureReason, IngestError
from .pipeline import BatchResult

log = logging.getLogger("headwater_worker.ingest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("run", help="ingest once (or watch, for a file connector configured so)")
    actions.add_parser("migrate", help="bring the ingest schema to the newest revision")


def load_config(env: Mapping[str, str]) -> IngestConfig:
    try:
        return config_from_env(IngestConfig, CONFIG_ENV, env)
    except InvalidEnvironment as invalid:
        raise IngestError(FailureReason.CONFIGURATION_ERROR, str(invalid)) from None


# -- termination message ----------------------------------------------------------------------------------


def termination_message(summary: IngestSummary, *, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    data = summary.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > limit and summary.error is not None:
        shorter = ErrorInfo(reason=summary.error.reason, message=summary.error.message[:512] + "…")
        data = summary.model_copy(update={"error": shorter}).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return redact(text)[:limit]


def print_batch(result: BatchResult) -> None:
    print(
        redact(json.dumps(result.line(), separators=(",", ":"), ensure_ascii=False, default=str)), flush=True
    )


# -- entry point ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    with worker_process(env, env.get(DATABASE_URL_ENV)):
        if args.action == "migrate":
            return _migrate(env)
        return _run(env)


def _dsn(env: Mapping[str, str]) -> str:
    dsn = env.get(DATABASE_URL_ENV)
    if not dsn:
        raise IngestError(FailureReason.CONFIGURATION_ERROR, f"{DATABASE_URL_ENV} is not set")
    return dsn


def _migrate(env: Mapping[str, str]) -> int:
    from . import schema

    termination_log = termination_log_path(env)
    try:
        revision = schema.migrate(_dsn(env))
    except IngestError as failure:
        return _fail(termination_log, IngestSummary(), failure.reason, failure.message)
    except Exception as error:
        return _fail(termination_log, IngestSummary(), FailureReason.DATABASE_UNAVAILABLE, error_line(error))
    print(json.dumps({"revision": revision}), flush=True)
    return 0


def _run(env: Mapping[str, str]) -> int:
    from . import runner, status

    termination_log = termination_log_path(env)
    try:
        config = load_config(env)
        dsn = _dsn(env)
        credentials = Path(env.get(CREDENTIALS_DIR_ENV) or DEFAULT_CREDENTIALS_DIR)
        log.info("ingest run started", extra=fields(connector=config.connector, type=config.type))
        if config.file is not None and config.file.watch:
            on_scan = status.reporter(env, config.connector)
            runner.watch(config, dsn, credentials, on_batch=print_batch, on_scan=on_scan)
            return 0
        result = runner.run_once(config, dsn, credentials, on_batch=print_batch)
    except IngestError as failure:
        return _fail(termination_log, failure.summary or IngestSummary(), failure.reason, failure.message)
    except Terminated as signal_name:
        if "config" in locals() and config.file is not None and config.file.watch:
            log.info("watcher stopped", extra=fields(signal=str(signal_name)))
            return 0
        return _fail(termination_log, IngestSummary(), FailureReason.TERMINATED, f"stopped by {signal_name}")
    write_termination_message(termination_log, termination_message(result))
    return 0


def _fail(termination_log: Path | None, summary: IngestSummary, reason: str, message: str) -> int:
    message = one_line(redact(message))
    log.error("ingest run failed", extra=fields(reason=str(reason), error=message))
    failed = summary.model_copy(update={"error": ErrorInfo(reason=str(reason), message=message)})
    write_termination_message(termination_log, termination_message(failed))
    return 1
