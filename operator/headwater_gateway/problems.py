"""Errors as RFC 9457 problem details (`application/problem+json`), whatever raised them.

Every answer but a success is a `Problem`: `type`, `title`, `status` and a one-line `detail`; a validation
error adds `errors`, naming each field at fault; a refusal of the API server adds what was asked (`verb`,
`resource`, `namespace`) and passes the server's own message as `detail`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .identity import NotImpersonableError
from .kube import RefusalError, UnreachableError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://headwater.dev/problems/"
logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One field of a request that is not valid."""

    field: str = Field(description="The field, dotted from the body's top (`task.data_in`), or a parameter.")
    location: str = Field(description="Where the field is: `body`, `path`, `query` or `header`.")
    message: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """An error answer, as RFC 9457 defines it, with Headwater's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What went wrong this time, in one line.")
    errors: list[FieldError] | None = Field(default=None, description="Validation errors, one per field.")
    verb: str | None = Field(default=None, description="API verb the Kubernetes API server refused.")
    resource: str | None = Field(default=None, description="Resource the refused verb was asked on.")
    namespace: str | None = Field(default=None, description="Namespace of the refused request.")


class ProblemError(Exception):
    """Raise to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=TYPE_BASE + kind if kind else "about:blank",
            title=HTTPStatus(status).phrase,
            status=status,
            detail=detail,
            **extensions,
        )
        self.headers = headers or {}


class InvalidFieldsError(ProblemError):
    """A request whose content does not fit what it maps to, each error naming its field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
        super().__init__(422, detail, kind="invalid-request", errors=list(errors))


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that may answer these problems."""
    content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {status: {"description": HTTPStatus(status).phrase, "content": content} for status in statuses}


def add_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put `Problem` (and what it refers to) into the schema's components, which `documented` refers to."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["Problem"] = schema
    return openapi


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def refusal_problem(refusal: RefusalError) -> ProblemError:
    """A refusal of the API server, told as the server said it; the gateway's own fault when the server did
    not accept the gateway's credentials."""
    if refusal.status == 401:
        return ProblemError(
            503,
            "the Kubernetes API server does not accept the gateway's own credentials",
            kind="gateway-auth",
        )
    if refusal.status >= 500:
        return ProblemError(502, f"the Kubernetes API server failed: {refusal.message}", kind="api-server")
    kinds = {403: "forbidden", 404: "not-found", 409: "conflict", 422: "invalid-request"}
    return ProblemError(
        refusal.status if refusal.status in HTTPStatus._value2member_map_ else 400,
        refusal.message,
        kind=kinds.get(refusal.status, "refused"),
        verb=refusal.verb,
        resource=refusal.resource.display,
        namespace=refusal.namespace or None,
    )


def _field_name(location: Sequence[str | int]) -> tuple[str, str]:
    where, *path = location or ("body",)
    return ".".join(str(part) for part in path) or str(where), str(where)


def validation_problem(error: RequestValidationError) -> InvalidFieldsError:
    return InvalidFieldsError(
        [
            FieldError(field=name, location=where, message=str(item.get("msg", "is not valid")))
            for item in error.errors()
            for name, where in [_field_name(item.get("loc", ()))]
        ]
    )


def install(app: FastAPI) -> None:
    """Answer every error of `app` with a problem."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return problem_response(error.problem, error.headers)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return problem_response(validation_problem(error).problem)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        problem = Problem(
            title=HTTPStatus(error.status_code).phrase, status=error.status_code, detail=str(error.detail)
        )
        return problem_response(problem, dict(error.headers or {}))

    async def on_refusal(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RefusalError)
        problem = refusal_problem(error)
        return problem_response(problem.problem)

    async def on_unreachable(request: Request, error: Exception) -> JSONResponse:
        return problem_response(ProblemError(503, str(error), kind="api-server").problem)

    async def on_not_impersonable(request: Request, error: Exception) -> JSONResponse:
        return problem_response(ProblemError(403, str(error), kind="not-impersonable").problem)

    async def on_anything(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error answering %s %s", request.method, request.url.path)
        return problem_response(ProblemError(500, "the gateway failed; its log tells why").problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RefusalError, on_refusal)
    app.add_exception_handler(UnreachableError, on_unreachable)
    app.add_exception_handler(NotImpersonableError, on_not_impersonable)
    app.add_exception_handler(Exception, on_anything)
