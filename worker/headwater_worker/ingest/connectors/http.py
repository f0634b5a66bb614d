"""HTTP sources: a client with authentication and retries, a windowed fetch loop, and the generic connector.

Retries: a connection error, a timeout, a `429`, a `5xx` or a body that is not the JSON expected is retried
up to `maxRetries` times with exponential backoff (`backoffSeconds`, doubling, capped, with jitter); a
`429` waits what its `Retry-After` says. Then the run fails with `SourceUnavailable` (or
`SourceInvalidResponse`), and the cursor of the window being fetched has not moved. Other `4xx` answers
fail at once (`401`/`403`: `SourceAuthFailed`), except that an expired token is renewed once.

The API connectors fetch in windows from the cursor (or `lookbackDays` ago) up to now; each window's
records are one batch, and the cursor moves to the window's end in the transaction that loads it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ...logs import fields, redact
from ...retry_after import retry_after_seconds
from ..config import HttpConfig
from ..errors import FailureReason, IngestError
from ..pipeline import BatchInput, CursorUpdate
from ..sources import record_chunks, records_sha256
from .base import Context, Sink

log = logging.getLogger(__name__)

Headers = dict[str, str]


class RetryableError(Exception):
    """A response worth asking again for (malformed or unexpected JSON, a rate-limit failure code)."""


class AuthExpiredError(Exception):
    """A response saying the session or token expired: authenticate again (once) and repeat."""


class HttpClient:
    """httpx with the connector's timeouts, retries and authentication."""

    def __init__(
        self,
        settings: HttpConfig,
        base_url: str,
        *,
        context: Context,
        authenticate: Callable[[HttpClient], Headers] | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.context = context
        self.base_url = base_url.rstrip("/")
        self._authenticate = authenticate
        self._auth_headers: Headers | None = None
        self._sleep = sleep or (lambda seconds: context.stop.wait(seconds) and None)
        self.client = httpx.Client(
            timeout=settings.timeout_seconds,
            headers={"User-Agent": "headwater-ingest", **settings.headers},
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    def auth_headers(self, *, renew: bool = False) -> Headers:
        if self._authenticate is None:
            return {}
        if self._auth_headers is None or renew:
            self._auth_headers = self._authenticate(self)
            for value in self._auth_headers.values():
                redact.add(value.removeprefix("Bearer "))
        return self._auth_headers

    def forget_auth(self) -> None:
        self._auth_headers = None

    def _delay(self, attempt: int) -> float:
        base: float = self.settings.backoff_seconds * 2.0**attempt
        return min(base * (0.5 + random.random() / 2), self.settings.max_backoff_seconds)  # noqa: S311

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        headers: Headers | None = None,
        authenticated: bool = True,
        parse: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """The parsed answer (JSON by default), after retries; raises IngestError."""
        url = self.url(path)
        what = f"{method} {url.split('?')[0]}"
        attempts = self.settings.max_retries + 1
        renewed = False
        attempt = 0
        while True:
            if self.context.stop.is_set():
                raise IngestError(FailureReason.TERMINATED, f"{what}: stopped")
            delay: float | None = None
            reason = FailureReason.SOURCE_UNAVAILABLE
            try:
                sent = {**(self.auth_headers() if authenticated else {}), **(headers or {})}
                response = self.client.request(method, url, params=params, json=json, data=data, headers=sent)
            except httpx.TimeoutException:
                problem = f"timed out after {self.settings.timeout_seconds:g}s"
            except httpx.TransportError as error:
                problem = f"connection failed: {error}"
            else:
                status = response.status_code
                if status == 401 and authenticated and self._authenticate is not None and not renewed:
                    renewed = True
                    self.forget_auth()
                    continue
                if status == 429:
                    problem = "429 Too Many Requests"
                    delay = retry_after_seconds(response.headers.get("Retry-After"))
                elif status >= 500:
                    problem = f"{status} {response.reason_phrase}"
                elif status >= 400:
                    kind = (
                        FailureReason.SOURCE_AUTH_FAILED
                        if status in (401, 403)
                        else FailureReason.SOURCE_NOT_FOUND
                        if status == 404
                        else FailureReason.SOURCE_INVALID_RESPONSE
                    )
                    body = redact(response.text[:200]).strip()
                    raise IngestError(kind, f"{what}: {status} {response.reason_phrase}: {body}")
                else:
                    try:
                        return parse(response) if parse is not None else response.json()
                    except AuthExpiredError as error:
                        if renewed or not authenticated or self._authenticate is None:
                            raise IngestError(FailureReason.SOURCE_AUTH_FAILED, f"{what}: {error}") from None
                        renewed = True
                        self.forget_auth()
                        continue
                    except (ValueError, RetryableError) as error:
                        reason = FailureReason.SOURCE_INVALID_RESPONSE
                        problem = f"unexpected response: {error}"[:300]
            attempt += 1
            if attempt >= attempts:
                raise IngestError(reason, redact(f"{what}: {problem} (after {attempts} attempts)"))
            wait = (
                min(delay, self.settings.max_backoff_seconds)
                if delay is not None
                else self._delay(attempt - 1)
            )
            log.warning(
                "request failed; retrying",
                extra=fields(
                    request=what, attempt=attempt, problem=redact(problem), retryInSeconds=round(wait, 2)
                ),
            )
            self._sleep(wait)


# -- authentication -----------------------------------------------------------------------------------


def bearer(token: str, header: str | None = None) -> Callable[[HttpClient], Headers]:
    name = header or "Authorization"
    return lambda _client: {name: f"Bearer {token}"}


def api_key(key: str, header: str | None = None) -> Callable[[HttpClient], Headers]:
    name = header or "X-API-Key"
    return lambda _client: {name: key}


def oauth_password(
    token_url: str, username: str, password: str, *, client_id: str | None = None, header: str | None = None
) -> Callable[[HttpClient], Headers]:
    """The OAuth 2 resource owner password grant: form-encoded, answered with `access_token`."""

    def authenticate(client: HttpClient) -> Headers:
        form = {"grant_type": "password", "username": username, "password": password}
        if client_id:
            form["client_id"] = client_id
        answer = client.request("POST", token_url, data=form, authenticated=False)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise IngestError(
                FailureReason.SOURCE_AUTH_FAILED, f"POST {token_url}: no access_token in the answer"
            )
        return {header or "Authorization": f"Bearer {token}"}

    return authenticate


def configured_auth(
    context: Context, settings: HttpConfig, base_url: str
) -> Callable[[HttpClient], Headers] | None:
    auth = settings.auth
    if auth is None:
        return None
    if auth.type == "bearer":
        return bearer(context.credential("token"), auth.header_name)
    if auth.type == "apiKey":
        return api_key(context.credential("apiKey", "api-key", "token"), auth.header_name)
    token_url = auth.token_url or f"{base_url.rstrip('/')}/oauth/token"
    return oauth_password(
        token_url,
        context.credential("username", "email"),
        context.credential("password"),
        client_id=context.credentials.get("clientId"),
        header=auth.header_name,
    )


# -- the windowed fetch loop ----------------------------------------------------------------------------


def dig(document: Any, path: str | None) -> Any:
    """`data.items` of a JSON document."""
    for part in (path or "").split("."):
        if not part:
            continue
        if not isinstance(document, dict) or part not in document:
            raise RetryableError(f"no {path!r} in the response")
        document = document[part]
    return document


def as_records(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RetryableError(f"{where} is not a list of objects")
    return value


def windows(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        yield cursor, upper
        cursor = upper


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class WindowedConnector:
    """Fetch each device's records window by window from its cursor; one batch per non-empty window."""

    source_type = "http"

    def __init__(self, context: Context, *, now: Callable[[], datetime] | None = None) -> None:
        self.context = context
        self.config = context.config
        self.mapping = context.mapping
        self.settings = context.config.http or HttpConfig()
        self.now = now or (lambda: datetime.now(UTC))

    # subclasses: the devices, the window length, and one window's records
    def devices(self) -> Sequence[str]:
        return self.config.device_ids or [""]

    def step(self) -> timedelta:
        if self.config.window_hours is not None:
            return timedelta(hours=self.config.window_hours)
        return timedelta(hours=1) if self.mapping.granularity == "hourly" else timedelta(days=1)

    def horizon(self) -> datetime:
        """Fetch up to here: complete hours only, so a late value of the current hour is not skipped."""
        return floor_hour(self.now())

    def fetch(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        raise NotImplementedError

    def datasource(self, device: str) -> str:
        return self.config.datasource_id or device or self.config.connector

    def source_uri(self, device: str, start: datetime, end: datetime) -> str:
        return f"{self.source_type}://{device or 'default'}?start={start.isoformat()}&end={end.isoformat()}"

    def close(self) -> None:
        """Release connections."""

    def run(self, sink: Sink) -> None:
        try:
            for device in self.devices():
                self.run_device(sink, device)
        finally:
            self.close()

    def run_device(self, sink: Sink, device: str) -> None:
        dataset = self.mapping.dataset
        horizon = self.horizon()
        start = sink.cursor(device, dataset) or floor_hour(
            horizon - timedelta(days=self.config.lookback_days)
        )
        for low, high in windows(start, horizon, self.step()):
            if self.context.stop.is_set():
                return
            records = self.fetch(device, low, high)
            update = CursorUpdate(self.config.connector, device, dataset, high)
            if not records:
                sink.advance(update)
                continue
            sink.load(self.batch(device, low, high, records, update))

    def batch(
        self, device: str, start: datetime, end: datetime, records: list[dict[str, Any]], update: CursorUpdate
    ) -> BatchInput:
        mapping, chunk_rows = self.mapping, self.config.chunk_rows
        uri = self.source_uri(device, start, end)
        return BatchInput(
            connector=self.config.connector,
            source_uri=uri,
            sha256=records_sha256(records, self.config.connector, mapping.dataset, device),
            datasource=self.datasource(device),
            source_type=self.source_type,
            open=lambda: record_chunks(records, mapping, chunk_rows=chunk_rows),
            metadata={
                "device": device,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "records": len(records),
            },
            cursor=update,
        )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class GenericHttpConnector(WindowedConnector):
    """`GET <baseUrl><path>?start=<ISO>&end=<ISO>[&device=<id>]`, records at `recordsPath`."""

    source_type = "http"

    def __init__(self, context: Context, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        base = self.settings.base_url
        if not base:
            raise IngestError(FailureReason.CONFIGURATION_ERROR, "http.baseUrl is required")
        self.client = HttpClient(
            self.settings, base, context=context, authenticate=configured_auth(context, self.settings, base)
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        params = {"start": iso(start), "end": iso(end)}
        if device:
            params["device"] = device
        path = self.settings.records_path
        answer: list[dict[str, Any]] = self.client.request(
            "GET",
            self.settings.path or "",
            params=params,
            parse=lambda response: as_records(dig(response.json(), path), path or "the response"),
        )
        return answer
