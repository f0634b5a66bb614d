"""What pods read from the API server (Secrets, ConfigMaps, service account tokens) and the Events the
node reports."""

from __future__ import annotations

import base64
import datetime
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any

from .control_plane import NODE_NAME
from .kubeapi import ApiError, KubeClient, path_segment
from .podstatus import parse_time, rfc3339
from .volumes import UnsupportedVolumeError, VolumeError

Json = dict[str, Any]

log = logging.getLogger(__name__)


class ApiObjects:
    """Reads each object when a container or volume needs it: nothing is cached."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _get(self, namespace: str, plural: str, name: str) -> Json | None:
        return self.client.get(f"/api/v1/namespaces/{path_segment(namespace)}/{plural}/{path_segment(name)}")

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        secret = self._get(namespace, "secrets", name)
        if secret is None:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        config_map = self._get(namespace, "configmaps", name)
        if config_map is None:
            return None
        return {key: str(value) for key, value in (config_map.get("data") or {}).items()}

    def config_map_files(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        config_map = self._get(namespace, "configmaps", name)
        if config_map is None:
            return None
        files = {key: str(value).encode() for key, value in (config_map.get("data") or {}).items()}
        for key, value in (config_map.get("binaryData") or {}).items():
            files[key] = base64.b64decode(value)
        return files

    def claimed_volume_path(self, namespace: str, claim: str) -> str:
        """The node path of the PersistentVolume bound to a claim: a `hostPath` or `local` volume, as the
        provisioner creates them. A claim not bound yet is retried, as a kubelet waits for it."""
        found = self._get(namespace, "persistentvolumeclaims", claim)
        if found is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        volume_name = (found.get("spec") or {}).get("volumeName")
        if (found.get("status") or {}).get("phase") != "Bound" or not volume_name:
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound yet')
        volume = self.client.get(f"/api/v1/persistentvolumes/{path_segment(str(volume_name))}")
        if volume is None:
            raise VolumeError(f'persistentvolume "{volume_name}" not found')
        spec: Json = volume.get("spec") or {}
        source = spec.get("hostPath") or spec.get("local")
        if not source or not source.get("path"):
            raise UnsupportedVolumeError(
                f"persistentvolume {volume_name!r}: the local node mounts only hostPath and local volumes"
            )
        return str(source["path"])

    def service_account_token(
        self, namespace: str, service_account: str, audience: str | None, expiration_seconds: int, pod: Json
    ) -> tuple[str, datetime.datetime]:
        """A token bound to the pod (TokenRequest API), as a kubelet requests it."""
        spec: Json = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        path = (
            f"/api/v1/namespaces/{path_segment(namespace)}/serviceaccounts/"
            f"{path_segment(service_account)}/token"
        )
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            response = self.client.request("POST", path, body=body)
        except ApiError as error:
            if error.status == 404:
                raise VolumeError(f'serviceaccount "{service_account}" not found') from error
            raise
        status: Json = response.get("status") or {}
        return str(status["token"]), parse_time(str(status["expirationTimestamp"]))


class EventRecorder:
    """Posts core/v1 Events from a background thread, so that a slow API server never slows a pod."""

    def __init__(self, client: KubeClient, component: str = "kubelet") -> None:
        self.client = client
        self.component = component
        self._queue: queue.Queue[Json] = queue.Queue(maxsize=1000)
        threading.Thread(target=self._run, daemon=True, name="events").start()

    def event(
        self, pod: Json, reason: str, message: str, *, warning: bool = False, component: str | None = None
    ) -> None:
        metadata = pod["metadata"]
        component = component or self.component
        moment = rfc3339(datetime.datetime.now(datetime.UTC))
        event: Json = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": component, "host": NODE_NAME},
            "reportingComponent": component,
            "reportingInstance": NODE_NAME,
            "firstTimestamp": moment,
            "lastTimestamp": moment,
            "count": 1,
        }
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.debug("event queue full; dropped %s for %s", reason, metadata["name"])

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            namespace = path_segment(event["metadata"]["namespace"])
            try:
                self.client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event, timeout=10)
            except ApiError as error:
                log.debug("event not recorded: %s", error)
