"""A watching file connector's figures, written into its Connector's status after each load.

A scheduled run reports its totals in its termination message; a watcher never terminates. After every
scan that loaded or refused a file it therefore merge-patches the connector's totals, and the time of that
load, into the Connector's status itself, through the status subresource, as its own ServiceAccount (the
operator grants it `patch` on that one Connector's status, nothing else). Only those fields are
sent: the phase and conditions belong to the operator. A write that fails is logged and tried again after
the next scan; it never stops ingestion.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..logs import REDACTED, fields
from .config import IngestSummary

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIELD_MANAGER = "headwater-worker"
CONNECTORS_API = "apis/headwater.dev/v1alpha1"
TIMEOUT_SECONDS = 10.0

log = logging.getLogger(__name__)


def status_patch(totals: IngestSummary, loaded_at: datetime) -> dict[str, Any]:
    """The merge patch of a load: the connector's totals and when they changed, none of the operator's
    fields (phase, conditions), so that neither side's writes undo the other's."""
    moment = loaded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {**totals.status_figures(), "lastLoadTime": moment}}


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


class StatusReporter:
    """Called after every scan, with the connector's totals when the scan loaded or refused something
    (else None): writes the newest figures not written yet."""

    def __init__(
        self,
        connector: str,
        server: ApiServer,
        *,
        open_client: OpenClient = ApiServer.client,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        namespace, name = connector.split("/", 1)
        self.url = f"{server.url}/{CONNECTORS_API}/namespaces/{namespace}/connectors/{name}/status"
        self.server = server
        self._open_client = open_client
        self._now = now
        self._unwritten: dict[str, Any] | None = None
        self._failing = False

    def __call__(self, totals: IngestSummary | None) -> None:
        if totals is not None:
            self._unwritten = status_patch(totals, self._now())
        if self._unwritten is None:
            return
        problem = self._write(self._unwritten)
        if problem is None:
            self._unwritten = None
            if self._failing:
                log.info("connector status written again")
            self._failing = False
            return
        # One warning per outage, not one per scan: the retries of a long one would flood the log.
        log.log(
            logging.DEBUG if self._failing else logging.WARNING,
            "could not write the connector's status; trying again after the next scan",
            extra=fields(error=problem),
        )
        self._failing = True

    def _write(self, patch: Mapping[str, Any]) -> str | None:
        """None once written, else what went wrong (never the token)."""
        try:
            token = self.server.token()
        except OSError as error:
            return f"cannot read the ServiceAccount token: {error}"
        if not token:
            return "the ServiceAccount token is empty"
        try:
            with self._open_client(self.server) as client:
                response = client.patch(
                    self.url,
                    params={"fieldManager": FIELD_MANAGER},
                    content=json.dumps(patch),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/merge-patch+json",
                    },
                )
        # Whatever fails here (TLS, the network, a malformed token), ingestion goes on.
        except Exception as error:
            return f"{type(error).__name__}: {error}".replace(token, REDACTED)
        if response.is_error:
            return f"HTTP {response.status_code}: {_api_message(response)}"
        return None


def reporter(env: Mapping[str, str], connector: str) -> StatusReporter | None:
    """The watcher's reporter, or None when this pod has no API access to write its status with."""
    server = ApiServer.in_cluster(env)
    if server is None:
        log.info("no ServiceAccount token: the figures of each load are not written into the status")
        return None
    return StatusReporter(connector, server)
