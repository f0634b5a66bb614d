"""`python -m headwater_worker package setup|process|finalise`: one stage of a Package.

  setup                       check the boundary, processors and storage; write the package's pages
  process --processor D.V     run one processor (`dataset.version`), or skip it when its outputs for these
                              inputs are stored
  finalise                    write datapackage.json, the package's index.html, and append to provenance.json

Environment:
  HEADWATER_PACKAGE_CONFIG    the non-secret configuration, JSON of `PackageConfig`
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                              S3 credentials (from a Secret), for S3 storage, cache or sources
  HEADWATER_SCRATCH           folder for interim files (default the system's temporary folder)
  HEADWATER_PACKAGE_JOB       the processor's Job: with a ServiceAccount token, its progress is also written
                              into the Package's `status.reports` as it goes
  HEADWATER_TERMINATION_LOG   where to write the report (default /dev/termination-log when it exists)

Progress goes to stdout, one JSON line per step: {"processor", "percent", "message"}.

Exit status: 0 done (or skipped); 1 failed and worth retrying (a source or the storage unreachable); 2
failed for good (invalid boundary, configuration or processor: a retry cannot help). The reason is in the
report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from ..logs import fields, one_line, redact
from ..process import Terminated, worker_process
from ..termination import TERMINATION_MESSAGE_LIMIT, termination_log_path, write_termination_message
from .config import (
    CONFIG_ENV,
    ErrorInfo,
    PackageConfig,
    ProcessorPhase,
    ProcessorResult,
    StageName,
    StageReport,
)
from .errors import FailureReason, PackageError
from .stages import ConfigurationError, Stage

log = logging.getLogger("headwater_worker.package")

SCRATCH_ENV = "HEADWATER_SCRATCH"
EXIT_FAILED = 1
EXIT_PERMANENT = 2
ELLIPSIS = "…"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    stages.add_parser("setup", help="check the inputs and write the package's pages")
    process = stages.add_parser("process", help="run one processor")
    process.add_argument("--processor", required=True, metavar="DATASET.VERSION", help="the processor to run")
    stages.add_parser("finalise", help="write datapackage.json and append to provenance.json")


def load_config(env: Mapping[str, str]) -> PackageConfig:
    raw = env.get(CONFIG_ENV)
    if not raw:
        raise ConfigurationError(f"{CONFIG_ENV} is not set")
    try:
        return PackageConfig.from_env(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigurationError(f"invalid {CONFIG_ENV}: {problems}") from None


def _dump(report: StageReport) -> str:
    data = report.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=False)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(length - 1, 0)] + ELLIPSIS


def termination_message(report: StageReport, *, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The report as compact JSON in `limit` bytes: first the error message is shortened, then result URIs
    are left out from the end (counted in `omittedUris`)."""
    text = _dump(report)
    for length in (1024, 256):
        if len(text.encode()) <= limit or report.error is None:
            break
        report = report.model_copy(
            update={
                "error": report.error.model_copy(update={"message": _shorten(report.error.message, length)})
            }
        )
        text = _dump(report)
    results = list(report.processors)
    while len(text.encode()) > limit and any(result.result_uris for result in results):
        index = max(range(len(results)), key=lambda at: len(results[at].result_uris))
        shortened = results[index]
        results[index] = shortened.model_copy(
            update={"result_uris": shortened.result_uris[:-1], "omitted_uris": shortened.omitted_uris + 1}
        )
        text = _dump(report.model_copy(update={"processors": results}))
    return text[:limit] if len(text.encode()) > limit else text


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    with worker_process(env, None):
        return _run(args, env)


def _print(payload: dict[str, object]) -> None:
    print(redact(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)), flush=True)


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from . import stages
    from .progress import progress_writer
    from .storage import open_storage

    termination_log = termination_log_path(env)
    stage_name: StageName = args.stage
    processor: str | None = getattr(args, "processor", None)
    boundary = ""
    last: dict[str, tuple[int, str]] = {}
    writer = None

    def progress(name: str, percent: int, message: str) -> None:
        if last.get(name) == (percent, message):
            return
        last[name] = (percent, message)
        _print({"processor": name, "percent": percent, "message": message})
        if writer is not None:
            writer(name, percent, message)

    try:
        config = load_config(env)
        boundary = config.boundary.name
        if stage_name == "process":
            writer = progress_writer(env, config.package)
        log.info(
            "package stage started",
            extra=fields(package=config.package, stage=stage_name, boundary=boundary, processor=processor),
        )
        with stages.scratch_folder(env.get(SCRATCH_ENV) or None) as scratch:
            stage = Stage(
                config=config,
                storage=open_storage(config.storage),
                cache=open_storage(config.cache) if config.cache is not None else None,
                scratch=Path(scratch),
                progress=progress,
            )
            if stage_name == "setup":
                report = stages.setup(stage)
            elif stage_name == "process":
                assert processor is not None
                result = stages.process(stage, processor)
                report = StageReport(stage="process", boundary=boundary, processors=[result])
            else:
                report = stages.finalise(stage)
    except PackageError as failure:
        return _fail(
            termination_log, stage_name, boundary, processor, failure.reason, failure.message, failure
        )
    except Terminated as signal_name:
        reason, message = FailureReason.TERMINATED, f"stopped by {signal_name}"
        return _fail(termination_log, stage_name, boundary, processor, reason, message, None)
    write_termination_message(termination_log, termination_message(report))
    log.info("package stage finished", extra=fields(stage=stage_name, boundary=boundary, processor=processor))
    return 0


def _fail(
    termination_log: Path | None,
    stage: StageName,
    boundary: str,
    processor: str | None,
    reason: FailureReason,
    message: str,
    failure: PackageError | None,
) -> int:
    message = one_line(redact(message))
    permanent = failure is not None and failure.permanent
    log.error("package stage failed", extra=fields(stage=stage, reason=str(reason), error=message))
    results = (
        [ProcessorResult(name=processor, phase=ProcessorPhase.FAILED, progress=0, message=message)]
        if processor
        else []
    )
    report = StageReport(
        stage=stage,
        boundary=boundary,
        processors=results,
        error=ErrorInfo(reason=reason, message=message, permanent=permanent),
    )
    write_termination_message(termination_log, termination_message(report))
    return EXIT_PERMANENT if permanent else EXIT_FAILED
