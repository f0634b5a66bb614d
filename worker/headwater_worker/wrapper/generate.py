"""Generation: sample the source, write a module, check it, try again with the errors, store it.

Each attempt's errors go into the next (the template generator takes them as hints to try the next-best
reading of the source; Gemini reads them, with its previous module, as feedback). After `maxAttempts` the
last errors are the report. A module that passed is written into the Wrapper's code ConfigMap through the
API server; what Gemini was asked and answered goes into the prompts ConfigMap. When Gemini is out of reach
or out of quota, `fallback: template` writes the module offline instead, and the log says so.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..logs import error_line, fields, redact
from .config import (
    API_KEY_ENV,
    CODE_KEY,
    GEMINI_API_KEY_ENV,
    GenerationReport,
    LogEntry,
    TokenUsage,
    Validation,
    WrapperConfig,
)
from .helpers import next_url
from .prompt import PROMPT_VERSION, PreviousAttempt
from .sample import SAMPLE_PAGES, PageSample, Sample
from .source import HttpSource, SourceError
from .validation import validate

log = logging.getLogger(__name__)

CODE_SHA_ANNOTATION = "headwater.dev/code-sha256"


class GenerationFailedError(Exception):
    """No module was stored; `retryable` when a later try may succeed (Gemini out of reach or quota)."""

    def __init__(
        self,
        reason: str,
        message: str,
        errors: list[str] | None = None,
        *,
        retryable: bool = False,
        tokens: TokenUsage | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.errors = errors or [message]
        self.retryable = retryable
        self.tokens = tokens


def sample_api(source: HttpSource, pages: int = SAMPLE_PAGES) -> Sample:
    """The first pages of an API, following the links it gives to the next one."""
    assert source.url is not None
    sampled: list[PageSample] = []
    url: str | None = source.url
    while url is not None and len(sampled) < pages:
        response = source.get(url)
        headers = {
            key.lower(): value
            for key, value in response.headers.items()
            if key.lower() in ("link", "content-type")
        }
        page = PageSample(
            url=url if url.startswith("http") else response.url,
            params={},
            status=response.status_code,
            content_type=headers.get("content-type", ""),
            headers=headers,
            body=response.text,
        )
        sampled.append(page)
        if response.status_code >= 400:
            if len(sampled) == 1:
                raise SourceError("SourceUnreachable", f"the API answered HTTP {response.status_code}")
            break
        try:
            body = response.json()
        except ValueError:
            break
        url = next_url(response, body)
    return Sample("API", url=source.url, pages=sampled)


def replay_source(sample: Sample) -> dict[str, Any]:
    pages = [
        {
            "url": page.url,
            "params": page.params,
            "status": page.status,
            "headers": page.headers,
            "body": page.body,
        }
        for page in sample.pages
    ]
    return {"kind": "replay", "url": sample.url, "pages": pages}


@contextmanager
def dry_run_source(sample: Sample) -> Iterator[dict[str, Any]]:
    if sample.source_type == "API":
        yield replay_source(sample)
        return
    with tempfile.NamedTemporaryFile(prefix="sample-", suffix=f".{sample.source_type.lower()}") as handle:
        handle.write(sample.data or b"")
        handle.flush()
        yield {"kind": "file", "path": handle.name, "url": sample.url}


@dataclass
class Attempts:
    """The log of a generation: what each attempt found."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    log: list[LogEntry] = field(default_factory=list)
    made: int = 0

    def note(self, event: str, message: str) -> None:
        self.log.append(LogEntry(time=self.now(), event=event, message=" ".join(message.split())[:1000]))


# A writer of modules: from the sample, every error so far, and the previous attempt (its module and its
# errors; None on the first).
Generate = Callable[[Sample, list[str], PreviousAttempt | None], str]


def generate_module(
    config: WrapperConfig, sample: Sample, write: Generate, attempts: Attempts
) -> tuple[str, int]:
    """The first module that passes validation, and the attempts it took; raises GenerationFailedError."""
    from .template import GenerationError

    feedback: list[str] = [config.previous_error] if config.previous_error else []
    previous: PreviousAttempt | None = None
    last_reason, last_errors = "ValidationFailed", ["no attempt was made"]
    attempts.made = 0
    for attempt in range(1, config.generator.max_attempts + 1):
        attempts.made = attempt
        try:
            code = write(sample, feedback, previous)
        except GenerationError as failure:
            last_reason, last_errors = failure.reason, [failure.message]
            attempts.note("generation_failed", f"attempt {attempt}: {failure.message}")
            feedback = [*feedback, failure.message]
            previous = PreviousAttempt("", [failure.message])
            continue
        with dry_run_source(sample) as source:
            verdict = validate(code, source)
        if verdict.passed:
            attempts.note("generated", f"attempt {attempt}: dry run collected {verdict.points} points")
            return code, attempt
        last_reason, last_errors = "ValidationFailed", verdict.errors
        attempts.note("validation_failed", f"attempt {attempt}: {verdict.errors[0]}")
        feedback = [*feedback, *verdict.errors]
        previous = PreviousAttempt(code, verdict.errors)
    raise GenerationFailedError(last_reason, "; ".join(last_errors[:3]), last_errors)


def template_writer(config: WrapperConfig) -> Generate:
    from .template import TemplateRequest, generate

    request = TemplateRequest(
        name=config.indicator.name,
        description=config.indicator.description,
        unit=config.indicator.unit,
        category=config.indicator.category,
        notes=config.source.notes,
        url=config.source.url,
    )
    return lambda sample, feedback, previous: generate(request, sample, feedback)


@dataclass(frozen=True)
class Written:
    """A module that passed, and who wrote it how."""

    code: str
    attempts: int
    generator: str
    model: str | None = None
    prompt_version: str | None = None
    tokens: TokenUsage | None = None


def write_with_gemini(
    config: WrapperConfig,
    env: Mapping[str, str],
    sample: Sample,
    attempts: Attempts,
    save_prompts: Callable[[dict[str, str]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Written:
    """Gemini's module; the template generator's when Gemini is unavailable and the spec falls back."""
    from .gemini import GeminiError, GeminiWriter
    from .prompt import Indicator

    api_key = env.get(GEMINI_API_KEY_ENV)
    if not api_key:
        raise GenerationFailedError("GeminiKeyRejected", f"no Gemini API key: {GEMINI_API_KEY_ENV} is empty")
    source, indicator = config.source, config.indicator
    fetch = HttpSource(source.url, source.api_key(env)) if source.type == "API" else None
    writer = GeminiWriter(
        model=config.generator.model or "gemini-2.5-flash",
        api_key=api_key,
        base_url=config.generator.base_url,
        indicator=Indicator(
            indicator.name,
            indicator.unit,
            indicator.description,
            indicator.category,
            source.notes,
            source.url,
        ),
        fetch=fetch,
        earlier_failure=config.previous_error,
        save=save_prompts,
        note=attempts.note,
        sleep=sleep,
    )
    try:
        code, tries = generate_module(config, sample, writer, attempts)
    except GeminiError as failure:
        if not (failure.unavailable and config.generator.fallback == "template"):
            raise GenerationFailedError(
                failure.reason, failure.message, retryable=failure.unavailable, tokens=writer.usage.report()
            ) from None
        attempts.note(
            "fallback",
            f"{failure.reason}: {failure.message}; writing the module offline with the template generator",
        )
        code, tries = generate_module(config, sample, template_writer(config), attempts)
        return Written(code, tries, "template", tokens=writer.usage.report())
    except GenerationFailedError as failure:
        failure.tokens = writer.usage.report()
        raise
    finally:
        writer.close()
        if fetch is not None:
            fetch.close()
    return Written(code, tries, "gemini", writer.model, PROMPT_VERSION, writer.usage.report())


def read_sample(config: WrapperConfig, env: Mapping[str, str]) -> Sample:
    from .sampling import sample_file

    source = config.source
    if source.type == "API":
        assert source.url is not None
        http = HttpSource(source.url, source.api_key(env))
        try:
            return sample_api(http)
        finally:
            http.close()
    if source.path is not None:
        try:
            data = Path(source.path).read_bytes()
        except OSError as error:
            raise SourceError(
                "SourceUnreadable", f"cannot read the source file: {error_line(error)}"
            ) from None
        name = Path(source.path).name
    elif source.s3 is not None:
        from .. import s3

        with s3.failures("reading the source", lambda message, _: SourceError("SourceUnreachable", message)):
            body = s3.client(source.s3).get_object(Bucket=source.s3.bucket, Key=source.s3.key)["Body"]
            data = body.read()
        name = source.s3.key.rsplit("/", 1)[-1]
    else:
        assert source.url is not None
        http = HttpSource(source.url)
        try:
            data = http.read_bytes()
        finally:
            http.close()
        name = source.url.rsplit("/", 1)[-1] or "source"
    return sample_file(data, source.type, name)


def store_module(config: WrapperConfig, env: Mapping[str, str], code: str, sha256: str) -> None:
    """Merge-patch the module into the Wrapper's code ConfigMap, as this pod's ServiceAccount (allowed to
    patch that one ConfigMap, nothing else)."""
    from ..kubeapi import ApiServer, merge_patch

    server = ApiServer.in_cluster(env)
    if server is None or not config.code_config_map:
        raise GenerationFailedError("CodeNotStored", "this pod has no API access to store the module with")
    namespace = config.wrapper.split("/", 1)[0]
    url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps/{config.code_config_map}"
    patch = {"metadata": {"annotations": {CODE_SHA_ANNOTATION: sha256}}, "data": {CODE_KEY: code}}
    problem = merge_patch(server, url, patch, field_manager="headwater-wrapper-generator")
    if problem is not None:
        raise GenerationFailedError(
            "CodeNotStored", f"storing the module in {config.code_config_map}: {problem}"
        )


def store_prompts(config: WrapperConfig, env: Mapping[str, str], data: dict[str, str]) -> None:
    """Replace the prompts ConfigMap's data with this generation's transcript. What was asked is for
    reading, not for running: a failure to keep it is logged, and generation goes on."""
    from ..kubeapi import ApiServer, json_patch

    server = ApiServer.in_cluster(env)
    if server is None or not config.prompts_config_map:
        log.info("the prompts are not kept: this pod has no API access")
        return
    namespace = config.wrapper.split("/", 1)[0]
    url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps/{config.prompts_config_map}"
    # `add` replaces the whole of `data`: the keys of an earlier generation go with it.
    operations = [{"op": "add", "path": "/data", "value": data}]
    problem = json_patch(server, url, operations, field_manager="headwater-wrapper-generator")
    if problem is not None:
        log.warning(
            "could not keep the prompts", extra=fields(config_map=config.prompts_config_map, error=problem)
        )


def run_generation(
    config: WrapperConfig,
    env: Mapping[str, str],
    *,
    store: Callable[[WrapperConfig, Mapping[str, str], str, str], None] = store_module,
    keep_prompts: Callable[[WrapperConfig, Mapping[str, str], dict[str, str]], None] = store_prompts,
    attempts: Attempts | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GenerationReport:
    attempts = attempts or Attempts()
    generator = config.generator.type
    # Neither key may reach a prompt, the prompts ConfigMap, a log line or the report.
    redact.add(env.get(API_KEY_ENV))
    redact.add(env.get(GEMINI_API_KEY_ENV))
    try:
        sample = read_sample(config, env)
        if generator == "gemini":
            written = write_with_gemini(
                config, env, sample, attempts, lambda data: keep_prompts(config, env, data), sleep
            )
        else:
            code, tries = generate_module(config, sample, template_writer(config), attempts)
            written = Written(code, tries, "template")
        sha256 = hashlib.sha256(written.code.encode("utf-8")).hexdigest()
        store(config, env, written.code, sha256)
    except SourceError as failure:
        return GenerationReport(
            outcome="failed", generator=generator, attempts=0, reason=failure.reason, message=failure.message
        )
    except GenerationFailedError as failure:
        log.warning("generation failed", extra=fields(reason=failure.reason, error=failure.message))
        return GenerationReport(
            outcome="failed",
            generator=generator,
            attempts=attempts.made,
            model=config.generator.model if generator == "gemini" else None,
            reason=failure.reason,
            message=failure.message,
            prompt_version=PROMPT_VERSION if generator == "gemini" else None,
            tokens=failure.tokens,
            retryable=failure.retryable or None,
            validation=Validation(passed=False, errors=failure.errors[:5]),
            log=attempts.log[-10:],
        )
    return GenerationReport(
        outcome="generated",
        generator=written.generator,
        attempts=written.attempts,
        model=written.model,
        prompt_version=written.prompt_version,
        tokens=written.tokens,
        sha256=sha256,
        generated_at=attempts.now(),
        validation=Validation(passed=True),
        log=attempts.log[-10:],
    )
