"""Airbeld environment sensors.

Login: `POST /auth/login` with `{"email", "password"}` (Secret keys `username` or `email`, and `password`),
answered with `{"access_token": ..., "token_type": "bearer"}`; requests then send `Authorization: Bearer`.
With `http.auth.type: oauthPassword` the standard OAuth password grant at `tokenUrl` is used instead.
Devices: `GET /devices` → `{"data": [{"id", "name"}]}` when `deviceIds` is empty. Measurements:
`GET /devices/{id}/measurements?from=<ISO>&to=<ISO>` → `{"data": [{"timestamp", "temperature", ...}]}`.
An expired token (401) is renewed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import FailureReason, IngestError
from .base import Context
from .http import Headers, HttpClient, RetryableError, WindowedConnector, as_records, configured_auth, iso


def _data(response: httpx.Response) -> list[dict[str, Any]]:
    document = response.json()
    if not isinstance(document, dict) or "data" not in document:
        raise RetryableError("no `data` in the answer")
    return as_records(document["data"], "`data`")


class AirbeldConnector(WindowedConnector):
    source_type = "airbeld"

    def __init__(self, context: Context, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        base = self.settings.base_url
        if not base:
            raise IngestError(FailureReason.CONFIGURATION_ERROR, "http.baseUrl is required for airbeld")
        authenticate = configured_auth(context, self.settings, base) if self.settings.auth else self.login
        self.client = HttpClient(self.settings, base, context=context, authenticate=authenticate)

    def login(self, client: HttpClient) -> Headers:
        body = {
            "email": self.context.credential("username", "email"),
            "password": self.context.credential("password"),
        }
        answer = client.request("POST", "/auth/login", json=body, authenticated=False)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise IngestError(
                FailureReason.SOURCE_AUTH_FAILED, "POST /auth/login: no access_token in the answer"
            )
        return {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        self.client.close()

    def devices(self) -> Sequence[str]:
        if self.config.device_ids:
            return self.config.device_ids
        listed = self.client.request("GET", "/devices", parse=_data)
        return [str(device["id"]) for device in listed if device.get("id") is not None]

    def fetch(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.client.request(
            "GET",
            f"/devices/{quote(device, safe='')}/measurements",
            params={"from": iso(start), "to": iso(end)},
            parse=_data,
        )
        return records
