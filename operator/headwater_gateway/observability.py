"""Request metrics and access logs: one counter and one histogram per route template, one JSON line per
request naming the user it acted as."""

from __future__ import annotations

import logging
import time
from typing import Any

from headwater_worker.logs import fields
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "headwater_gateway_requests_total",
    "HTTP requests answered, by method, route and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "headwater_gateway_request_duration_seconds",
    "Time to answer a request, by method and route",
    ["method", "route"],
)
access_log = logging.getLogger("headwater_gateway.access")


class Observed:
    """ASGI middleware counting, timing and logging every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            elapsed = time.perf_counter() - started
            # The route's template, not the path: task ids would make a series per task.
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status[0])).inc()
            REQUEST_SECONDS.labels(scope["method"], template).observe(elapsed)
            state = scope.get("state") or {}
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status[0],
                extra=fields(
                    method=scope["method"],
                    path=scope["path"],
                    status=status[0],
                    seconds=round(elapsed, 4),
                    user=state.get("user"),
                ),
            )
