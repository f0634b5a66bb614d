"""The Gemini generator against a local server speaking Gemini's REST protocol, through the real SDK.

Each test scripts the model's answers (`tests/fakes/gemini.py`), runs `run_generation` as the generator
Job runs it (the real sampling, validation with ruff and the dry run in the sandbox), and asserts on the
report and on what the fake received: the model in the path, the key in `x-goog-api-key`, the sample and
the previous errors in the prompt, function responses for `fetch_url`, and never a secret of the source.
Waits between retries go to a recorder instead of the clock.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from headwater_worker.wrapper import command
from headwater_worker.wrapper.config import (
    API_KEY_ENV,
    CONFIG_ENV,
    EXIT_TRY_LATER,
    GEMINI_API_KEY_ENV,
    GenerationReport,
    WrapperConfig,
)
from headwater_worker.wrapper.gemini import MAX_TOOL_CALLS, TOOL_ANSWER_CHARS
from headwater_worker.wrapper.generate import read_sample, run_generation
from headwater_worker.wrapper.prompt import PROMPT_VERSION
from headwater_worker.wrapper.template import TemplateRequest, generate

from tests.fakes import gemini as answers
from tests.fakes.apis import FakeIndicatorApi
from tests.fakes.gemini import FakeGemini, Reply

DATA = Path(__file__).resolve().parents[1] / "data" / "wrapper"
CORPUS = {entry["name"]: entry for entry in json.loads((DATA / "corpus.json").read_text())}
GEMINI_KEY = "gemini-key-5f1e9a"
SOURCE_KEY = "source-key-c0ffee42"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini(GEMINI_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def api() -> Iterator[FakeIndicatorApi]:
    served = {}
    for entry in CORPUS.values():
        if entry["type"] == "API":
            body = json.loads((DATA / entry["file"]).read_text())
            served[body["path"]] = body
    server = FakeIndicatorApi(served, api_key=SOURCE_KEY).start()
    yield server
    server.stop()


def api_path(entry: str) -> str:
    return str(json.loads((DATA / CORPUS[entry]["file"]).read_text())["path"])


def config_of(entry: str, source: dict[str, Any], base_url: str, **generator: Any) -> WrapperConfig:
    indicator = CORPUS[entry]["indicator"]
    return WrapperConfig.model_validate(
        {
            "wrapper": "team-a/indicator",
            "resourceId": "uid-1",
            "generation": 1,
            "indicator": {
                key: indicator[key] for key in ("name", "unit", "description") if indicator.get(key)
            },
            "source": {**source, **({"notes": indicator["notes"]} if indicator.get("notes") else {})},
            "generator": {
                "type": "gemini",
                "model": MODEL,
                "baseUrl": base_url,
                "maxAttempts": 3,
                **generator,
            },
            "codeConfigMap": "indicator-code",
            "promptsConfigMap": "indicator-prompts",
        }
    )


def csv_config(base_url: str, entry: str = "utility-monthly", **generator: Any) -> WrapperConfig:
    return config_of(entry, {"type": "CSV", "path": str(DATA / CORPUS[entry]["file"])}, base_url, **generator)


def api_config(api: FakeIndicatorApi, entry: str, base_url: str, **generator: Any) -> WrapperConfig:
    return config_of(entry, {"type": "API", "url": api.url + api_path(entry)}, base_url, **generator)


ENV = {GEMINI_API_KEY_ENV: GEMINI_KEY, API_KEY_ENV: SOURCE_KEY}


def good_module(config: WrapperConfig) -> str:
    """A module that fits the source: the template generator's, as a model that got it right would write."""
    indicator = config.indicator
    request = TemplateRequest(
        indicator.name, indicator.description, indicator.unit, notes=config.source.notes
    )
    return generate(request, read_sample(config, ENV))


@dataclass
class Generation:
    report: GenerationReport
    stored: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)


def run(config: WrapperConfig, env: dict[str, str] | None = None) -> Generation:
    done = Generation(GenerationReport(outcome="failed", generator="gemini", attempts=0))

    def store(_: WrapperConfig, __: Any, code: str, sha256: str) -> None:
        done.stored[sha256] = code

    def keep(_: WrapperConfig, __: Any, data: dict[str, str]) -> None:
        done.prompts.clear()
        done.prompts.update(data)

    done.report = run_generation(
        config, ENV if env is None else env, store=store, keep_prompts=keep, sleep=done.waits.append
    )
    return done


# -- attempts and feedback -----------------------------------------------------------------------------------


def test_a_module_failing_lint_is_written_again_with_its_error_and_the_second_one_is_stored(
    gemini: FakeGemini,
) -> None:
    config = csv_config(gemini.url)
    good = good_module(config)
    lint_failing = good.replace(
        "from headwater_worker.wrapper import helpers",
        "import re\nfrom headwater_worker.wrapper import helpers",
    )
    gemini.script(answers.code(lint_failing), answers.code(good, after="It reads every row of the CSV."))

    done = run(config)

    assert done.report.outcome == "generated", done.report
    assert (done.report.generator, done.report.model, done.report.attempts) == ("gemini", MODEL, 2)
    assert done.report.prompt_version == PROMPT_VERSION
    assert list(done.stored.values()) == [good]
    assert done.report.tokens is not None
    assert (done.report.tokens.requests, done.report.tokens.total_tokens) == (2, 3000)
    first, second = gemini.generate_requests
    for request in (first, second):
        assert request.model == MODEL
        assert request.api_key == GEMINI_KEY
        assert "collect(since, source)" in request.system
        assert "`headwater_worker.wrapper.helpers`" in request.system, "the allow-list"
        assert '"Reading date", "Meter", "Consumption (kWh)"' in request.user_text, "the sample's header"
        assert "header row found at index 0" in request.user_text, "the structure the sampler found"
        assert "delimiter ';'" in request.user_text
        assert request.tools == [], "a file source has nothing to fetch"
    assert "Your previous answer" not in first.user_text
    assert "ruff F401: `re` imported but unused" in second.user_text
    assert lint_failing.strip() in second.user_text, "the previous module itself"
    events = [(entry.event, entry.message) for entry in done.report.log]
    assert [event for event, _ in events] == ["prompted", "validation_failed", "prompted", "generated"]
    assert PROMPT_VERSION in str(events[0][1])


def test_modules_that_keep_placeholders_fail_after_max_attempts_with_the_errors(gemini: FakeGemini) -> None:
    config = csv_config(gemini.url, maxAttempts=2)
    placeholder = good_module(config).replace(
        "def collect(since, source):", "def collect(since, source):  # TODO"
    )
    gemini.script(answers.code(placeholder), answers.code(placeholder))

    done = run(config)

    assert done.report.outcome == "failed"
    assert (done.report.reason, done.report.attempts) == ("ValidationFailed", 2)
    assert done.report.validation is not None
    assert any("placeholder 'TODO'" in error for error in done.report.validation.errors)
    assert not done.stored
    assert len(gemini.generate_requests) == 2
    assert done.report.tokens is not None
    assert done.report.tokens.requests == 2
    assert done.report.retryable is None, "a model that writes bad code is no reason to try later"


def test_an_answer_without_a_module_counts_as_an_attempt_and_the_next_request_says_so(
    gemini: FakeGemini,
) -> None:
    config = csv_config(gemini.url)
    gemini.script(answers.text("I cannot see the file, sorry."), answers.code(good_module(config)))

    done = run(config)

    assert (done.report.outcome, done.report.attempts) == ("generated", 2)
    assert "the answer held no Python module" in gemini.generate_requests[1].user_text


# -- function calling ------------------------------------------------------------------------------------


def test_on_an_api_source_the_model_fetches_page_two_through_the_source_then_answers(
    gemini: FakeGemini, api: FakeIndicatorApi
) -> None:
    entry = "api-results-next"
    config = api_config(api, entry, gemini.url)
    good = good_module(config)
    gemini.script(answers.function_call("fetch_url", url="?page=2"), answers.code(good))
    before = len(api.received(api_path(entry)))

    done = run(config)

    assert done.report.outcome == "generated", done.report
    assert done.report.log[0].message is not None
    assert "1 fetch," in done.report.log[0].message
    asked, answered = gemini.generate_requests
    assert asked.tools == answered.tools == ["fetch_url"]
    assert asked.tool_mode == answered.tool_mode == "AUTO"
    [fetched] = answered.function_responses
    assert fetched["name"] == "fetch_url"
    assert fetched["response"]["status"] == 200
    assert '?page=1", "results": [' in fetched["response"]["body"], "page 2 links back to page 1"
    assert answered.contents[1]["role"] == "model"
    assert "functionCall" in answered.contents[1]["parts"][0]
    pages = [request.query.get("page") for request in api.received(api_path(entry))[before:]]
    assert pages[-1] == "2", "the fetch went to the source, after the sample's pages"
    requests = api.received(api_path(entry))
    assert {request.headers.get("x-api-key") for request in requests} == {SOURCE_KEY}
    for request in gemini.generate_requests:
        assert SOURCE_KEY not in json.dumps(request.body)
    assert any(key.endswith("-fetched.md") for key in done.prompts)


def test_fetches_are_bounded_cut_short_kept_on_the_source_host_and_then_an_answer_is_forced(
    gemini: FakeGemini, api: FakeIndicatorApi
) -> None:
    config = api_config(api, "api-results-next", gemini.url, maxAttempts=1)
    good = good_module(config)
    gemini.script(
        answers.function_call("fetch_url", url="http://127.0.0.1:9/elsewhere"),
        *[answers.function_call("fetch_url", url="?page=2") for _ in range(MAX_TOOL_CALLS - 1)],
        answers.code(good),
    )

    done = run(config)

    assert done.report.outcome == "generated", done.report
    requests = gemini.generate_requests
    assert len(requests) == MAX_TOOL_CALLS + 1
    assert [request.tool_mode for request in requests] == ["AUTO"] * MAX_TOOL_CALLS + ["NONE"]
    responses = requests[-1].function_responses
    assert len(responses) == MAX_TOOL_CALLS
    assert responses[0]["response"]["error"].startswith("HostRefused")
    page = responses[1]["response"]
    assert len(page["body"]) == TOOL_ANSWER_CHARS
    assert page["truncated"].startswith(f"the first {TOOL_ANSWER_CHARS} of ")


def test_no_secret_of_the_source_reaches_gemini_or_the_prompts(
    gemini: FakeGemini, api: FakeIndicatorApi
) -> None:
    entry = "api-results-next"
    records = json.loads((DATA / CORPUS[entry]["file"]).read_text())["records"]
    config = api_config(api, entry, gemini.url)
    good = good_module(config)
    # An API that echoes its caller's key into a record: the sample holds it, the prompt must not.
    with api.lock:
        api.apis[api_path(entry)]["records"].insert(0, {**records[0], "id": 999, "issued_to": SOURCE_KEY})
    gemini.script(answers.function_call("fetch_url", url="?page=1"), answers.code(good))

    done = run(config)

    assert done.report.outcome == "generated", done.report
    sent = json.dumps([request.body for request in gemini.generate_requests])
    assert "issued_to" in sent
    assert SOURCE_KEY not in sent
    assert GEMINI_KEY not in sent
    kept = json.dumps(done.prompts)
    assert "issued_to" in kept
    assert SOURCE_KEY not in kept
    assert GEMINI_KEY not in kept
    assert SOURCE_KEY not in done.report.model_dump_json()


# -- what Gemini itself does ---------------------------------------------------------------------------------


def test_a_429_is_retried_after_its_retry_after_then_the_answer_is_used(gemini: FakeGemini) -> None:
    config = csv_config(gemini.url)
    gemini.script(
        answers.quota_exhausted(retry_after="7"),
        answers.quota_exhausted(retry_after=None, retry_delay="3s"),
        answers.unavailable(),
        answers.code(good_module(config)),
    )

    done = run(config)

    assert done.report.outcome == "generated", done.report
    assert done.waits == [7.0, 3.0, 8.0], "Retry-After, then RetryInfo, then the backoff's third step"
    assert done.report.attempts == 1
    assert done.report.tokens is not None
    assert done.report.tokens.requests == 1


def test_quota_exhausted_beyond_the_retries_is_a_failure_worth_trying_later(gemini: FakeGemini) -> None:
    gemini.script(*[answers.quota_exhausted(retry_after="0") for _ in range(5)])

    done = run(csv_config(gemini.url))

    assert done.report.outcome == "failed"
    assert done.report.reason == "GeminiQuotaExhausted"
    assert done.report.retryable is True
    assert done.report.message is not None
    assert "RESOURCE_EXHAUSTED" in done.report.message
    assert len(gemini.generate_requests) == 5
    assert command.generation_exit_status(done.report) == EXIT_TRY_LATER


@pytest.mark.parametrize(
    ("reply", "key"),
    [(answers.permission_denied(), GEMINI_KEY), (None, "not-the-key")],
    ids=["403-permission-denied", "400-api-key-invalid"],
)
def test_a_refused_key_fails_at_once_without_a_retry(
    gemini: FakeGemini, reply: Reply | None, key: str
) -> None:
    if reply is not None:
        gemini.script(reply)

    done = run(csv_config(gemini.url), {GEMINI_API_KEY_ENV: key})

    assert done.report.outcome == "failed"
    assert done.report.reason == "GeminiKeyRejected"
    assert done.report.retryable is None
    assert len(gemini.requests) == 1, "no retry storm"
    assert done.waits == []
    assert done.report.message is not None
    assert key not in done.report.message
    assert command.generation_exit_status(done.report) == 1


@pytest.mark.parametrize(
    "reply", [answers.prompt_blocked(), answers.answer_blocked()], ids=["prompt", "answer"]
)
def test_a_safety_block_is_a_clear_error(gemini: FakeGemini, reply: Reply) -> None:
    gemini.script(reply)

    done = run(csv_config(gemini.url))

    assert done.report.outcome == "failed"
    assert done.report.reason == "GeminiBlocked"
    assert done.report.message is not None
    assert "SAFETY" in done.report.message
    assert len(gemini.generate_requests) == 1
    assert any("SAFETY" in text for text in done.prompts.values()), "the prompts show what was blocked"


def test_with_fallback_an_overloaded_gemini_gives_way_to_the_template_generator(gemini: FakeGemini) -> None:
    gemini.script(*[answers.unavailable() for _ in range(5)])

    done = run(csv_config(gemini.url, fallback="template"))

    assert done.report.outcome == "generated", done.report
    assert (done.report.generator, done.report.model) == ("template", None)
    [fallback] = [entry for entry in done.report.log if entry.event == "fallback"]
    assert fallback.message is not None
    assert fallback.message.startswith("GeminiUnavailable: Gemini did not answer after 5 requests")
    assert "template generator" in fallback.message


def test_with_fallback_an_unreachable_gemini_gives_way_to_the_template_generator() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = run(csv_config(f"http://127.0.0.1:{port}", fallback="template"))

    assert done.report.outcome == "generated", done.report
    assert done.report.generator == "template"
    assert any(
        entry.event == "fallback" and "GeminiUnreachable" in str(entry.message) for entry in done.report.log
    )
    assert len(done.waits) == 4


def test_without_fallback_an_unreachable_gemini_is_retryable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = run(csv_config(f"http://127.0.0.1:{port}"))

    assert (done.report.outcome, done.report.reason, done.report.retryable) == (
        "failed",
        "GeminiUnreachable",
        True,
    )


# -- untrusted answers -------------------------------------------------------------------------------------


class Listener:
    """A TCP port that records whoever connects to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()


def test_modules_reaching_for_os_files_or_sockets_are_refused_at_validation_and_never_run(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    config = csv_config(gemini.url)
    marker = tmp_path / "ran"
    listener = Listener()
    escape = {
        "os": f"import os\n\n\ndef collect(since, source):\n    os.system('touch {marker}')\n    yield 1\n",
        "open": f"def collect(since, source):\n    open('{marker}', 'w').write('x')\n    yield from ()\n",
        "socket": (
            "import socket\n\n\ndef collect(since, source):\n"
            f"    socket.create_connection(('127.0.0.1', {listener.port}))\n    yield from ()\n"
        ),
    }
    gemini.script(*(answers.code(module) for module in escape.values()))
    try:
        done = run(config)
    finally:
        listener.close()

    assert done.report.outcome == "failed"
    _, after_os, after_open = gemini.generate_requests
    assert "import of 'os' is not allowed" in after_os.user_text
    assert "'open' is not allowed" in after_open.user_text
    assert done.report.validation is not None
    assert any("import of 'socket' is not allowed" in error for error in done.report.validation.errors)
    assert not marker.exists(), "no module ran"
    assert listener.connections == 0, "no module ran"


# -- the generator Job's command -----------------------------------------------------------------------------


def test_the_generate_command_exits_75_for_a_gemini_to_try_later_and_reports_why(
    gemini: FakeGemini, tmp_path: Path
) -> None:
    gemini.script(*[answers.quota_exhausted(retry_after="0") for _ in range(5)])
    config = csv_config(gemini.url)
    termination = tmp_path / "termination-log"
    env = {
        CONFIG_ENV: config.to_env(),
        GEMINI_API_KEY_ENV: GEMINI_KEY,
        "HEADWATER_TERMINATION_LOG": str(termination),
    }

    status = command.run(command_arguments(), env)

    assert status == EXIT_TRY_LATER
    report = json.loads(termination.read_text())
    assert (report["reason"], report["retryable"]) == ("GeminiQuotaExhausted", True)
    assert GEMINI_KEY not in termination.read_text()


def command_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["generate"])
