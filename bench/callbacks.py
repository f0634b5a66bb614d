"""The Core engine's side of the callback, for the ComputeTask benchmark: `PATCH /tasks/{id}` on
127.0.0.1, answered 200 with the update it got, each TaskUpdate kept with the moment it arrived."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/tasks/"


@dataclass(frozen=True)
class Arrival:
    at: float  # monotonic clock, as the benchmark's own
    update: dict[str, Any]


class CallbackReceiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, Arrival] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_PATCH(self) -> None:
                now = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith(PREFIX):
                    self._answer(404, {"detail": "Not Found"})
                    return
                update = json.loads(body)
                receiver.record(self.path.removeprefix(PREFIX), Arrival(now, update))
                self._answer(200, update)

            def _answer(self, status: int, document: Any) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url_for(self, task_id: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{PREFIX}{task_id}"

    def record(self, task_id: str, arrival: Arrival) -> None:
        """The first update of a task counts; a later one (a retried delivery) is only counted."""
        with self.lock:
            if task_id in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[task_id] = arrival

    def received(self, task_ids: set[str]) -> dict[str, Arrival]:
        with self.lock:
            return {key: value for key, value in self.arrivals.items() if key in task_ids}

    def start(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
