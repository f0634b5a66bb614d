"""A small typed REST client for the local node: JSON in, JSON out, client-certificate authentication.

The node works on plain dictionaries (the wire format) rather than the generated client's models: it
reads and writes only a few fields, and dictionaries keep unknown fields intact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

Json = dict[str, Any]
Query = Mapping[str, str | int | bool]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A response other than 2xx (`status` is the HTTP status code), or no response at all (`status` 0)."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        message = body
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and "message" in decoded:
            message = str(decoded["message"])
        super().__init__(f"{method} {path}: {status} {message}")


def path_segment(value: str) -> str:
    return quote(value, safe="")


class KubeClient:
    """Thread-safe: urllib3 pools connections per host and every call is independent."""

    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=16,
            block=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(ca),
            cert_file=str(cert),
            key_file=str(key),
            retries=False,
        )

    def _url(self, path: str, query: Query | None) -> str:
        url = self.server + path
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Json | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Json:
        headers = {"Accept": "application/json"}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = self._pool.request(
                method,
                self._url(path, query),
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=5.0, read=timeout),
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(method, path, 0, str(error)) from error
        text = response.data.decode("utf-8", "replace")
        if not 200 <= response.status < 300:
            raise ApiError(method, path, response.status, text)
        if not text:
            return {}
        decoded = json.loads(text)
        return decoded if isinstance(decoded, dict) else {"items": decoded}

    def get(self, path: str, *, query: Query | None = None) -> Json | None:
        """GET, with None for 404."""
        try:
            return self.request("GET", path, query=query)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def watch(self, path: str, query: Query, *, read_timeout: float) -> Iterator[Json]:
        """Yield the events of one watch request until the server closes it."""
        try:
            response = self._pool.request(
                "GET",
                self._url(path, {**query, "watch": "true"}),
                headers={"Accept": "application/json"},
                preload_content=False,
                timeout=urllib3.Timeout(connect=5.0, read=read_timeout),
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError("WATCH", path, 0, str(error)) from error
        try:
            if response.status != 200:
                raise ApiError("WATCH", path, response.status, response.read().decode("utf-8", "replace"))
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
        except urllib3.exceptions.HTTPError as error:
            raise ApiError("WATCH", path, 0, str(error)) from error
        finally:
            response.release_conn()


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def client_from_pki(server: str, pki_dir: Path) -> KubeClient:
    """The node talks to the API server as the cluster administrator (see node.py for why)."""
    return KubeClient(server, pki_dir / "ca.crt", pki_dir / "admin.crt", pki_dir / "admin.key")
