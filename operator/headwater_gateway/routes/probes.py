"""Probes and metrics: `/livez` (the process answers), `/readyz` (and the API server answers it),
`/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..auth import Kube
from ..problems import ProblemError, documented


class ProbeAnswer(BaseModel):
    status: str


def probe_routes() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/livez", summary="The gateway process answers")
    async def livez() -> ProbeAnswer:
        return ProbeAnswer(status="alive")

    @router.get(
        "/readyz", summary="The gateway can reach the Kubernetes API server", responses=documented(503)
    )
    async def readyz(kube: Kube) -> ProbeAnswer:
        if not await kube.ready():
            raise ProblemError(503, "the Kubernetes API server does not answer", kind="api-server")
        return ProbeAnswer(status="ready")

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
