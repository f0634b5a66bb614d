"""Pieces every kind's children share: owner references, ServiceAccounts, pod templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import naming, security
from ..api.common import S3Bucket, S3Location
from ..config import OperatorConfig

API_VERSION = "headwater.dev/v1alpha1"
GROUP = "headwater.dev"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
WORKER_TMP_VOLUME = "tmp"
# The size limit of the worker's /tmp (an emptyDir): the kubelet evicts a pod that writes more. An S3 file
# source downloads each object there, and a Latin-1 CSV needs a UTF-8 copy beside it.
WORKER_TMP_GIB = 1
WORKER_TMP_BYTES = WORKER_TMP_GIB << 30


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns a child; deleting it deletes the child."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 1

    @classmethod
    def of(cls, kind: str, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(kind, meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation") or 1))

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, component: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": naming.labels(self.kind, self.name, component),
            "ownerReferences": [self.reference()],
        }


def service_account(owner: Owner, name: str | None = None) -> dict[str, Any]:
    """One ServiceAccount per resource (`name`: another one, for pods that need other grants). Most workers
    need no API access: a pod gets a token only when its spec asks for one
    (`worker_pod_spec(automount_token=True)`)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": owner.metadata(name or service_account_name(owner), "worker"),
        "automountServiceAccountToken": False,
    }


def service_account_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "worker")


def role(owner: Owner, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": owner.metadata(name, "worker"),
        "rules": rules,
    }


def status_writer_role(owner: Owner, plural: str, name: str) -> dict[str, Any]:
    """`patch` on the owner's own status, nothing else: what a long-running worker needs to report. The
    operator can grant it without `escalate` because it holds the same permission."""
    rule = {
        "apiGroups": [GROUP],
        "resources": [f"{plural}/status"],
        "resourceNames": [owner.name],
        "verbs": ["patch"],
    }
    return role(owner, name, [rule])


def role_binding(owner: Owner, name: str, account: str | None = None) -> dict[str, Any]:
    """Binds the Role of this name to the owner's worker ServiceAccount, or to `account`."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": owner.metadata(name, "worker"),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": account or service_account_name(owner),
                "namespace": owner.namespace,
            }
        ],
    }


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def s3_location(location: S3Bucket, prefix: str = "") -> dict[str, Any]:
    """The worker's view of an S3 location (`headwater_worker.s3.S3Location`): no credentials."""
    return {
        "bucket": location.bucket,
        "prefix": location.prefix if isinstance(location, S3Location) else prefix,
        "endpoint": location.endpoint,
        "region": location.region,
        "forcePathStyle": location.force_path_style,
    }


def s3_credentials_env(bucket: S3Bucket) -> list[dict[str, Any]]:
    """The access key pair as `AWS_*` variables from the Secret, which botocore reads; none when the
    workload's ambient credentials are meant."""
    credentials = bucket.credentials_secret_ref
    if credentials is None:
        return []
    return [
        secret_env("AWS_ACCESS_KEY_ID", credentials.name, credentials.access_key_id_key),
        secret_env("AWS_SECRET_ACCESS_KEY", credentials.name, credentials.secret_access_key_key),
    ]


def worker_pod_spec(
    owner: Owner,
    config: OperatorConfig,
    command: list[str],
    env: list[dict[str, Any]],
    volumes: Sequence[Mapping[str, Any]] = (),
    mounts: Sequence[Mapping[str, Any]] = (),
    restart_policy: str = "Never",
    *,
    automount_token: bool = False,
    account: str | None = None,
) -> dict[str, Any]:
    """A pod spec running `python -m headwater_worker ...` under the restricted Pod Security Standard, as
    the owner's worker ServiceAccount or `account`; with `automount_token`, its token (for what its Role
    grants) is mounted."""
    spec: dict[str, Any] = {
        "serviceAccountName": account or service_account_name(owner),
        "automountServiceAccountToken": automount_token,
        "restartPolicy": restart_policy,
        "securityContext": security.pod_security_context(),
        "containers": [
            {
                "name": "worker",
                "image": config.worker_image,
                "imagePullPolicy": config.image_pull_policy,
                "command": ["python", "-m", "headwater_worker", *command],
                "env": list(env),
                "securityContext": security.container_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": WORKER_TMP_VOLUME, "mountPath": "/tmp"}, *mounts],  # noqa: S108 - a private emptyDir
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "512Mi"},
                },
            }
        ],
        "volumes": [{"name": WORKER_TMP_VOLUME, "emptyDir": {"sizeLimit": f"{WORKER_TMP_GIB}Gi"}}, *volumes],
    }
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in config.image_pull_secrets]
    return spec
