"""The Helm chart against a real API server: server-side dry runs, Pod Security admission, install, RBAC."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from headwater_localcluster import binaries
from headwater_localcluster.control_plane import free_port

from tests.fixtures.cluster import Cluster, poll
from tests.unit.test_chart_render import CHART, Manifest, helm_path, render_text, value_flags

pytestmark = pytest.mark.cluster

CHART_CRDS = CHART / "crds"
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


def run(
    argv: list[str], kubeconfig: Path, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    if check and result.returncode != 0:
        pytest.fail(f"{Path(argv[0]).name} {' '.join(argv[1:])} exited {result.returncode}:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Clients:
    """kubectl and helm pointed at the test cluster."""

    kubeconfig: Path

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([str(binaries.bin_dir() / "kubectl"), *args], self.kubeconfig, stdin, check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(helm_path()), *args], self.kubeconfig, None, check)

    def can_i(self, account: str, *args: str) -> bool:
        result = self.kubectl("auth", "can-i", *args, f"--as={account}", check=False)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result.stderr
        return answer == "yes"

    def create_namespace(self, labels: Mapping[str, str] | None = None) -> str:
        name = f"hw-chart-{uuid.uuid4().hex[:8]}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        self.kubectl("create", "-f", "-", stdin=json.dumps(manifest))
        return name

    def delete_namespace(self, name: str) -> None:
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def clients(cluster: Cluster) -> Clients:
    clients = Clients(cluster.kubeconfig)
    # What `helm install` does first, and what a server-side dry run of the templates needs.
    clients.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART_CRDS))
    clients.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART_CRDS))
    return clients


@pytest.fixture
def extra_namespaces(clients: Clients) -> Iterator[list[str]]:
    """Two more namespaces for watchNamespaces, deleted after the test."""
    names = [clients.create_namespace(), clients.create_namespace()]
    yield names
    for name in names:
        clients.delete_namespace(name)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# -- server-side dry runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant", ["default", "watch-namespaces", "one-replica", "gateway", "unauthenticated-gateway"]
)
def test_rendered_chart_is_accepted_by_the_api_server(
    clients: Clients, namespace: str, extra_namespaces: list[str], variant: str
) -> None:
    variants: dict[str, dict[str, Any]] = {
        "default": {},
        "watch-namespaces": {"watchNamespaces": extra_namespaces},
        "one-replica": {"replicas": 1},
        "gateway": {"gateway.enabled": True},
        "unauthenticated-gateway": {
            "gateway": {"enabled": True, "unauthenticated": True, "actAs": f"{extra_namespaces[0]}:engine"}
        },
    }
    values = variants[variant]
    manifests = render_text({**values, "peering.name": unique("dry")}, namespace, unique("hw"))
    result = clients.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifests)
    assert "Warning" not in result.stderr, result.stderr
    assert result.stdout.count("(server dry run)") == len([d for d in yaml.safe_load_all(manifests) if d])


def test_helm_server_dry_run_of_the_defaults(clients: Clients, namespace: str) -> None:
    result = clients.helm(
        "install",
        unique("hw"),
        str(CHART),
        "--namespace",
        namespace,
        "--dry-run=server",
        "--set",
        f"peering.name={unique('dry')}",
    )
    assert "kind: Deployment" in result.stdout
    assert "STATUS: pending-install" in result.stdout


# -- restricted Pod Security -------------------------------------------------------------------------


def test_operator_and_gateway_pods_are_admitted_under_restricted_pod_security(
    clients: Clients, restricted_namespace: str
) -> None:
    namespace = restricted_namespace
    # enforce denies pods; warn makes the API server also report on pod templates of workloads.
    clients.kubectl(
        "label", "namespace", namespace, *[f"{k}={v}" for k, v in RESTRICTED.items()], "--overwrite"
    )
    manifests = [d for d in yaml.safe_load_all(render_text({"gateway.enabled": True}, namespace, "hw")) if d]
    workloads = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]
    assert len(workloads) == 2  # the operator's and the gateway's
    for workload in workloads:
        result = clients.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(workload))
        assert result.stderr == "", result.stderr
        # A pod made from the template is admitted by enforce, which denies rather than warns.
        pod: Manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pod-security-check", "namespace": namespace},
            "spec": {**workload["spec"]["template"]["spec"], "serviceAccountName": "default"},
        }
        result = clients.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
        assert result.stderr == "", result.stderr


def test_restricted_namespace_check_does_flag_a_violation(
    clients: Clients, restricted_namespace: str
) -> None:
    """The check above can fail: a pod escalating privileges is denied in the same kind of namespace."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "escalating", "namespace": restricted_namespace},
        "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"allowPrivilegeEscalation": True}}]
        },
    }
    result = clients.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr


# -- install and RBAC ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    account: str
    peering: str
    watched: tuple[str, ...] = ()


# Releases whose operator must not run get a node selector no node matches: their pods stay Pending, so
# an operator meant only for RBAC checks never reconciles the resources of other tests in the session.
PARKED = {"nodeSelector": {"headwater.dev/chart-test": "parked"}}


def install(clients: Clients, values: Mapping[str, Any], *, parked: bool = True) -> Release:
    namespace = clients.create_namespace()
    name, peering = unique("hw"), unique("peering")
    clients.helm(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"peering.name={peering}",
        *value_flags({**(PARKED if parked else {}), **values}),
    )
    watched = tuple(values.get("watchNamespaces", ()))
    return Release(name, namespace, f"system:serviceaccount:{namespace}:{name}-headwater", peering, watched)


def uninstall(clients: Clients, release: Release) -> None:
    clients.helm("uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout=60s")
    clients.delete_namespace(release.namespace)


@pytest.fixture(scope="module")
def cluster_wide(clients: Clients) -> Iterator[Release]:
    release = install(clients, {})
    yield release
    uninstall(clients, release)


@pytest.fixture(scope="module")
def namespaced(clients: Clients) -> Iterator[Release]:
    watched = [clients.create_namespace(), clients.create_namespace()]
    release = install(clients, {"watchNamespaces": watched})
    yield release
    uninstall(clients, release)
    for name in watched:
        clients.delete_namespace(name)


def test_install_establishes_the_crds_and_creates_the_operator(
    clients: Clients, cluster_wide: Release
) -> None:
    names = sorted(path.name.removesuffix(".yaml") for path in CHART_CRDS.glob("*.yaml"))
    assert names
    clients.kubectl("wait", "--for=condition=Established", "--timeout=30s", *[f"crd/{n}" for n in names])
    account = clients.kubectl(
        "get", "serviceaccount", f"{cluster_wide.name}-headwater", "-n", cluster_wide.namespace
    )
    assert f"{cluster_wide.name}-headwater" in account.stdout
    deployment = json.loads(
        clients.kubectl(
            "get", "deployment", f"{cluster_wide.name}-headwater", "-n", cluster_wide.namespace, "-o", "json"
        ).stdout
    )
    assert deployment["spec"]["replicas"] == 2
    clients.kubectl("get", "clusterkopfpeering", cluster_wide.peering)
    status = clients.helm("status", cluster_wide.name, "--namespace", cluster_wide.namespace)
    assert "STATUS: deployed" in status.stdout


ALLOWED = [
    ("create", "jobs.batch"),
    ("delete", "cronjobs.batch"),
    ("patch", "exportjobs.headwater.dev", "--subresource=status"),
    ("update", "wrappers.headwater.dev", "--subresource=status"),
    ("watch", "computetasks.headwater.dev"),
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    ("create", "configmaps"),
    ("create", "serviceaccounts"),
    ("list", "pods"),
    ("create", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("delete", "rolebindings.rbac.authorization.k8s.io"),
]
DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods"),
    ("create", "pods", "--subresource=exec"),
    ("update", "exportjobs.headwater.dev"),
    ("create", "exportjobs.headwater.dev"),
    ("update", "deployments.apps"),
    ("patch", "serviceaccounts"),
    ("delete", "serviceaccounts"),
    ("create", "statefulsets.apps"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"),
]
DENIED_CLUSTER_WIDE = [
    ("list", "secrets", "--all-namespaces"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("create", "namespaces"),
]


@pytest.mark.parametrize("request_", ALLOWED, ids=" ".join)
def test_cluster_wide_operator_can(
    clients: Clients, cluster_wide: Release, request_: tuple[str, ...]
) -> None:
    # RBAC does not care whether the namespace exists: any namespace will do.
    assert clients.can_i(cluster_wide.account, *request_, "-n", unique("anywhere"))


@pytest.mark.parametrize("request_", DENIED, ids=" ".join)
def test_cluster_wide_operator_cannot(
    clients: Clients, cluster_wide: Release, request_: tuple[str, ...]
) -> None:
    # Neither in another namespace nor in its own.
    for namespace in ("default", cluster_wide.namespace):
        assert not clients.can_i(cluster_wide.account, *request_, "-n", namespace)


@pytest.mark.parametrize("request_", DENIED_CLUSTER_WIDE, ids=" ".join)
def test_cluster_wide_operator_cannot_at_cluster_scope(
    clients: Clients, cluster_wide: Release, request_: tuple[str, ...]
) -> None:
    assert not clients.can_i(cluster_wide.account, *request_)


def test_cluster_wide_operator_reads_crds_namespaces_and_its_peering(
    clients: Clients, cluster_wide: Release
) -> None:
    account = cluster_wide.account
    assert clients.can_i(account, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert clients.can_i(account, "list", "namespaces")
    assert clients.can_i(account, "patch", f"clusterkopfpeerings.kopf.dev/{cluster_wide.peering}")
    assert not clients.can_i(account, "delete", f"clusterkopfpeerings.kopf.dev/{cluster_wide.peering}")


def test_namespaced_operator_works_only_in_its_namespaces(clients: Clients, namespaced: Release) -> None:
    account = namespaced.account
    for watched in namespaced.watched:
        assert clients.can_i(account, "create", "jobs.batch", "-n", watched)
        assert clients.can_i(
            account, "patch", "exportjobs.headwater.dev", "--subresource=status", "-n", watched
        )
        assert clients.can_i(account, "patch", f"kopfpeerings.kopf.dev/{namespaced.peering}", "-n", watched)
        assert not clients.can_i(account, "get", "secrets", "-n", watched)
        assert not clients.can_i(account, "create", "pods", "-n", watched)
        clients.kubectl("get", "kopfpeering", namespaced.peering, "-n", watched)
    for elsewhere in ("default", namespaced.namespace):
        assert not clients.can_i(account, "create", "jobs.batch", "-n", elsewhere)
        assert not clients.can_i(account, "list", "exportjobs.headwater.dev", "-n", elsewhere)
    assert not clients.can_i(account, "list", "exportjobs.headwater.dev", "--all-namespaces")
    assert clients.can_i(account, "watch", "namespaces")
    assert not clients.can_i(account, "list", "secrets", "--all-namespaces")
    assert clients.can_i(account, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not clients.can_i(account, "patch", "clusterkopfpeerings.kopf.dev")


def test_upgrade_between_one_and_two_replicas(clients: Clients) -> None:
    """The strategy changes (Recreate for one replica, RollingUpdate for more) survive helm's merge."""
    release = install(clients, {"replicas": 1})
    try:
        deployment = ["get", "deployment", f"{release.name}-headwater", "-n", release.namespace, "-o", "json"]
        spec = json.loads(clients.kubectl(*deployment).stdout)["spec"]
        assert spec["strategy"] == {"type": "Recreate"}
        for replicas, strategy in ((2, "RollingUpdate"), (1, "Recreate")):
            clients.helm(
                "upgrade",
                release.name,
                str(CHART),
                "--namespace",
                release.namespace,
                "--reuse-values",
                "--set",
                f"replicas={replicas}",
            )
            spec = json.loads(clients.kubectl(*deployment).stdout)["spec"]
            assert (spec["replicas"], spec["strategy"]["type"]) == (replicas, strategy)
    finally:
        uninstall(clients, release)


def test_uninstall_removes_cluster_scoped_objects(clients: Clients) -> None:
    release = install(clients, {})
    uninstall(clients, release)
    role = f"clusterrole/{release.name}-headwater"
    assert clients.kubectl("get", role, "--ignore-not-found").stdout == ""
    assert clients.kubectl("get", f"clusterkopfpeering/{release.peering}", "--ignore-not-found").stdout == ""
    # The CRDs stay: deleting them would delete every Headwater resource in the cluster.
    clients.kubectl("get", "crd", "exportjobs.headwater.dev")


# -- the operator itself, run by the local node under the chart's RBAC -------------------------------------

# A kind whose reconcile needs nothing outside the cluster to write its status and post an Event.
SMOKE_PACKAGE = {
    "apiVersion": "headwater.dev/v1alpha1",
    "kind": "Package",
    "metadata": {"name": "chart-smoke"},
    "spec": {
        "boundary": {
            "name": "smoke",
            "geometry": {"geojson": '{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}'},
        },
        "processors": ["test_processor.version_1"],
        "storage": {"s3": {"bucket": "smoke", "credentialsSecretRef": {"name": "smoke-s3"}}},
    },
}


@pytest.fixture(scope="module")
def running(clients: Clients) -> Iterator[Release]:
    """One standalone operator watching a namespace of its own (so it touches nothing else)."""
    watched = [clients.create_namespace()]
    # The local node runs containers on the host's network: pick free ports.
    values = {
        "watchNamespaces": watched,
        "replicas": 1,
        "operator.healthPort": free_port(),
        "metrics.port": free_port(),
    }
    release = install(clients, values, parked=False)
    yield release
    uninstall(clients, release)
    for name in watched:
        clients.delete_namespace(name)


def operator_pod(clients: Clients, release: Release) -> Manifest | None:
    """The operator's pod once its container runs."""
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"
    pods = json.loads(
        clients.kubectl("get", "pods", "-n", release.namespace, "-l", selector, "-o", "json").stdout
    )["items"]
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses", []):
            if "running" in container.get("state", {}):
                return dict(pod)
    return None


def test_the_operator_reconciles_under_the_charts_rbac(clients: Clients, running: Release) -> None:
    pod = poll(lambda: operator_pod(clients, running), timeout=90, message="the operator pod never ran")
    [watched] = running.watched
    clients.kubectl("apply", "-n", watched, "-f", "-", stdin=json.dumps(SMOKE_PACKAGE))

    def reconciled() -> Manifest | None:
        body = json.loads(
            clients.kubectl("get", "package", "chart-smoke", "-n", watched, "-o", "json").stdout
        )
        return dict(body) if body.get("status", {}).get("conditions") else None

    name = pod["metadata"]["name"]

    def logs() -> str:
        return clients.kubectl("logs", "-n", running.namespace, name, check=False).stdout

    body = poll(
        reconciled, timeout=60, message=lambda: f"the operator never wrote the Package's status:\n{logs()}"
    )
    assert all(
        c["observedGeneration"] == body["metadata"]["generation"] for c in body["status"]["conditions"]
    )

    def posted() -> bool:
        events = clients.kubectl(
            "get",
            "events",
            "-n",
            watched,
            "--field-selector",
            "involvedObject.name=chart-smoke",
            "-o",
            "name",
        )
        return bool(events.stdout.strip())

    poll(posted, timeout=30, message="the operator posted no Event about the Package")

    denials = [
        line
        for line in logs().splitlines()
        if "forbidden" in line.lower() or "not enough permissions" in line.lower()
    ]
    assert denials == []
    # The kubelet probes /healthz on the chart's port, and kopf logs each request it answers.
    poll(
        lambda: any("GET /healthz" in line and " 200 " in line for line in logs().splitlines()),
        timeout=60,
        interval=2,
        message=lambda: f"the liveness probe never succeeded:\n{logs()}",
    )
    status = operator_pod(clients, running)
    assert status is not None
    assert [c.get("restartCount", 0) for c in status["status"]["containerStatuses"]] == [0]
