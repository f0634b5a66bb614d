"""`python -m headwater_worker compute [task|callback]`: run a ComputeTask, or deliver its TaskUpdate.

`task` (the default) runs the task configured in the environment and PATCHes its TaskUpdate to the
callback URL; `callback` only delivers a TaskUpdate the operator hands over (for an `image` task, or a task
whose pod ended without delivering one).

Environment:
  HEADWATER_COMPUTE_CONFIG   `task`: the task, JSON of `ComputeConfig`
  HEADWATER_COMPUTE_CALLBACK `callback`: the URL and the update, JSON of `CallbackConfig`
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                             the bucket's key pair (from a Secret)
  HEADWATER_TERMINATION_LOG  where to write the result (default /dev/termination-log when it exists)

Exit status: 0 once the task ended (`finished` or `error`) and its update was delivered or given up on;
2 when it ended in `error` that no retry would change; 1 when it could not run (S3 unreachable, say),
which the Job retries up to its `backoffLimit`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping

from .. import s3
from ..envconfig import InvalidEnvironment, config_from_env
from ..logs import fields, one_line, redact
from ..process import Terminated, worker_process
from ..termination import TERMINATION_MESSAGE_LIMIT, termination_log_path, write_termination_message
from .callback import CallbackPolicy, deliver
from .config import (
    CALLBACK_ENV,
    CONFIG_ENV,
    FINAL_ERROR_EXIT,
    CallbackConfig,
    ComputeConfig,
    ComputeResult,
    ErrorInfo,
    Stage,
)
from .errors import StorageError, TaskError
from .protocol import TaskUpdate
from .stages import StageClock, status_writer
from .storage import TaskObjects

log = logging.getLogger("headwater_worker.compute")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("task", "callback"), default="task")


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    with worker_process(env, None):
        try:
            if args.action == "callback":
                return _deliver_only(config_from_env(CallbackConfig, CALLBACK_ENV, env), env)
            return _run_task(config_from_env(ComputeConfig, CONFIG_ENV, env), env)
        except InvalidEnvironment as invalid:
            return _report(env, _error_update(str(invalid)), [], None, "InvalidConfiguration", 1)


def _error_update(message: str) -> TaskUpdate:
    return TaskUpdate(status="error", data_out=[], error_message=one_line(redact(message)))


def _deliver(url: str | None, update: TaskUpdate, policy: CallbackPolicy) -> dict[str, object] | None:
    return None if url is None else deliver(url, update, policy).to_status()


def _run_task(config: ComputeConfig, env: Mapping[str, str]) -> int:
    writer = status_writer(env, config.compute_task)
    clock = StageClock(writer)
    objects = TaskObjects(s3.client(config.s3), config.s3)
    log.info("task started", extra=fields(taskId=str(config.task.id), service=config.service or config.url))
    reason: str | None
    try:
        if config.url is not None:
            from .runner import run_remote

            update = run_remote(config, objects, clock, env)
        else:
            from .runner import run_builtin
            from .services.registry import UnknownServiceError, service_named

            try:
                service = service_named(config.service or "")
            except UnknownServiceError as unknown:
                raise TaskError(str(unknown), "UnknownService") from None
            update = run_builtin(config, service, objects, clock)
    except TaskError as failed:
        update, reason, code = _error_update(str(failed)), failed.reason, FINAL_ERROR_EXIT
    except StorageError as failure:
        # Worth another attempt: the Job retries, and the operator delivers the error once it gives up.
        clock.enter("error")
        return _report(env, _error_update(str(failure)), clock.stages, None, "StorageUnavailable", 1)
    except Terminated as signal_name:
        clock.enter("error")
        return _report(env, _error_update(f"stopped by {signal_name}"), clock.stages, None, "Terminated", 1)
    else:
        reason = None if update.status == "finished" else "ServiceFailed"
        code = 0 if update.status == "finished" else FINAL_ERROR_EXIT
    clock.enter(update.status)
    callback = _deliver(config.callback_url, update, config.callback)
    return _report(env, update, clock.stages, callback, reason, code)


def _deliver_only(config: CallbackConfig, env: Mapping[str, str]) -> int:
    callback = _deliver(config.url, config.update, config.policy)
    return _report(env, config.update, [], callback, None, 0)


def _report(
    env: Mapping[str, str],
    update: TaskUpdate,
    stages: list[Stage],
    callback: dict[str, object] | None,
    reason: str | None,
    code: int,
) -> int:
    error = ErrorInfo(reason=reason, message=update.error_message or reason) if reason else None
    result = ComputeResult(update=update, stages=stages, callback=callback, error=error)
    write_termination_message(termination_log_path(env), fit(result))
    if error is not None:
        log.error("task ended in error", extra=fields(reason=error.reason, error=error.message))
    else:
        log.info("task ended", extra=fields(status=update.status, dataOut=update.data_out))
    return code


def fit(result: ComputeResult) -> str:
    """The result as JSON within the termination message's 4096 bytes: long messages are cut first."""
    text = result.model_dump_json(by_alias=True, exclude_none=True)
    for keep in (1024, 256, 64):
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            break
        update = result.update
        cut = update.model_copy(update={"error_message": (update.error_message or "")[:keep] or None})
        error = result.error and result.error.model_copy(update={"message": result.error.message[:keep]})
        result = result.model_copy(update={"update": cut, "error": error, "stages": result.stages[-4:]})
        text = result.model_dump_json(by_alias=True, exclude_none=True)
    return text
