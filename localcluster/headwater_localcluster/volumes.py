"""A pod's volumes as folders on the node; the sandbox bind-mounts them at each container's mountPath.

- emptyDir (and generic ephemeral volumes): a folder of the pod, removed with it;
- configMap, secret, downwardAPI, projected: files written once when the pod starts (later changes to the
  objects are not propagated; service account tokens are renewed at 80 % of their lifetime); mounted
  read-only, as a kubelet does;
- hostPath: `<node root>/hostpath/<path>`, shared by the pods of the node without touching the machine;
- persistentVolumeClaim: the path of the hostPath or local PersistentVolume bound to the claim, under
  `<node root>/hostpath/` like a hostPath volume (the cluster's provisioner creates those volumes); a claim
  not bound yet is waited for.

Anything else fails the pod with the reason `UnsupportedVolume`.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .podenv import ContainerConfigError, ObjectSource, expand, field_value, resource_value
from .runtime import Mount
from .storage import node_path

Json = dict[str, Any]
DEFAULT_MODE = 0o644
TOKEN_REFRESH_FRACTION = 0.8


class VolumeError(ContainerConfigError):
    """A volume cannot be set up yet (a referenced object is missing); retried."""


class UnsupportedVolumeError(Exception):
    """A volume type the local node does not offer; fails the pod."""


class VolumeSource(ObjectSource, Protocol):
    def config_map_files(self, namespace: str, name: str) -> Mapping[str, bytes] | None: ...

    def service_account_token(
        self, namespace: str, service_account: str, audience: str | None, expiration_seconds: int, pod: Json
    ) -> tuple[str, datetime.datetime]: ...

    def claimed_volume_path(self, namespace: str, claim: str) -> str: ...


def write_file(path: Path, content: bytes, mode: int) -> None:
    """Replace a file atomically, so that a reader sees the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _safe_relative(path: str) -> str:
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts:
        raise UnsupportedVolumeError(f"invalid volume item path {path!r}")
    return path


@dataclass
class _Token:
    path: Path
    audience: str | None
    expiration_seconds: int
    mode: int
    refresh_at: datetime.datetime


class PodVolumes:
    """The volumes of one pod, materialised under `pod_dir/volumes`."""

    def __init__(
        self, pod: Json, pod_dir: Path, node_root: Path, source: VolumeSource, allocatable: Mapping[str, str]
    ) -> None:
        self.pod = pod
        self.namespace = str(pod["metadata"]["namespace"])
        self.pod_dir = pod_dir
        self.node_root = node_root
        self.source = source
        self.allocatable = allocatable
        self.paths: dict[str, Path] = {}
        self.read_only: set[str] = set()
        self._tokens: list[_Token] = []
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create every volume; raises VolumeError (retry later) or UnsupportedVolumeError (give up)."""
        with self._lock:
            self._tokens.clear()
            for volume in self.pod.get("spec", {}).get("volumes") or []:
                name = str(volume["name"])
                self.paths[name] = self._setup_one(name, volume)

    def _setup_one(self, name: str, volume: Json) -> Path:
        folder = self.pod_dir / "volumes" / name
        if "emptyDir" in volume or "ephemeral" in volume:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)
            return folder
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            path = self._host_path(self.source.claimed_volume_path(self.namespace, str(claim["claimName"])))
            path.mkdir(parents=True, exist_ok=True)
            if claim.get("readOnly"):
                self.read_only.add(name)
            return path
        if "hostPath" in volume:
            host = volume["hostPath"]
            path = self._host_path(str(host["path"]))
            if host.get("type") in ("File", "FileOrCreate"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(exist_ok=True)
            else:
                path.mkdir(parents=True, exist_ok=True)
            return path
        file_sources = ("configMap", "secret", "downwardAPI", "projected")
        if not any(kind in volume for kind in file_sources):
            kinds = sorted(set(volume) - {"name"})
            raise UnsupportedVolumeError(
                f"volume {name!r}: type {', '.join(kinds)} is not supported by the local node"
            )
        folder.mkdir(parents=True, exist_ok=True)
        self.read_only.add(name)
        if "configMap" in volume:
            self._config_map(
                folder, volume["configMap"], volume["configMap"].get("defaultMode", DEFAULT_MODE)
            )
        elif "secret" in volume:
            self._secret(folder, volume["secret"], volume["secret"].get("defaultMode", DEFAULT_MODE))
        elif "downwardAPI" in volume:
            spec = volume["downwardAPI"]
            self._downward(folder, spec.get("items") or [], spec.get("defaultMode", DEFAULT_MODE))
        else:
            self._projected(folder, volume["projected"])
        return folder

    def _host_path(self, path: str) -> Path:
        return node_path(self.node_root, _safe_relative(path.lstrip("/") or "."))

    def _write_items(
        self, folder: Path, files: Mapping[str, bytes], items: list[Json] | None, mode: int, what: str
    ) -> None:
        if not items:
            for key, content in files.items():
                write_file(folder / _safe_relative(key), content, mode)
            return
        for item in items:
            key = str(item["key"])
            if key not in files:
                raise VolumeError(f"configmap/secret {what}: key {key!r} not found")
            write_file(folder / _safe_relative(str(item["path"])), files[key], int(item.get("mode", mode)))

    def _config_map(self, folder: Path, spec: Json, mode: int) -> None:
        name = str(spec.get("name", ""))
        files = self.source.config_map_files(self.namespace, name)
        if files is None:
            if spec.get("optional"):
                return
            raise VolumeError(f'configmap "{name}" not found')
        self._write_items(folder, files, spec.get("items"), mode, f"{self.namespace}/{name}")

    def _secret(self, folder: Path, spec: Json, mode: int) -> None:
        name = str(spec.get("secretName") or spec.get("name") or "")
        files = self.source.secret(self.namespace, name)
        if files is None:
            if spec.get("optional"):
                return
            raise VolumeError(f'secret "{name}" not found')
        self._write_items(folder, files, spec.get("items"), mode, f"{self.namespace}/{name}")

    def _downward(self, folder: Path, items: list[Json], mode: int) -> None:
        for item in items:
            path = folder / _safe_relative(str(item["path"]))
            if "fieldRef" in item:
                value = field_value(self.pod, str(item["fieldRef"].get("fieldPath", "")))
            else:
                value = resource_value(self.pod, "", item.get("resourceFieldRef") or {}, self.allocatable)
            write_file(path, value.encode(), int(item.get("mode", mode)))

    def _projected(self, folder: Path, spec: Json) -> None:
        mode = int(spec.get("defaultMode", DEFAULT_MODE))
        for source in spec.get("sources") or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                self._token(
                    folder / _safe_relative(str(token.get("path", "token"))),
                    token.get("audience") or None,
                    int(token.get("expirationSeconds", 3600)),
                    mode,
                )
            elif "configMap" in source:
                self._config_map(folder, source["configMap"], mode)
            elif "secret" in source:
                self._secret(folder, source["secret"], mode)
            elif "downwardAPI" in source:
                self._downward(folder, source["downwardAPI"].get("items") or [], mode)
            else:
                raise UnsupportedVolumeError(
                    f"projected source {sorted(source)} is not supported by the local node"
                )

    def _token(self, path: Path, audience: str | None, expiration_seconds: int, mode: int) -> None:
        entry = _Token(
            path, audience, max(expiration_seconds, 600), mode, datetime.datetime.now(datetime.UTC)
        )
        self._refresh(entry)
        self._tokens.append(entry)

    def _refresh(self, entry: _Token) -> None:
        service_account = str(self.pod.get("spec", {}).get("serviceAccountName") or "default")
        issued = datetime.datetime.now(datetime.UTC)
        token, expires = self.source.service_account_token(
            self.namespace, service_account, entry.audience, entry.expiration_seconds, self.pod
        )
        write_file(entry.path, token.encode(), entry.mode)
        entry.refresh_at = issued + (expires - issued) * TOKEN_REFRESH_FRACTION

    def refresh_tokens(self) -> None:
        """Renew the tokens that reached 80 % of their lifetime."""
        with self._lock:
            moment = datetime.datetime.now(datetime.UTC)
            for entry in self._tokens:
                if moment >= entry.refresh_at:
                    self._refresh(entry)

    # -- mounts ------------------------------------------------------------------------------------

    def mounts(self, container: Json, env: Mapping[str, str]) -> list[Mount]:
        result: list[Mount] = []
        for mount in container.get("volumeMounts") or []:
            name = str(mount["name"])
            if name not in self.paths:
                raise UnsupportedVolumeError(f"volumeMount {name!r} names no volume of the pod")
            source = self.paths[name]
            sub_path = str(mount.get("subPath") or "")
            if mount.get("subPathExpr"):
                sub_path = expand(str(mount["subPathExpr"]), env)
            if sub_path:
                source = source / _safe_relative(sub_path)
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            read_only = bool(mount.get("readOnly")) or name in self.read_only
            result.append(Mount(str(source), str(mount["mountPath"]), read_only))
        return result
