"""Seed 002, the compute service protocol: Headwater as a service of a Core engine.

Each built-in service is served at its own base URL, `/services/{slug}`, as each seed service was: `GET
/status`, `POST /compute`, `GET /tasks/{task_id}/status`. The bare root serves the same routes for the
default service, if one is configured. Either may be prefixed with `/namespaces/{namespace}` to act in
another namespace than the configured one.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name this module's
# closures (the service and namespace dependencies), so they must be evaluated where they are written.
import contextlib
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request
from headwater_operator.api.common import DNS_LABEL_PATTERN
from headwater_worker.compute.protocol import SERVICE_AVAILABLE, TASK_QUEUED, ServiceTask, StatusAnswer

from ..auth import Caller, Kube, Settings
from ..computetask import TaskObjects, owner_reference, same_task, task_name, task_objects
from ..identity import Identity
from ..kube import COMPUTETASKS, SECRETS, KubeApi, RefusalError, UnreachableError
from ..problems import ProblemError, documented

# -- what a route acts on: the service and the namespace, from its path or the settings ---------------


def default_namespace(settings: Settings) -> str:
    return settings.namespace


def namespace_in_path(
    namespace: Annotated[
        str, Path(pattern=DNS_LABEL_PATTERN, max_length=63, description="Namespace to act in.")
    ],
) -> str:
    return namespace


def default_service(request: Request) -> str:
    service: str | None = request.app.state.default_service
    if service is None:
        raise ProblemError(
            404,
            "no default service is configured (HEADWATER_GATEWAY_DEFAULT_SERVICE): "
            "use /services/{slug}/ for one of the built-in services",
            kind="unknown-service",
        )
    return service


def service_in_path(
    request: Request, slug: Annotated[str, Path(description="Slug of a built-in compute service.")]
) -> str:
    services: tuple[str, ...] = request.app.state.services
    if slug not in services:
        known = ", ".join(services) or "none"
        raise ProblemError(
            404, f"no built-in service is named {slug!r}; served: {known}", kind="unknown-service"
        )
    return slug


# -- what the routes do -------------------------------------------------------------------------------


async def find_task(
    kube: KubeApi, namespace: str, task_id: UUID, service: str, caller: Identity
) -> dict[str, Any]:
    """The ComputeTask of a task id of this service; a 404 problem when there is none."""
    try:
        found = await kube.get(COMPUTETASKS, namespace, task_name(task_id), caller)
    except RefusalError as refusal:
        if refusal.status != 404:
            raise
        found = None
    if found is None or (found.get("spec") or {}).get("service", {}).get("name") != service:
        raise ProblemError(
            404, f"service {service!r} has no task {task_id} in namespace {namespace!r}", kind="unknown-task"
        )
    return found


async def queue_task(kube: KubeApi, namespace: str, wanted: TaskObjects, caller: Identity) -> None:
    """Create the task's Secret, then its ComputeTask, then make the ComputeTask own the Secret. A task id
    posted again is accepted when it is the same task, refused (409) when it is another."""
    try:
        existing = await kube.get(COMPUTETASKS, namespace, wanted.name, caller)
    except RefusalError as refusal:
        if refusal.status != 404:
            raise
    else:
        return _accept_duplicate(existing, wanted)
    if wanted.credentials is not None:
        await _put_credentials(kube, namespace, wanted.credentials, caller)
    try:
        created = await kube.create(COMPUTETASKS, namespace, wanted.compute_task, caller)
    except RefusalError as refusal:
        if refusal.status != 409:
            await _forget_credentials(kube, namespace, wanted, caller)
            raise
        # Posted twice at once: the other post created it.
        created = await kube.get(COMPUTETASKS, namespace, wanted.name, caller)
        _accept_duplicate(created, wanted)
    if wanted.credentials is not None:
        await kube.patch(
            SECRETS,
            namespace,
            wanted.credentials["metadata"]["name"],
            {"metadata": {"ownerReferences": [owner_reference(created)]}},
            caller,
        )


def _accept_duplicate(existing: dict[str, Any], wanted: TaskObjects) -> None:
    if not same_task(existing, wanted):
        task_id = wanted.compute_task["spec"]["taskId"]
        raise ProblemError(
            409,
            f"task {task_id} exists already with different content (ComputeTask {wanted.name!r}): "
            "a task runs once; post a new task id",
            kind="conflict",
        )


async def _put_credentials(kube: KubeApi, namespace: str, secret: dict[str, Any], caller: Identity) -> None:
    try:
        await kube.create(SECRETS, namespace, secret, caller)
    except RefusalError as refusal:
        if refusal.status != 409:
            raise
        # Left by an earlier post that failed before its ComputeTask existed: this post's key pair wins.
        await kube.replace(SECRETS, namespace, secret, caller)


async def _forget_credentials(kube: KubeApi, namespace: str, wanted: TaskObjects, caller: Identity) -> None:
    if wanted.credentials is not None:
        # Best effort: the refusal that brought us here is the answer, whatever this one says.
        with contextlib.suppress(RefusalError, UnreachableError):
            await kube.delete(SECRETS, namespace, wanted.credentials["metadata"]["name"], caller)


URL_MODE_UPDATES = (
    "PATCH /tasks/{task_id} is not implemented yet: a `url`-mode ComputeTask receives its service's "
    "TaskUpdates in its own Job (docs/computetask.md)"
)


def compute_routes(service: Callable[..., str], namespace: Callable[..., str]) -> APIRouter:
    """The protocol's routes for the service and namespace these dependencies give."""
    router = APIRouter(tags=["compute (seed 002)"])
    Service = Annotated[str, Depends(service)]  # noqa: N806 - a type alias
    Namespace = Annotated[str, Depends(namespace)]  # noqa: N806 - a type alias

    @router.get(
        "/status",
        summary="Whether the service is available (no token needed: it reveals nothing)",
        responses=documented(404, 422),
    )
    async def service_status(slug: Service, ns: Namespace) -> StatusAnswer:
        return SERVICE_AVAILABLE

    @router.post(
        "/compute",
        summary="Queue a task: creates a ComputeTask and answers at once",
        responses=documented(401, 403, 404, 409, 422, 502, 503),
    )
    async def compute(
        body: ServiceTask, slug: Service, ns: Namespace, caller: Caller, kube: Kube, settings: Settings
    ) -> StatusAnswer:
        wanted = task_objects(body, slug, ns, force_path_style=settings.s3_force_path_style)
        await queue_task(kube, ns, wanted, caller)
        return TASK_QUEUED

    @router.get(
        "/tasks/{task_id}/status",
        summary="The task's status, as its ComputeTask reports it",
        responses=documented(401, 403, 404, 422, 502, 503),
    )
    async def task_status(
        task_id: UUID, slug: Service, ns: Namespace, caller: Caller, kube: Kube
    ) -> StatusAnswer:
        found = await find_task(kube, ns, task_id, slug, caller)
        return StatusAnswer(status=(found.get("status") or {}).get("status") or "pending")

    @router.patch(
        "/tasks/{task_id}",
        summary="Not implemented yet: TaskUpdates of `url`-mode tasks",
        status_code=501,
        response_model=None,
        responses=documented(404, 422, 501),
    )
    async def task_update(task_id: UUID, slug: Service) -> None:
        raise ProblemError(501, URL_MODE_UPDATES, kind="not-implemented")

    return router
