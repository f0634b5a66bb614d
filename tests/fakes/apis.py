"""Local stand-ins for the APIs the connectors speak, each a thread serving on 127.0.0.1.

They answer with each API's documented request and response shapes, keep a log of the requests they
received, and misbehave on demand: `fail(path, *faults)` queues faults for the next requests to a path
(`500`, `timeout`, `malformed`, `429`, or `ok` for a normal answer), and `delay` slows every answer (to
catch a run mid-way).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Json = Any
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Json:
        return json.loads(self.body or b"null")


def _json(status: int, document: Json, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()


class FakeApi:
    """A threaded HTTP server; subclasses implement `answer(request)`."""

    timeout_seconds = 3.0

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.delay = 0.0
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parsed.path,
                    dict(urllib.parse.parse_qsl(parsed.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                status, headers, body = api.handle(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _serve  # noqa: N815 - the names http.server calls
            do_POST = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, path: str, *faults: str) -> None:
        with self.lock:
            self.faults[path].extend(faults)

    def received(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
            fault = self.faults[request.path].popleft() if self.faults[request.path] else None
        if self.delay:
            time.sleep(self.delay)
        if fault in (None, "ok"):
            return self.answer(request)
        if fault == "500":
            return _json(500, {"error": "internal"})
        if fault == "timeout":
            time.sleep(self.timeout_seconds)
            return _json(504, {"error": "too late"})
        if fault == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"status": true, "result": [{"broken'
        if fault == "429":
            return _json(429, {"error": "slow down"}, {"Retry-After": "1"})
        return self.answer(request)

    def answer(self, request: Request) -> Answer:
        return _json(404, {"error": "not found"})


def hours(start: datetime, end: datetime) -> list[datetime]:
    """Every whole hour in [start, end]."""
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    found = []
    moment = first
    while moment <= end:
        found.append(moment)
        moment += timedelta(hours=1)
    return found


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def energy(moment: datetime) -> float:
    """The fake meters' reading for an hour: deterministic, so tests can compute what must be loaded."""
    return round(1.0 + (moment.hour % 24) * 0.25 + moment.day * 0.01, 3)


class FakeTago(FakeApi):
    """`GET /data` with `Device-Token`; one `energy_hourly` value per hour of each device."""

    def __init__(self, tokens: dict[str, str], until: datetime | None = None) -> None:
        super().__init__()
        self.tokens = tokens  # token -> device
        self.until = until or datetime.now(UTC)

    def answer(self, request: Request) -> Answer:
        if request.path != "/data" or request.method != "GET":
            return _json(404, {"status": False, "message": "not found"})
        device = self.tokens.get(request.headers.get("device-token", ""))
        if device is None:
            return _json(401, {"status": False, "message": "Authorization denied"})
        start = parse_time(request.query["start_date"])
        end = min(parse_time(request.query["end_date"]), self.until)
        skip, qty = int(request.query.get("skip", 0)), int(request.query.get("qty", 50))
        variable = request.query.get("variable", "energy_hourly")
        points = [
            {
                "id": f"{device}-{int(moment.timestamp())}",
                "variable": variable,
                "value": energy(moment),
                "unit": "kWh",
                "time": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "device": device,
            }
            for moment in hours(start, end)
        ]
        return _json(200, {"status": True, "result": points[skip : skip + qty]})


class FakeAirbeld(FakeApi):
    """`POST /auth/login`, `GET /devices`, `GET /devices/{id}/measurements`; tokens expire on demand."""

    def __init__(self, email: str, password: str, devices: list[str]) -> None:
        super().__init__()
        self.email, self.password, self.devices = email, password, devices
        self.issued: list[str] = []

    def expire_tokens(self) -> None:
        self.issued.clear()

    def answer(self, request: Request) -> Answer:
        if request.path == "/auth/login" and request.method == "POST":
            body = request.json()
            if body != {"email": self.email, "password": self.password}:
                return _json(401, {"detail": "invalid credentials"})
            token = f"token-{len(self.issued) + 1}-{time.monotonic_ns()}"
            self.issued.append(token)
            return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600})
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.issued:
            return _json(401, {"detail": "token expired"})
        if request.path == "/devices":
            return _json(200, {"data": [{"id": d, "name": f"Sensor {d}"} for d in self.devices]})
        parts = request.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "devices" and parts[2] == "measurements":
            start, end = parse_time(request.query["from"]), parse_time(request.query["to"])
            rows = [
                {
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "atm_pressure": 1013.2,
                    "noise_level_db": 41.5,
                    "temperature": 20 + moment.hour / 10,
                    "humidity": 45.5,
                    "pm10": 9.0,
                    "wind_speed": 3.25,
                    "wind_direction": 4,
                    "wind_angle": 180 + moment.hour,
                    "pm2p5": 5.5,
                }
                for moment in hours(start, end)
                if moment < end
            ]
            return _json(200, {"data": rows})
        return _json(404, {"detail": "not found"})


class FakeFusionSolar(FakeApi):
    """`/thirdData`-style: `POST /login` → `xsrf-token`; `getStationList`; `getKpiStation{Hour,Day,Month}`."""

    def __init__(self, user: str, system_code: str, stations: list[str]) -> None:
        super().__init__()
        self.user, self.system_code, self.stations = user, system_code, stations
        self.tokens: list[str] = []
        self.logins = 0
        self.zone = "Europe/Athens"
        self.sessions_last = 0  # when set, a session ends after this many KPI answers

    def logout_all(self) -> None:
        self.tokens.clear()

    def answer(self, request: Request) -> Answer:
        if request.method != "POST":
            return _json(404, {"success": False, "failCode": 404, "message": "not found"})
        body = request.json() or {}
        if request.path == "/login":
            if body != {"userName": self.user, "systemCode": self.system_code}:
                return _json(200, {"success": False, "failCode": 20001, "message": "USER_MUST_RELOGIN"})
            self.logins += 1
            token = f"x-{self.logins}"
            self.tokens.append(token)
            return _json(200, {"success": True, "failCode": 0, "data": None}, {"xsrf-token": token})
        if request.headers.get("xsrf-token") not in self.tokens:
            return _json(200, {"success": False, "failCode": 305, "message": "USER_MUST_RELOGIN"})
        if request.path == "/getStationList":
            return _json(
                200, {"success": True, "failCode": 0, "data": [{"stationCode": s} for s in self.stations]}
            )
        if request.path in ("/getKpiStationHour", "/getKpiStationDay", "/getKpiStationMonth"):
            answered = len([r for r in self.requests if r.path == request.path])
            if self.sessions_last and answered % self.sessions_last == 0:
                self.tokens.clear()  # this answer is the session's last
            return _json(200, {"success": True, "failCode": 0, "data": self.kpis(request.path, body)})
        return _json(200, {"success": False, "failCode": 404, "message": "unknown"})

    def kpis(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        import zoneinfo

        zone = zoneinfo.ZoneInfo(self.zone)
        moment = datetime.fromtimestamp(body["collectTime"] / 1000, zone)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if path == "/getKpiStationHour":
            periods = [day + timedelta(hours=h) for h in range(24)]
        elif path == "/getKpiStationDay":
            first = day.replace(day=1)
            periods = [
                first + timedelta(days=d)
                for d in range(31)
                if (first + timedelta(days=d)).month == first.month
            ]
        else:
            periods = [day.replace(month=m, day=1) for m in range(1, 13)]
        return [
            {
                "stationCode": code,
                "collectTime": int(period.timestamp() * 1000),
                "dataItemMap": {
                    "inverter_power": round(3.5 + period.hour, 2),
                    "radiation_intensity": 0.5,
                    "theory_power": 4.0,
                    "ongrid_power": 3.0,
                    "power_profit": 1.25,
                    "performance_ratio": 80.0,
                    "use_power": 1.0,
                },
            }
            for code in str(body["stationCodes"]).split(",")
            for period in periods
        ]


@dataclass
class FakeOAuthApi(FakeApi):
    """A generic records API behind an OAuth password grant (`POST /oauth/token`) or a static key."""

    username: str = "user"
    password: str = "secret"
    api_key: str | None = None
    records: Callable[[datetime, datetime], list[dict[str, Any]]] = field(default=lambda s, e: [])

    def __post_init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def answer(self, request: Request) -> Answer:
        if request.path == "/oauth/token":
            form = dict(urllib.parse.parse_qsl(request.body.decode()))
            if form != {"grant_type": "password", "username": self.username, "password": self.password}:
                return _json(400, {"error": "invalid_grant"})
            token = f"oauth-{len(self.tokens) + 1}"
            self.tokens.append(token)
            return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": 60})
        authorized = request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens or (
            self.api_key is not None and request.headers.get("x-api-key") == self.api_key
        )
        if not authorized:
            return _json(401, {"error": "unauthorized"})
        if request.path == "/v1/data":
            start, end = parse_time(request.query["start"]), parse_time(request.query["end"])
            return _json(200, {"data": {"items": self.records(start, end)}})
        return _json(404, {"error": "not found"})


class FakeIndicatorApi(FakeApi):
    """Open-data APIs of indicator records, each paging its own way (`style`): `results-next` (a `next`
    link in the body), `data-page` (`page` with `meta.total_pages`), `list-link` (a bare list and a `Link`
    header), `offset` (`offset` / `limit`), `odata` (`@odata.nextLink`). With `api_key`, every request must
    carry it in `X-API-Key`; records can be added while it serves."""

    def __init__(self, apis: dict[str, dict[str, Any]], api_key: str | None = None) -> None:
        super().__init__()
        self.apis = {path: {**api, "records": list(api["records"])} for path, api in apis.items()}
        self.api_key = api_key

    def add(self, path: str, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.apis[path]["records"].extend(records)

    def rename(self, path: str, old: str, new: str) -> None:
        """Change the API's shape: every record's field `old` is called `new` from now on."""
        with self.lock:
            records = self.apis[path]["records"]
            self.apis[path]["records"] = [
                {(new if key == old else key): value for key, value in record.items()} for record in records
            ]

    def answer(self, request: Request) -> Answer:
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _json(401, {"error": "a valid X-API-Key is required"})
        api = self.apis.get(request.path)
        if api is None:
            return _json(404, {"error": "not found"})
        with self.lock:
            records = list(api["records"])
        size = api["page_size"]
        pages = max(1, -(-len(records) // size))
        base = f"http://{request.headers['host']}{request.path}"
        headers: dict[str, str] = {}
        body: Json
        if api["style"] == "offset":
            offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", size))
            body = {"total": len(records), "offset": offset, "limit": limit}
            body["observations"] = records[offset : offset + limit]
            return _json(200, body)
        page = int(request.query.get("page", 1))
        chunk = records[(page - 1) * size : page * size]
        if api["style"] == "results-next":
            body = {
                "count": len(records),
                "next": f"{base}?page={page + 1}" if page < pages else None,
                "previous": f"{base}?page={page - 1}" if page > 1 else None,
                "results": chunk,
            }
        elif api["style"] == "odata":
            body = {"@odata.context": f"{base}/$metadata#TypedDataSet", "value": chunk}
            if page < pages:
                body["@odata.nextLink"] = f"{base}?page={page + 1}"
        elif api["style"] == "data-page":
            body = {"data": chunk, "meta": {"page": page, "per_page": size, "total_pages": pages}}
        else:
            body = chunk
            links = [f'<{request.path}?page={page + 1}>; rel="next"'] if page < pages else []
            links.append(f'<{request.path}?page={pages}>; rel="last"')
            headers["Link"] = ", ".join(links)
        return _json(200, body, headers)
