"""`python -m headwater_worker export`: run the export tasks configured in the environment.

Environment:
  HEADWATER_EXPORT_CONFIG   the non-secret configuration, JSON of `ExportConfig`
  DATABASE_URL              the database DSN (from a Secret)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                            S3 credentials (from a Secret); without them boto3's usual chain applies
  HEADWATER_TERMINATION_LOG where to write the summary (default /dev/termination-log when it exists)

Exit status 0 when every task succeeded; 1 otherwise, with the reason in the termination message.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..envconfig import InvalidEnvironment, config_from_env
from ..logs import fields, one_line, redact
from ..process import Terminated, worker_process
from .config import CONFIG_ENV, DATABASE_URL_ENV, ErrorInfo, ExportConfig, FailureReason, TaskResult
from .errors import ConfigurationError, ExportError
from .report import print_line, termination_log_path, termination_message, write_termination_message
from .runner import TaskOutcome, run_tasks
from .tasks import resolve_tasks

log = logging.getLogger("headwater_worker.export")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        action="append",
        metavar="TASK",
        help="run only this task (repeatable); narrows the configuration's own `only`",
    )


def load_config(env: Mapping[str, str]) -> ExportConfig:
    try:
        return config_from_env(ExportConfig, CONFIG_ENV, env)
    except InvalidEnvironment as invalid:
        raise ConfigurationError(str(invalid)) from None


def _narrow(config: ExportConfig, only: list[str] | None) -> ExportConfig:
    if not only:
        return config
    if config.only is not None:
        outside = sorted(set(only) - set(config.only))
        if outside:
            raise ConfigurationError(
                f"tasks not selected by the configuration's `only`: {', '.join(outside)}"
            )
    return config.model_copy(update={"only": list(dict.fromkeys(only))})


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    with worker_process(env, env.get(DATABASE_URL_ENV)):
        return _run(args, env)


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    termination_log = termination_log_path(env)
    done: list[TaskOutcome] = []

    def finished(outcome: TaskOutcome) -> None:
        done.append(outcome)
        print_line(outcome.line())
        log.info("task finished", extra=fields(**outcome.line()))

    def results() -> list[TaskResult]:
        return [outcome.result() for outcome in done]

    try:
        config = _narrow(load_config(env), args.only)
        tasks = resolve_tasks(config)
        dsn = env.get(DATABASE_URL_ENV)
        if not dsn:
            raise ConfigurationError(f"{DATABASE_URL_ENV} is not set")
        from .destinations import open_destination

        metadata = {"headwater-export-job": config.export_job} if config.export_job else {}
        destination = open_destination(config.destination, metadata=metadata)
        log.info(
            "export run started",
            extra=fields(exportJob=config.export_job, tasks=[task.name for task in tasks]),
        )
        run_tasks(
            dsn,
            destination,
            tasks,
            gzip_level=config.gzip_level,
            keep_last=config.retention.keep_last if config.retention else None,
            on_done=finished,
        )
    except ExportError as failure:
        return _fail(termination_log, results(), failure.reason, failure.message)
    except Terminated as signal_name:
        return _fail(termination_log, results(), FailureReason.TERMINATED, f"stopped by {signal_name}")
    write_termination_message(termination_log, termination_message(results()))
    log.info("export run finished", extra=fields(tasks=len(done)))
    return 0


def _fail(termination_log: Path | None, tasks: list[TaskResult], reason: FailureReason, message: str) -> int:
    message = one_line(redact(message))
    log.error("export run failed", extra=fields(reason=str(reason), error=message))
    write_termination_message(
        termination_log, termination_message(tasks, ErrorInfo(reason=reason, message=message))
    )
    return 1
