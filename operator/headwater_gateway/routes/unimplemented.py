"""The seeds' routes the gateway does not serve yet: each answers 501 with a problem naming what is missing,
so that a client of that seed learns it at once instead of from a 404."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..problems import ProblemError

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Path prefix → what it is, by seed.
PENDING = {
    "/resources": "the Resource Service API of seed 000 (resources, wrappers, their files and data points)",
    "/health": "the Resource Service API of seed 000 (its health check)",
    "/v1": "the IRV AutoPackaging API of seed 003 (boundaries, processors, packages, jobs)",
    "/exports": "the Data Export API of seed 004 (exports over ExportJobs)",
}


def unimplemented_routes() -> APIRouter:
    router = APIRouter()

    async def not_implemented(request: Request) -> None:
        prefix = next(p for p in PENDING if request.url.path == p or request.url.path.startswith(p + "/"))
        raise ProblemError(
            501,
            f"{request.method} {request.url.path} is not implemented yet: the gateway does not serve "
            f"{PENDING[prefix]}",
            kind="not-implemented",
        )

    for prefix in PENDING:
        for path in (prefix, prefix + "/{rest:path}"):
            router.add_api_route(path, not_implemented, methods=METHODS, include_in_schema=False)
    return router
