"""The node's kubelet endpoint: HTTPS with the kubelet serving certificate, clients must present a
certificate signed by the cluster CA (the API server does, for `kubectl logs`).

    GET /healthz
    GET /containerLogs/{namespace}/{pod}/{container}

with the query parameters follow, previous, tailLines, timestamps, sinceSeconds, sinceTime and limitBytes;
other query parameters are ignored.
"""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from . import logfiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogTarget:
    path: Path
    finished: threading.Event


class LogLocator(Protocol):
    def locate(self, namespace: str, pod: str, container: str, previous: bool) -> LogTarget:
        """The log of a container run; raises LookupError with a message for the client."""
        ...


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: str | None = None  # a timestamp in the log's format

    @classmethod
    def parse(cls, query: str, moment: datetime.datetime | None = None) -> LogQuery:
        values = {key: items[-1] for key, items in parse_qs(query).items()}

        def flag(name: str) -> bool:
            return values.get(name, "false").lower() in ("1", "true", "yes")

        def number(name: str) -> int | None:
            raw = values.get(name)
            return int(raw) if raw not in (None, "") else None

        since: str | None = None
        if values.get("sinceTime"):
            since = logfiles.normalise_time(values["sinceTime"])
        elif (seconds := number("sinceSeconds")) is not None:
            moment = moment or datetime.datetime.now(datetime.UTC)
            since = logfiles.normalise_time((moment - datetime.timedelta(seconds=seconds)).isoformat())
        return cls(
            follow=flag("follow"),
            previous=flag("previous"),
            timestamps=flag("timestamps"),
            tail_lines=number("tailLines"),
            limit_bytes=number("limitBytes"),
            since=since,
        )

    def admits(self, entry: logfiles.Entry) -> bool:
        return self.since is None or entry.timestamp >= self.since


def initial_entries(path: Path, query: LogQuery) -> tuple[list[logfiles.Entry], int]:
    """The entries present now (complete lines only) and the byte offset where following resumes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    end = data.rfind(b"\n") + 1
    entries = [e for line in data[:end].splitlines() if (e := logfiles.parse(line)) and query.admits(e)]
    if query.tail_lines is not None:
        entries = logfiles.tail_entries(entries, query.tail_lines)
    return entries, end


class _Handler(BaseHTTPRequestHandler):
    server: KubeletServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("kubelet endpoint: " + format, *args)

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        try:
            if parts == ["healthz"]:
                self._plain(200, "ok")
            elif len(parts) == 4 and parts[0] == "containerLogs":
                self._logs(parts[1], parts[2], parts[3], url.query)
            else:
                self._plain(404, f"404 page not found: {url.path}")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            pass

    def _logs(self, namespace: str, pod: str, container: str, raw_query: str) -> None:
        try:
            query = LogQuery.parse(raw_query)
        except ValueError as error:
            self._plain(400, f"invalid query: {error}")
            return
        try:
            target = self.server.locator.locate(namespace, pod, container, query.previous)
        except LookupError as error:
            self._plain(
                400 if "waiting to start" in str(error) else 404, str(error.args[0] if error.args else error)
            )
            return
        entries, offset = initial_entries(target.path, query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        budget = query.limit_bytes
        stream: Iterable[logfiles.Entry] = entries
        if query.follow:
            stream = _chain(
                entries, (e for e in logfiles.follow(target.path, offset, target.finished) if query.admits(e))
            )
        for entry in stream:
            data = entry.render(timestamps=query.timestamps)
            if budget is not None:
                data = data[:budget]
                budget -= len(data)
            self.wfile.write(data)
            if budget is not None and budget <= 0:
                break


def _chain(first: list[logfiles.Entry], then: Iterable[logfiles.Entry]) -> Iterable[logfiles.Entry]:
    yield from first
    yield from then


class KubeletServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, context: ssl.SSLContext, locator: LogLocator) -> None:
        self.context = context
        self.locator = locator
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = self.socket.accept()
        connection.settimeout(30)
        # The TLS handshake happens in the handler's thread, on its first read.
        wrapped = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("kubelet endpoint: error serving %s", client_address, exc_info=True)


def tls_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(cafile=str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def start(port: int, pki_dir: Path, locator: LogLocator) -> KubeletServer:
    context = tls_context(
        pki_dir / "kubelet-serving.crt", pki_dir / "kubelet-serving.key", pki_dir / "ca.crt"
    )
    server = KubeletServer(port, context, locator)
    threading.Thread(target=server.serve_forever, daemon=True, name="kubelet-endpoint").start()
    return server
