"""The Gemini generator: a model writes the collector module, through the `google-genai` SDK and nothing else.

One attempt is one conversation: the system instruction (the collector contract) and the request (the
indicator, the sample, and on a retry the previous module with its errors). For an API source the model may
first call `fetch_url` to GET another page or endpoint of the source's host, through the same `source.get`
a collector has (same host only), at most `MAX_TOOL_CALLS` times with answers cut to `TOOL_ANSWER_CHARS`;
then it is asked for its answer with the tools switched off. The module is taken from the answer however it
was written (`answer.extract_code`), and validated by the caller as any other.

Failures of Gemini itself end the generation (`GeminiError`), each with its reason: 429 and 5xx are retried
with exponential backoff, honouring `Retry-After` (or the `RetryInfo` Gemini sends), and transport errors
too; what is still failing after that is `GeminiQuotaExhausted`, `GeminiUnavailable` or
`GeminiUnreachable`, which may pass later (`unavailable`). A refused key (`400 API_KEY_INVALID`, 401, 403)
is `GeminiKeyRejected` at once, a prompt or answer blocked by the safety settings `GeminiBlocked`, any
other refusal `GeminiRequestRefused`: no retry would change those.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors, types

from ..logs import fields, one_line, redact
from ..retry_after import retry_after_seconds
from .answer import extract_code
from .config import TokenUsage
from .prompt import PROMPT_VERSION, Indicator, PreviousAttempt, request_text, system_instruction
from .sample import Sample
from .source import HttpSource, SourceError
from .template import GenerationError
from .transcript import SaveTranscript, Transcript

log = logging.getLogger(__name__)

MAX_TOOL_CALLS = 15
TOOL_ANSWER_CHARS = 2500
REQUEST_RETRIES = 4
BACKOFF_SECONDS = 2.0
MAX_WAIT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 180
API_VERSION = "v1beta"
TEMPERATURE = 0.2
# The SDK sends through httpx2 (google-genai 3 depends on it) and may through httpx: a connection refused or
# a timeout is either's transport error.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)
# Finish reasons of a candidate the safety settings (or their kin) stopped.
BLOCKING_FINISH_REASONS = frozenset({"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION"})

FETCH_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="fetch_url",
            description="GET a URL of the source's own host, as the collector's source.get would (the API "
            "key is added), and see its status, headers and the start of its body. A relative URL resolves "
            "against the source's URL.",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={
                    "url": types.Schema(
                        type=types.Type.STRING,
                        description="The URL to GET, with its query string: another page or endpoint.",
                    )
                },
                required=["url"],
            ),
        )
    ]
)


class GeminiError(Exception):
    """Gemini gave no answer; `unavailable` when it may later (unreachable, overloaded, out of quota)."""

    def __init__(self, reason: str, message: str, *, unavailable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.unavailable = unavailable


# -- what an error of the API means --------------------------------------------------------------------------


def _error_details(body: Any) -> list[Mapping[str, Any]]:
    error = body.get("error", body) if isinstance(body, Mapping) else {}
    details = error.get("details") if isinstance(error, Mapping) else None
    return [detail for detail in details or () if isinstance(detail, Mapping)]


def failure_reason(code: int, status: str | None, body: Any) -> tuple[str, bool]:
    """The reason of an API error, and whether it is worth retrying."""
    if code == 429:
        return "GeminiQuotaExhausted", True
    if code >= 500:
        return "GeminiUnavailable", True
    key_problem = any(str(detail.get("reason", "")).startswith("API_KEY") for detail in _error_details(body))
    if key_problem or code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return "GeminiKeyRejected", False
    return "GeminiRequestRefused", False


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_wait(headers: Mapping[str, str] | None, body: Any) -> float | None:
    """How long the API asks to wait: its `Retry-After` header, else the `retryDelay` of its `RetryInfo`."""
    waited = retry_after_seconds((headers or {}).get("retry-after"))
    if waited is not None:
        return waited
    for detail in _error_details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            found = _DURATION.match(str(detail.get("retryDelay", "")))
            if found:
                return float(found.group(1))
    return None


def describe_error(error: errors.APIError) -> str:
    return one_line(
        redact(f"HTTP {error.code} {error.status or ''}: {error.message or ''}".replace(" :", ":"))
    )


def blocked_reason(response: types.GenerateContentResponse) -> str | None:
    """Why the safety settings stopped the prompt or the answer, or None."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        return f"Gemini blocked the prompt (blockReason {reason}{detail})"
    for candidate in response.candidates or ():
        finish = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        if finish in BLOCKING_FINISH_REASONS:
            return f"Gemini stopped its answer (finishReason {finish})"
    return None


# -- one generation ------------------------------------------------------------------------------------------


@dataclass
class Usage:
    """Tokens counted over a generation's requests."""

    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def add(self, metadata: types.GenerateContentResponseUsageMetadata | None) -> None:
        self.requests += 1
        if metadata is None:
            return
        self.prompt_tokens += metadata.prompt_token_count or 0
        output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
        self.output_tokens += output
        self.total_tokens += metadata.total_token_count or 0

    def report(self) -> TokenUsage:
        return TokenUsage(
            requests=self.requests,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
        )


@dataclass
class GeminiWriter:
    """Writes one module per call, as `generate.generate_module` asks: `(sample, feedback, previous)`."""

    model: str
    api_key: str
    indicator: Indicator
    base_url: str | None = None
    fetch: HttpSource | None = None
    earlier_failure: str | None = None
    save: SaveTranscript | None = None
    note: Callable[[str, str], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    retries: int = REQUEST_RETRIES
    usage: Usage = field(default_factory=Usage)
    attempt: int = 0
    transcript: Transcript = field(init=False)
    client: genai.Client = field(init=False)

    def __post_init__(self) -> None:
        redact.add(self.api_key)
        options = types.HttpOptions(
            base_url=self.base_url, api_version=API_VERSION, timeout=REQUEST_TIMEOUT_SECONDS * 1000
        )
        self.client = genai.Client(api_key=self.api_key, vertexai=False, http_options=options)
        heading = f"# Generation of {self.indicator.name!r} by {self.model}, prompt {PROMPT_VERSION}"
        self.transcript = Transcript(heading)
        self.system = system_instruction(
            tool_calls=MAX_TOOL_CALLS if self.fetch is not None else 0, tool_chars=TOOL_ANSWER_CHARS
        )
        self.transcript.add("system", self.system)

    def close(self) -> None:
        self.client.close()

    def __call__(self, sample: Sample, feedback: Sequence[str], previous: PreviousAttempt | None) -> str:
        self.attempt += 1
        used_before, calls = self.usage.total_tokens, 0
        try:
            code, calls = self._converse(sample, previous)
        finally:
            if self.note is not None:
                tokens = self.usage.total_tokens - used_before
                self.note(
                    "prompted",
                    f"attempt {self.attempt}: {self.model}, prompt {PROMPT_VERSION}, "
                    f"{calls} {'fetch' if calls == 1 else 'fetches'}, "
                    f"{tokens} tokens",
                )
            self._save()
        return code

    def _converse(self, sample: Sample, previous: PreviousAttempt | None) -> tuple[str, int]:
        request = redact(
            request_text(self.indicator, sample, previous=previous, earlier_failure=self.earlier_failure)
        )
        self.transcript.add(f"attempt {self.attempt} request", request)
        contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text=request)])]
        calls = 0
        while True:
            tools_left = self.fetch is not None and calls < MAX_TOOL_CALLS
            response = self._generate(contents, tools_left)
            blocked = blocked_reason(response)
            if blocked is not None:
                self.transcript.add(f"attempt {self.attempt} answer", blocked)
                raise GeminiError("GeminiBlocked", blocked, unavailable=False)
            candidate = response.candidates[0] if response.candidates else None
            content = candidate.content if candidate is not None else None
            parts = list(content.parts or ()) if content is not None else []
            wanted = [part.function_call for part in parts if part.function_call is not None]
            if wanted and tools_left and content is not None:
                contents.append(content)
                replies = []
                for call in wanted:
                    calls += 1
                    result = (
                        self._fetch(call)
                        if calls <= MAX_TOOL_CALLS
                        else {"error": "no fetch left: answer now"}
                    )
                    replies.append(
                        types.Part(
                            function_response=types.FunctionResponse(
                                id=call.id, name=call.name, response=result
                            )
                        )
                    )
                self.transcript.add(
                    f"attempt {self.attempt} answer",
                    "\n".join(f"{call.name}({call.args})" for call in wanted),
                )
                self.transcript.add(
                    f"attempt {self.attempt} fetched",
                    "\n\n".join(
                        str(reply.function_response.response) for reply in replies if reply.function_response
                    ),
                )
                contents.append(types.Content(role="user", parts=replies))
                continue
            text = "".join(part.text for part in parts if part.text and not part.thought)
            self.transcript.add(f"attempt {self.attempt} answer", text or "(no text)")
            code = extract_code(text)
            if code is None:
                finish = getattr(candidate.finish_reason, "value", None) if candidate is not None else None
                why = f" (finishReason {finish})" if finish not in (None, "STOP") else ""
                raise GenerationError("NoCode", f"the answer held no Python module{why}")
            return code, calls

    def _generate(self, contents: list[types.Content], tools_left: bool) -> types.GenerateContentResponse:
        """One `generateContent`, retried while Gemini is overloaded, out of quota or out of reach."""
        tools = self.fetch is not None
        mode = types.FunctionCallingConfigMode.AUTO if tools_left else types.FunctionCallingConfigMode.NONE
        config = types.GenerateContentConfig(
            system_instruction=self.system,
            temperature=TEMPERATURE,
            tools=[FETCH_TOOL] if tools else None,
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=mode))
            if tools
            else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        delay = BACKOFF_SECONDS
        for attempt in range(self.retries + 1):
            try:
                response = self.client.models.generate_content(
                    model=self.model, contents=contents, config=config
                )
            except errors.APIError as error:
                reason, transient = failure_reason(error.code, error.status, error.details)
                problem = describe_error(error)
                if not transient:
                    raise GeminiError(
                        reason, f"Gemini refused the request: {problem}", unavailable=False
                    ) from None
                headers = getattr(error.response, "headers", None)
                wait = retry_wait(headers, error.details)
            except TRANSPORT_ERRORS as error:
                reason, problem, wait = (
                    "GeminiUnreachable",
                    one_line(redact(f"{type(error).__name__}: {error}")),
                    None,
                )
            else:
                self.usage.add(response.usage_metadata)
                return response
            if attempt == self.retries:
                break
            pause = min(wait if wait is not None else delay, MAX_WAIT_SECONDS)
            log.warning(
                "Gemini did not answer, retrying", extra=fields(reason=reason, error=problem, wait=pause)
            )
            self.sleep(pause)
            delay = min(delay * 2, MAX_WAIT_SECONDS)
        raise GeminiError(
            reason, f"Gemini did not answer after {self.retries + 1} requests: {problem}", unavailable=True
        )

    def _fetch(self, call: types.FunctionCall) -> dict[str, Any]:
        """`fetch_url` for the model: the same `source.get` (same host only), the body cut short."""
        url = str((call.args or {}).get("url") or "")
        if call.name != "fetch_url" or not url or self.fetch is None:
            return {"error": f"unknown function {call.name!r}: the one tool is fetch_url(url)"}
        try:
            response = self.fetch.get(url)
        except SourceError as failure:
            return {"error": redact(f"{failure.reason}: {failure.message}")}
        body = response.text
        answer: dict[str, Any] = {
            "status": response.status_code,
            "url": redact(response.url),
            "contentType": response.headers.get("content-type", ""),
            "body": redact(body[:TOOL_ANSWER_CHARS]),
        }
        if response.headers.get("link"):
            answer["link"] = redact(response.headers["link"])
        if len(body) > TOOL_ANSWER_CHARS:
            answer["truncated"] = f"the first {TOOL_ANSWER_CHARS} of {len(body)} characters"
        return answer

    def _save(self) -> None:
        if self.save is not None:
            self.save(self.transcript.data())
