"""Readiness and liveness probes: httpGet and tcpSocket against 127.0.0.1, exec inside the container's
mount namespace (`nsenter`). Startup and gRPC probes are not run: a container counts as started as soon
as its process runs, and a gRPC probe always passes."""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from .podenv import HOST_IP

Json = dict[str, Any]

log = logging.getLogger(__name__)


def _port(value: Any, container: Json) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"named port {value!r} is not declared by the container")


def check(probe: Json, container: Json, env: Mapping[str, str], pid: int) -> bool:
    """Run the probe once; True on success."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"]
            host = spec.get("host") or HOST_IP
            port = _port(spec.get("port"), container)
            connection: http.client.HTTPConnection
            if str(spec.get("scheme", "HTTP")).upper() == "HTTPS":
                context = ssl._create_unverified_context()  # noqa: S323 - a kubelet does not verify probes
                connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {str(h["name"]): str(h["value"]) for h in spec.get("httpHeaders") or []}
            try:
                connection.request("GET", str(spec.get("path") or "/"), headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            target = (spec.get("host") or HOST_IP, _port(spec.get("port"), container))
            with socket.create_connection(target, timeout=timeout):
                return True
        if "exec" in probe:
            command = [str(part) for part in probe["exec"].get("command") or []]
            nsenter = shutil.which("nsenter")
            if nsenter:
                command = [nsenter, f"--target={pid}", "--mount", "--", *command]
            result = subprocess.run(command, env=dict(env), capture_output=True, timeout=timeout, check=False)
            return result.returncode == 0
    except (OSError, ValueError, subprocess.SubprocessError, http.client.HTTPException):
        return False
    return True


class Prober:
    """One probe of one container run; `healthy` follows success and failure thresholds.

    `step()` is called from the pod's loop; each check runs in its own thread, one at a time.
    """

    def __init__(
        self, probe: Json, container: Json, env: Mapping[str, str], pid: int, *, initially: bool
    ) -> None:
        self.probe = probe
        self.container = container
        self.env = dict(env)
        self.pid = pid
        self.healthy = initially
        self.period = float(probe.get("periodSeconds") or 10)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self._next = time.monotonic() + float(probe.get("initialDelaySeconds") or 0)
        self._successes = 0
        self._failures = 0
        self._running: threading.Thread | None = None
        self._lock = threading.Lock()

    def step(self) -> None:
        if self._running is not None and self._running.is_alive():
            return
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.period
        self._running = threading.Thread(target=self._run, daemon=True, name=f"probe-{self.pid}")
        self._running.start()

    def _run(self) -> None:
        ok = check(self.probe, self.container, self.env, self.pid)
        with self._lock:
            if ok:
                self._successes += 1
                self._failures = 0
                if self._successes >= self.success_threshold:
                    self.healthy = True
            else:
                self._failures += 1
                self._successes = 0
                if self._failures >= self.failure_threshold:
                    self.healthy = False
