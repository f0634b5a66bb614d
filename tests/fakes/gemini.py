"""A local stand-in for Gemini's REST API, scripted per test, for the real `google-genai` SDK to talk to.

It serves `POST /v1beta/models/{model}:generateContent` the way Gemini does: the request's `contents`
(user and model turns, `functionCall` parts and the `functionResponse` turns that answer them),
`systemInstruction`, `tools` and `toolConfig`; answers of `candidates` with `content.parts`,
`finishReason` and `usageMetadata`; a `promptFeedback.blockReason` for a blocked prompt; and errors as
`{"error": {"code", "message", "status", "details"}}`. A request without the expected API key in
`x-goog-api-key` gets Gemini's own `400 API_KEY_INVALID`.

A test scripts the answers in order (`script(code(...), function_call(...), quota_exhausted(), ...)`);
each request takes the next one, and one with nothing left to take is refused with a 400 that names it.
Every request is kept (`generate_requests`) for the test to assert on what the generator sent.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.apis import Answer, FakeApi, Json, Request

GENERATE_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")
API_KEY_HEADER = "x-goog-api-key"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an HTTP status, its JSON body and headers."""

    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)


def usage(prompt_tokens: int = 1200, output_tokens: int = 300) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def _candidate(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    return {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}


def text(answer: str, *, prompt_tokens: int = 1200, output_tokens: int = 300) -> Reply:
    """A model turn of text."""
    body = {
        "candidates": [_candidate([{"text": answer}])],
        "usageMetadata": usage(prompt_tokens, output_tokens),
    }
    return Reply(200, body)


def code(module: str, *, before: str = "Here is the collector module.", after: str = "") -> Reply:
    """A model turn with `module` in a fenced Python block, prose around it, as models answer."""
    fenced = f"{before}\n\n```python\n{textwrap.dedent(module).strip()}\n```\n\n{after}".strip()
    return text(fenced)


def function_call(name: str, **args: Any) -> Reply:
    """A model turn that calls one of the declared functions."""
    part = {"functionCall": {"name": name, "args": args}}
    return Reply(200, {"candidates": [_candidate([part])], "usageMetadata": usage(900, 20)})


def prompt_blocked(reason: str = "SAFETY") -> Reply:
    """The prompt refused by the safety settings: no candidate, a block reason."""
    feedback = {
        "blockReason": reason,
        "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
    }
    return Reply(200, {"promptFeedback": feedback, "usageMetadata": {"promptTokenCount": 800}})


def answer_blocked() -> Reply:
    """A candidate stopped by the safety settings: `finishReason` SAFETY and no content."""
    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
    candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": [rating]}
    return Reply(200, {"candidates": [candidate], "usageMetadata": usage(800, 0)})


def error(
    code: int,
    status: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    return Reply(code, body, headers or {})


def quota_exhausted(retry_after: str | None = "1", retry_delay: str | None = None) -> Reply:
    """429 RESOURCE_EXHAUSTED, with a `Retry-After` header and/or the `RetryInfo` detail Gemini sends."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}],
        }
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        details=details,
        headers={"Retry-After": retry_after} if retry_after is not None else None,
    )


def unavailable() -> Reply:
    return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def permission_denied() -> Reply:
    return error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")


def api_key_invalid() -> Reply:
    detail = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[detail])


@dataclass(frozen=True)
class GeminiRequest:
    """A `generateContent` request as the fake received it."""

    model: str
    api_key: str | None
    body: dict[str, Any]

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(self.body.get("contents") or [])

    @property
    def system(self) -> str:
        parts = (self.body.get("systemInstruction") or {}).get("parts") or []
        return "\n".join(str(part.get("text", "")) for part in parts)

    @property
    def user_text(self) -> str:
        """Every text the user turns carry, in order."""
        return "\n".join(
            str(part["text"])
            for content in self.contents
            if content.get("role", "user") == "user"
            for part in content.get("parts") or []
            if "text" in part
        )

    @property
    def prompt(self) -> str:
        """All that was sent as text: the system instruction, the user turns, the function responses."""
        responses = [json.dumps(response) for response in self.function_responses]
        return "\n".join([self.system, self.user_text, *responses])

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        return [
            part["functionResponse"]
            for content in self.contents
            for part in content.get("parts") or []
            if "functionResponse" in part
        ]

    @property
    def tools(self) -> list[str]:
        return [
            str(declaration["name"])
            for tool in self.body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]

    @property
    def tool_mode(self) -> str | None:
        config = (self.body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = config.get("mode")
        return str(mode) if mode is not None else None


Scripted = Reply | Callable[[GeminiRequest], Reply]


class FakeGemini(FakeApi):
    """Gemini's `generateContent`, answering each request with the next scripted reply."""

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.replies: deque[Scripted] = deque()

    def script(self, *replies: Scripted) -> None:
        with self.lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        with self.lock:
            self.replies.clear()
            self.requests.clear()

    @property
    def left(self) -> int:
        with self.lock:
            return len(self.replies)

    @property
    def generate_requests(self) -> list[GeminiRequest]:
        with self.lock:
            received = list(self.requests)
        found = []
        for request in received:
            matched = GENERATE_PATH.match(request.path)
            if matched and request.method == "POST":
                found.append(
                    GeminiRequest(matched["model"], request.headers.get(API_KEY_HEADER), request.json())
                )
        return found

    def answer(self, request: Request) -> Answer:
        matched = GENERATE_PATH.match(request.path)
        if request.method != "POST" or matched is None:
            return _reply(error(404, "NOT_FOUND", f"no method {request.method} {request.path}"))
        if request.headers.get(API_KEY_HEADER) != self.api_key:
            return _reply(api_key_invalid())
        with self.lock:
            scripted = self.replies.popleft() if self.replies else None
        if scripted is None:
            return _reply(error(400, "FAILED_PRECONDITION", "the fake Gemini has no answer scripted left"))
        received = GeminiRequest(matched["model"], request.headers.get(API_KEY_HEADER), request.json())
        return _reply(scripted(received) if callable(scripted) else scripted)


def _reply(reply: Reply) -> Answer:
    headers = {"Content-Type": "application/json", **reply.headers}
    return reply.status, headers, json.dumps(reply.body).encode()
