"""Dynamic storage for the local cluster: a default StorageClass served by local-path-provisioner.

The provisioner (built from Go modules, `binaries.build_provisioner`) runs beside the control plane as the
cluster administrator. For each claim of the default class it runs a helper pod on the local node that
creates the volume's folder, then creates a hostPath PersistentVolume and binds it; deleting the claim
runs a helper pod that removes the folder, and the volume with it. Volumes bind when their first pod is
scheduled (`WaitForFirstConsumer`), as on kind clusters: the local node, which plays the scheduler, marks
each claim of a pod with its node before binding the pod. The local node maps the volumes' host paths under
its own root, so nothing is written to the machine's /opt.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import yaml

from .kubeapi import ApiError, KubeClient, path_segment

Json = dict[str, Any]

NAMESPACE = "local-path-storage"
SERVICE_ACCOUNT = "local-path-provisioner-service-account"
CONFIG_MAP = "local-path-config"
PROVISIONER_NAME = "rancher.io/local-path"
STORAGE_CLASS = "standard"
VOLUMES_PATH = "/opt/local-path-provisioner"
HELPER_IMAGE = "busybox:1.36"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"

# The helper pod runs `sh /script/<action>` with VOL_DIR set to the volume's folder.
SETUP_SCRIPT = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN_SCRIPT = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'


def provisioner_config() -> Json:
    return {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [VOLUMES_PATH]}]}


def helper_pod() -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "containers": [{"name": "helper-pod", "image": HELPER_IMAGE, "imagePullPolicy": "IfNotPresent"}]
        },
    }


def manifests() -> list[Json]:
    """What the provisioner needs in the cluster, in creation order."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": {
                "config.json": json.dumps(provisioner_config()),
                "setup": SETUP_SCRIPT,
                "teardown": TEARDOWN_SCRIPT,
                "helperPod.yaml": yaml.safe_dump(helper_pod(), sort_keys=False),
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": PROVISIONER_NAME,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


def _collection(manifest: Json) -> str:
    kind, namespace = manifest["kind"], manifest["metadata"].get("namespace")
    plural = {
        "Namespace": "namespaces",
        "ServiceAccount": "serviceaccounts",
        "ConfigMap": "configmaps",
        "StorageClass": "storageclasses",
    }[kind]
    prefix = "/apis/storage.k8s.io/v1" if kind == "StorageClass" else "/api/v1"
    return f"{prefix}/namespaces/{path_segment(namespace)}/{plural}" if namespace else f"{prefix}/{plural}"


def install(client: KubeClient) -> None:
    """Create what is missing; what exists is left as it is."""
    for manifest in manifests():
        try:
            client.request("POST", _collection(manifest), body=manifest)
        except ApiError as error:
            if error.status != 409:
                raise


def write_files(folder: Path) -> tuple[Path, Path]:
    """The provisioner's configuration and helper pod template as files: its command line names them."""
    folder.mkdir(parents=True, exist_ok=True)
    config, pod = folder / "config.json", folder / "helper-pod.yaml"
    config.write_text(json.dumps(provisioner_config()), encoding="utf-8")
    pod.write_text(yaml.safe_dump(helper_pod(), sort_keys=False), encoding="utf-8")
    return config, pod


def provisioner_argv(binary: Path, kubeconfig: Path, folder: Path) -> list[str]:
    config, pod = write_files(folder)
    return [
        str(binary),
        "start",
        f"--kubeconfig={kubeconfig}",
        f"--config={config}",
        f"--helper-pod-file={pod}",
        f"--provisioner-name={PROVISIONER_NAME}",
        f"--namespace={NAMESPACE}",
        f"--configmap-name={CONFIG_MAP}",
        f"--service-account-name={SERVICE_ACCOUNT}",
        f"--helper-image={HELPER_IMAGE}",
    ]


def node_path(node_root: Path, host_path: str) -> Path:
    """Where the node keeps a hostPath (and so a provisioned PersistentVolume) of the machine."""
    return node_root / "hostpath" / host_path.lstrip("/")


def binder_pod(claim: str) -> Json:
    """A pod that only mounts the claim and exits: its scheduling binds a claim that waits for its first
    consumer, which is how files get onto a volume before the workload that reads them runs. It passes the
    restricted Pod Security Standard, so it runs in any namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bind-{claim}"[:63].rstrip("-"),
            "labels": {"app.kubernetes.io/name": "claim-binder"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "bind",
                    "image": HELPER_IMAGE,
                    "command": ["true"],
                    "volumeMounts": [{"name": "claim", "mountPath": "/claim"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def claim_folder(client: KubeClient, root: Path, namespace: str, claim: str, timeout: float = 60.0) -> Path:
    """The folder on the node that holds a claim's volume, binding the claim first if it waits for a
    consumer (with a binder pod, deleted once the claim is bound)."""
    claims = f"/api/v1/namespaces/{path_segment(namespace)}/persistentvolumeclaims"
    pods = f"/api/v1/namespaces/{path_segment(namespace)}/pods"
    binder: str | None = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            found = client.get(f"{claims}/{path_segment(claim)}")
            if found is not None and (found.get("status") or {}).get("phase") == "Bound":
                volume = client.get(f"/api/v1/persistentvolumes/{path_segment(found['spec']['volumeName'])}")
                source = (volume or {}).get("spec", {}).get("hostPath") or {}
                if "path" in source:
                    return node_path(root, str(source["path"]))
            if found is not None and binder is None:
                manifest = binder_pod(claim)
                binder = str(manifest["metadata"]["name"])
                try:
                    client.request("POST", pods, body=manifest)
                except ApiError as error:
                    if error.status != 409:
                        raise
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"persistentvolumeclaim {namespace}/{claim} not bound after {timeout:.0f}s"
                )
            time.sleep(0.25)
    finally:
        if binder is not None:
            with contextlib.suppress(ApiError):
                client.request("DELETE", f"{pods}/{path_segment(binder)}", query={"gracePeriodSeconds": 0})
