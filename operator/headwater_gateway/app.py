"""The gateway's FastAPI application: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from headwater_operator import __version__
from headwater_worker.compute.services.registry import discover

from . import problems
from .kube import KubeApi, load_configuration
from .observability import Observed
from .routes.compute import (
    compute_routes,
    default_namespace,
    default_service,
    namespace_in_path,
    service_in_path,
)
from .routes.probes import probe_routes
from .routes.unimplemented import unimplemented_routes
from .settings import GatewaySettings

DESCRIPTION = """The seeds' REST APIs over Headwater's custom resources. Every request carries a Kubernetes
bearer token; the gateway acts as that user, so Kubernetes RBAC decides what it may do. Errors are RFC 9457
problem details. Routes of the seeds not served yet answer 501."""


def create_app(settings: GatewaySettings) -> FastAPI:
    """The application; it connects to the API server when it starts (its lifespan)."""
    services = tuple(sorted(discover().services))
    if settings.default_service is not None and settings.default_service not in services:
        raise ValueError(
            f"HEADWATER_GATEWAY_DEFAULT_SERVICE names {settings.default_service!r}, which is not a built-in "
            f"service: {', '.join(services) or 'none is installed'}"
        )
    config = load_configuration(settings.kubeconfig)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Made on the server's event loop, which its connections then belong to.
        app.state.kube = KubeApi(config, settings.impersonated_extras, settings.api_timeout_seconds)
        try:
            yield
        finally:
            await app.state.kube.aclose()

    app = FastAPI(title="Headwater gateway", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.services = services
    app.state.default_service = settings.default_service
    problems.install(app)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.add_schemas(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Observed)
    app.include_router(probe_routes())
    for prefix, service, namespace in (
        ("", default_service, default_namespace),
        ("/services/{slug}", service_in_path, default_namespace),
        ("/namespaces/{namespace}", default_service, namespace_in_path),
        ("/namespaces/{namespace}/services/{slug}", service_in_path, namespace_in_path),
    ):
        app.include_router(compute_routes(service, namespace), prefix=prefix)
    app.include_router(unimplemented_routes())
    return app
