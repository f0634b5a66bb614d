"""A static file server on 127.0.0.1 that says what its files are (ETag, Last-Modified, Content-Length), as
the web servers and CDNs that host source datasets do, and counts the downloads of each file."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

CHUNK = 256 * 1024


class FileServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.downloads: Counter[str] = Counter()
        self.lock = threading.Lock()
        files = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _headers(self) -> Path | None:
                path = files.root / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                content = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("ETag", f'"{hashlib.sha1(content, usedforsecurity=False).hexdigest()}"')
                self.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
                self.end_headers()
                return path

            def do_HEAD(self) -> None:
                self._headers()

            def do_GET(self) -> None:
                path = self._headers()
                if path is None:
                    return
                with files.lock:
                    files.downloads[self.path] += 1
                with path.open("rb") as stream:
                    while chunk := stream.read(CHUNK):
                        self.wfile.write(chunk)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
