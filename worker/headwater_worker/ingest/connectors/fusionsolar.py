"""Huawei FusionSolar Northbound API (`.../thirdData`).

Login: `POST /login` with `{"userName", "systemCode"}` (Secret keys `username` and `systemCode`); the token
comes back in the `xsrf-token` header (and cookie) and is sent as header `XSRF-TOKEN` on every call.
Every answer is `{"success": bool, "failCode": int, "message", "data"}`: `failCode` 305 (not logged in)
logs in again once; 407 (too frequent) is retried with backoff like a 429.

Stations: `POST /getStationList` → `data: [{"stationCode", ...}]` when `deviceIds` is empty. KPIs: the
mapping's `source.endpoint` (`getKpiStationHour`, `getKpiStationDay` or `getKpiStationMonth`) with
`{"stationCodes": "<code>", "collectTime": <epoch ms>}` answers the hours of that day, the days of that
month or the months of that year: `data: [{"stationCode", "collectTime", "dataItemMap": {...}}]`,
flattened here into one record each. The cursor moves period by period, never past the current period's
start, which is fetched again on the next run (its figures are still growing).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from ..errors import FailureReason, IngestError
from ..pipeline import CursorUpdate
from .base import Context, Sink
from .http import AuthExpiredError, Headers, HttpClient, RetryableError, WindowedConnector, as_records

DEFAULT_URL = "https://intl.fusionsolar.huawei.com/thirdData"
NOT_LOGGED_IN = 305
TOO_FREQUENT = 407


def _answer(response: httpx.Response) -> list[dict[str, Any]]:
    document = response.json()
    if not isinstance(document, dict) or "success" not in document:
        raise RetryableError("not a FusionSolar answer (no `success`)")
    if not document["success"]:
        code = document.get("failCode")
        if code == NOT_LOGGED_IN:
            raise AuthExpiredError("failCode 305: not logged in")
        if code == TOO_FREQUENT:
            raise RetryableError("failCode 407: access frequency too high")
        raise IngestError(
            FailureReason.SOURCE_INVALID_RESPONSE, f"FusionSolar failCode {code}: {document.get('message')}"
        )
    data = document.get("data")
    return as_records(data if data is not None else [], "`data`")


class FusionSolarConnector(WindowedConnector):
    source_type = "fusionsolar"

    def __init__(self, context: Context, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.client = HttpClient(
            self.settings, self.settings.base_url or DEFAULT_URL, context=context, authenticate=self.login
        )
        self.endpoint = str(self.mapping.source.get("endpoint") or "getKpiStationHour")
        self.zone = zoneinfo.ZoneInfo(self.mapping.timezone)

    def login(self, client: HttpClient) -> Headers:
        body = {
            "userName": self.context.credential("username", "userName"),
            "systemCode": self.context.credential("systemCode"),
        }

        def token(response: httpx.Response) -> str:
            _answer(response)
            value = response.headers.get("xsrf-token") or response.cookies.get("XSRF-TOKEN")
            if not value:
                raise IngestError(
                    FailureReason.SOURCE_AUTH_FAILED, "POST /login: no xsrf-token in the answer"
                )
            return str(value)

        return {"XSRF-TOKEN": client.request("POST", "/login", json=body, authenticated=False, parse=token)}

    def close(self) -> None:
        self.client.close()

    def call(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.client.request("POST", path, json=body, parse=_answer)
        return records

    def devices(self) -> Sequence[str]:
        if self.config.device_ids:
            return self.config.device_ids
        return [str(s["stationCode"]) for s in self.call("/getStationList", {}) if s.get("stationCode")]

    # Periods: one request covers a day (hourly KPIs), a month (daily) or a year (monthly).
    def period_start(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        if self.endpoint == "getKpiStationDay":
            local = local.replace(day=1)
        elif self.endpoint == "getKpiStationMonth":
            local = local.replace(month=1, day=1)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    def next_period(self, start: datetime) -> datetime:
        if self.endpoint == "getKpiStationDay":
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        if self.endpoint == "getKpiStationMonth":
            return start.replace(year=start.year + 1)
        return (start + timedelta(days=1, hours=2)).replace(hour=0)

    def run_device(self, sink: Sink, device: str) -> None:
        dataset = self.mapping.dataset
        now = self.now()
        cursor = sink.cursor(device, dataset) or now - timedelta(days=self.config.lookback_days)
        start = self.period_start(cursor)
        current = self.period_start(now)
        while start <= current:
            if self.context.stop.is_set():
                return
            end = self.next_period(start)
            records = self.fetch(device, start, end)
            # The current period is fetched again next time: its cursor stays at its start.
            update = CursorUpdate(self.config.connector, device, dataset, min(end, current))
            if records:
                sink.load(self.batch(device, start, end, records, update))
            else:
                sink.advance(update)
            start = end

    def fetch(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        body = {"stationCodes": device, "collectTime": int(start.timestamp() * 1000)}
        items = self.call(f"/{self.endpoint}", body)
        records = []
        for item in items:
            flat = {k: v for k, v in item.items() if k != "dataItemMap"}
            flat.update(item.get("dataItemMap") or {})
            records.append(flat)
        return records
