"""The API server as a worker pod reaches it: with the token of its ServiceAccount, for the few writes a
worker makes itself (a watcher's figures, a generated module, a collector's report)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .logs import REDACTED

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIELD_MANAGER = "headwater-worker"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ApiServer:
    """The API server as a pod sees it: its address from the environment the kubelet sets, its CA and the
    pod's token from the mounted ServiceAccount folder."""

    url: str
    account_dir: Path

    @classmethod
    def in_cluster(cls, env: Mapping[str, str], account_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiServer | None:
        """None outside a pod, or in a pod that was given no token."""
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port or not (account_dir / "token").is_file():
            return None
        return cls(f"https://{f'[{host}]' if ':' in host else host}:{port}", account_dir)

    def token(self) -> str:
        # Read at every request: the kubelet replaces the projected token before it expires.
        return (self.account_dir / "token").read_text(encoding="utf-8").strip()

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.account_dir / "ca.crt")
        return httpx.Client(verify=context, timeout=TIMEOUT_SECONDS)


OpenClient = Callable[[ApiServer], httpx.Client]


def _api_message(response: httpx.Response) -> str:
    """What the API server said (its `Status` message), for the log."""
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.reason_phrase


def merge_patch(
    server: ApiServer,
    url: str,
    patch: Mapping[str, Any],
    *,
    open_client: OpenClient = ApiServer.client,
    field_manager: str = FIELD_MANAGER,
) -> str | None:
    """Merge-patch the object at `url`; None once written, else what went wrong (never the token)."""
    return _patch(server, url, patch, "application/merge-patch+json", open_client, field_manager)


def json_patch(
    server: ApiServer,
    url: str,
    operations: Sequence[Mapping[str, Any]],
    *,
    open_client: OpenClient = ApiServer.client,
    field_manager: str = FIELD_MANAGER,
) -> str | None:
    """Apply JSON Patch `operations` (RFC 6902) to the object at `url`: what a merge patch cannot do, such as
    replacing a whole map. None once written, else what went wrong (never the token)."""
    return _patch(server, url, operations, "application/json-patch+json", open_client, field_manager)


def _patch(
    server: ApiServer,
    url: str,
    body: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    content_type: str,
    open_client: OpenClient,
    field_manager: str,
) -> str | None:
    try:
        token = server.token()
    except OSError as error:
        return f"cannot read the ServiceAccount token: {error}"
    if not token:
        return "the ServiceAccount token is empty"
    try:
        with open_client(server) as client:
            response = client.patch(
                url,
                params={"fieldManager": field_manager},
                content=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            )
    # Whatever fails here (TLS, the network, a malformed token), the caller's work goes on.
    except Exception as error:
        return f"{type(error).__name__}: {error}".replace(token, REDACTED)
    if response.is_error:
        return f"HTTP {response.status_code}: {_api_message(response)}"
    return None
