"""`python -m headwater_worker wrapper generate|run`: the Wrapper worker.

  generate  sample the source, write a collector module, check it (with a dry run on the sample), and
            store it in the Wrapper's code ConfigMap
  run       run the stored module from the high water mark and write its points to the output: once (a
            Job or a CronJob's run), or every `pollIntervalSeconds` when the mode is `continuous`

Environment:
  HEADWATER_WRAPPER_CONFIG   the non-secret configuration, JSON of `WrapperConfig`
  HEADWATER_SOURCE_API_KEY   the source's API key (from a Secret), when it needs one
  HEADWATER_GEMINI_API_KEY   Gemini's API key (from a Secret), for the generator of a `gemini` Wrapper
  DATABASE_URL               the output database's DSN (from a Secret), for a database output
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                             an S3 source's or output's access key pair (from a Secret)
  HEADWATER_TERMINATION_LOG  where to write the report (default /dev/termination-log when it exists)
  KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT
                             with the pod's token: where the generator stores the module, and where a
                             continuous collector writes its report into the Wrapper's status

Exit status: 0 generated / collected; 1 failed (the reason in the report); 3 when a continuous collector
stops because its source changed shape (the operator regenerates it); 75 when the generator could not
reach Gemini or Gemini's quota is exhausted (the generator Job tries again later).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..envconfig import InvalidEnvironment, config_from_env
from ..logs import fields, redact
from ..process import Terminated, worker_process
from ..termination import TERMINATION_MESSAGE_LIMIT, termination_log_path, write_termination_message
from .config import (
    API_KEY_ENV,
    CONFIG_ENV,
    DATABASE_URL_ENV,
    EXIT_TRY_LATER,
    GEMINI_API_KEY_ENV,
    CollectionReport,
    GenerationReport,
    WrapperConfig,
)

log = logging.getLogger("headwater_worker.wrapper")

EXIT_SOURCE_CHANGED = 3
WRAPPERS_API = "apis/headwater.dev/v1alpha1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("generate", help="write, check and store the collector module")
    actions.add_parser("run", help="run the collector and write its points")


class ConfigError(Exception):
    pass


def load_config(env: Mapping[str, str]) -> WrapperConfig:
    try:
        return config_from_env(WrapperConfig, CONFIG_ENV, env)
    except InvalidEnvironment as invalid:
        raise ConfigError(str(invalid)) from None


def termination_message(report: BaseModel, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The report as JSON within the limit: the oldest log entries go first, then long messages shrink."""
    data: dict[str, Any] = report.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = redact(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    while len(text.encode()) > limit and data.get("log"):
        data["log"] = data["log"][1:]
        text = redact(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    if len(text.encode()) > limit:
        data["message"] = str(data.get("message", ""))[:400]
        if "validation" in data:
            data["validation"]["errors"] = [error[:200] for error in data["validation"].get("errors", [])[:5]]
        text = redact(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return text


def status_patch(report: CollectionReport, failures: int, empty: int) -> dict[str, Any]:
    """A continuous collector's report as a status patch, with every secret the process knows redacted:
    the collector is untrusted, and its error messages could carry the API key it was given."""
    patch = {
        "status": {
            "collector": report.to_status(),
            "collectorFailures": failures,
            "collectorEmptyPolls": empty,
        }
    }
    return dict(json.loads(redact(json.dumps(patch))))


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    with worker_process(env, env.get(DATABASE_URL_ENV)):
        redact.add(env.get(API_KEY_ENV))
        redact.add(env.get(GEMINI_API_KEY_ENV))
        termination_log = termination_log_path(env)
        try:
            config = load_config(env)
        except ConfigError as error:
            write_termination_message(
                termination_log, json.dumps({"outcome": "failed", "message": str(error)})
            )
            log.error("invalid configuration", extra=fields(error=str(error)))
            return 1
        if args.action == "generate":
            return _generate(config, env, termination_log)
        return _run(config, env, termination_log)


def _generate(config: WrapperConfig, env: Mapping[str, str], termination_log: Any) -> int:
    from .generate import run_generation

    log.info("generating", extra=fields(wrapper=config.wrapper, generator=config.generator.type))
    report = run_generation(config, env)
    write_termination_message(termination_log, termination_message(report))
    log.info("generation finished", extra=fields(outcome=report.outcome, reason=report.reason))
    return generation_exit_status(report)


def generation_exit_status(report: GenerationReport) -> int:
    if report.outcome == "generated":
        return 0
    return EXIT_TRY_LATER if report.retryable else 1


def _run(config: WrapperConfig, env: Mapping[str, str], termination_log: Any) -> int:
    from .runner import Collector

    collector = Collector(config, env)
    if config.mode != "continuous":
        report = collector.collect()
        write_termination_message(termination_log, termination_message(report))
        return 0 if report.outcome == "collected" else 1
    return _poll(collector, config, env)


def _poll(collector: Any, config: WrapperConfig, env: Mapping[str, str]) -> int:
    """Collect every poll interval until stopped, writing each report into the Wrapper's status."""
    from ..kubeapi import ApiServer, merge_patch

    server = ApiServer.in_cluster(env)
    namespace, name = config.wrapper.split("/", 1)
    stop = threading.Event()
    failures = empty = 0
    try:
        while True:
            report: CollectionReport = collector.collect()
            failures = failures + 1 if report.outcome == "failed" else 0
            empty = empty + 1 if report.outcome == "collected" and not report.new_points else 0
            if server is not None:
                url = f"{server.url}/{WRAPPERS_API}/namespaces/{namespace}/wrappers/{name}/status"
                patch = status_patch(report, failures, empty)
                problem = merge_patch(server, url, patch, field_manager="headwater-wrapper-collector")
                if problem is not None:
                    log.warning("could not write the report into the status", extra=fields(error=problem))
            if report.reason == "SourceChanged":
                return EXIT_SOURCE_CHANGED
            stop.wait(config.poll_interval_seconds)
    except Terminated:
        log.info("stopped")
        return 0
