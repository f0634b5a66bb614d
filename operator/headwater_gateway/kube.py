"""The gateway's Kubernetes API access: one `httpx.AsyncClient` holding the gateway's own credentials.

The connection settings come from the `kubernetes` package's configuration loading, as the operator's do (in
a pod the ServiceAccount's, elsewhere a kubeconfig). The gateway's own rights serve only to review tokens;
every other request carries impersonation headers and acts as the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes
from headwater_operator.kube import ssl_context
from kubernetes.client import Configuration
from kubernetes.client.rest import should_bypass_proxies

from .identity import Identity, impersonation_headers

USER_AGENT = "headwater-gateway"
Json = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """A namespaced kind of the API, by its group, version and plural."""

    group: str
    version: str
    plural: str

    @property
    def display(self) -> str:
        """As the API server names it in its messages: `computetasks.headwater.dev`, `secrets`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        collection = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{collection}/{name}" if name else collection


SECRETS = Resource("", "v1", "secrets")
COMPUTETASKS = Resource("headwater.dev", "v1alpha1", "computetasks")


class RefusalError(Exception):
    """The API server refused a request: its status and message, and what was asked (verb, resource)."""

    def __init__(self, status: int, message: str, verb: str, resource: Resource, namespace: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.verb = verb
        self.resource = resource
        self.namespace = namespace


class UnreachableError(Exception):
    """The API server did not answer."""


def load_configuration(kubeconfig: Path | None) -> Configuration:
    """The named kubeconfig; else in a pod its ServiceAccount, elsewhere the current kubeconfig context."""
    config = Configuration()
    if kubeconfig is not None:
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
        return config
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=config)
    return config


def _message(body: bytes) -> str:
    """The message of the Status object the API server sends with a refusal, else the body itself."""
    text = body.decode(errors="replace")
    try:
        return str(json.loads(text).get("message") or text)[:1000]
    except (ValueError, AttributeError):
        return text[:1000]


class KubeApi:
    """Requests to the API server, each either as the gateway itself or as an impersonated user."""

    def __init__(self, config: Configuration, forwarded_extras: tuple[str, ...], timeout: float) -> None:
        self.config = config
        self.forwarded_extras = forwarded_extras
        bypassed = should_bypass_proxies(config.host, config.no_proxy or "")
        self.client = httpx.AsyncClient(
            base_url=config.host.rstrip("/"),
            verify=ssl_context(config),
            proxy=config.proxy if config.proxy and not bypassed else None,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _own_credentials(self) -> dict[str, str]:
        # Asked at every request: a pod's projected token is rotated, and the loader re-reads it here.
        token = self.config.get_api_key_with_prefix("BearerToken", alias="authorization")
        return {"Authorization": token} if token else {}

    async def _send(
        self,
        method: str,
        path: str,
        *,
        acting_as: Identity | None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        refusal: tuple[str, Resource, str],
    ) -> Json:
        """The answer's JSON; `refusal` (verb, resource, namespace) says what was asked, should it fail."""
        headers = list(self._own_credentials().items())
        if acting_as is not None:
            headers += impersonation_headers(acting_as, self.forwarded_extras)
        if body is not None:
            headers.append(("Content-Type", content_type))
        try:
            response = await self.client.request(
                method,
                path,
                headers=headers,
                content=json.dumps(body).encode() if body is not None else None,
                params={"fieldManager": USER_AGENT} if method in ("POST", "PUT", "PATCH") else None,
            )
        except httpx.HTTPError as error:
            raise UnreachableError(
                f"the Kubernetes API server did not answer: {type(error).__name__}"
            ) from error
        if not response.is_success:
            verb, resource, namespace = refusal
            raise RefusalError(response.status_code, _message(response.content), verb, resource, namespace)
        return dict(response.json())

    # -- as the gateway itself ---------------------------------------------------------------------------

    async def review_token(self, token: str, audiences: tuple[str, ...]) -> Identity | None:
        """The token's user, or None when the API server does not accept the token."""
        spec: Json = {"token": token}
        if audiences:
            spec["audiences"] = list(audiences)
        review = await self._send(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            acting_as=None,
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
            refusal=("create", Resource("authentication.k8s.io", "v1", "tokenreviews"), ""),
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return None
        identity = Identity.from_token_review(status.get("user") or {})
        return identity if identity.username else None

    async def ready(self) -> bool:
        """Whether the API server answers its readiness endpoint."""
        try:
            response = await self.client.get("/readyz", headers=self._own_credentials())
        except httpx.HTTPError:
            return False
        return response.is_success

    # -- as a user ---------------------------------------------------------------------------------------

    async def get(self, resource: Resource, namespace: str, name: str, acting_as: Identity) -> Json:
        return await self._send(
            "GET",
            resource.path(namespace, name),
            acting_as=acting_as,
            refusal=("get", resource, namespace),
        )

    async def create(
        self, resource: Resource, namespace: str, manifest: Mapping[str, Any], acting_as: Identity
    ) -> Json:
        return await self._send(
            "POST",
            resource.path(namespace),
            acting_as=acting_as,
            body=manifest,
            refusal=("create", resource, namespace),
        )

    async def replace(
        self, resource: Resource, namespace: str, manifest: Mapping[str, Any], acting_as: Identity
    ) -> Json:
        return await self._send(
            "PUT",
            resource.path(namespace, manifest["metadata"]["name"]),
            acting_as=acting_as,
            body=manifest,
            refusal=("update", resource, namespace),
        )

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any], acting_as: Identity
    ) -> Json:
        return await self._send(
            "PATCH",
            resource.path(namespace, name),
            acting_as=acting_as,
            body=patch,
            content_type="application/merge-patch+json",
            refusal=("patch", resource, namespace),
        )

    async def delete(self, resource: Resource, namespace: str, name: str, acting_as: Identity) -> None:
        await self._send(
            "DELETE",
            resource.path(namespace, name),
            acting_as=acting_as,
            refusal=("delete", resource, namespace),
        )
