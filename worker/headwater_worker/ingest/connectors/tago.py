"""Tago.io: `GET /data` of a device, authenticated by its device token.

Request: header `Device-Token: <token>`; query `variable`, `start_date`, `end_date` (ISO 8601), `qty`
(page size), `skip` (offset) and `ordination=ascending`. Answer: `{"status": true, "result": [{"id",
"variable", "value", "time", "unit", ...}]}`; `{"status": false, "message": ...}` on failure.

Tokens come from the credentials Secret: a key named after the device id, else `token`. The variable comes
from the mapping's `source.variable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from ..errors import FailureReason, IngestError
from .base import Context
from .http import HttpClient, RetryableError, WindowedConnector, as_records, iso

DEFAULT_URL = "https://api.tago.io"
PAGE = 10_000


def parse_answer(response: httpx.Response) -> list[dict[str, Any]]:
    document = response.json()
    if not isinstance(document, dict) or "result" not in document:
        raise RetryableError("no `result` in the answer")
    if document.get("status") is False:
        raise IngestError(FailureReason.SOURCE_INVALID_RESPONSE, f"Tago refused: {document.get('message')}")
    return as_records(document["result"], "`result`")


class TagoConnector(WindowedConnector):
    source_type = "tago"

    def __init__(self, context: Context, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.client = HttpClient(self.settings, self.settings.base_url or DEFAULT_URL, context=context)
        variable = self.mapping.source.get("variable")
        self.variable = str(variable) if variable else None

    def close(self) -> None:
        self.client.close()

    def devices(self) -> Sequence[str]:
        return self.config.device_ids or ["default"]

    def token(self, device: str) -> str:
        if device in self.context.credentials:
            return self.context.credentials[device]
        return self.context.credential("token")

    def fetch(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        headers = {"Device-Token": self.token(device)}
        while True:
            params: dict[str, Any] = {
                "start_date": iso(start),
                "end_date": iso(end),
                "qty": PAGE,
                "skip": len(records),
                "ordination": "ascending",
            }
            if self.variable:
                params["variable"] = self.variable
            page: list[dict[str, Any]] = self.client.request(
                "GET", "/data", params=params, headers=headers, parse=parse_answer
            )
            records.extend(page)
            if len(page) < PAGE:
                break
        # The window is half-open: a value at `end` belongs to the next one. A value whose time cannot be
        # read is kept, so that validation reports it.
        return [
            r
            for r in records
            if (not self.variable or r.get("variable") == self.variable)
            and _inside(r.get("time"), start, end)
        ]


def _inside(value: Any, start: datetime, end: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        return True
    return start <= moment < end
