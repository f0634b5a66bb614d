"""The Helm chart renders what a platform team expects, and refuses values it does not know.

`helm template` works offline, so these tests need the helm binary but no server. The rendering helpers
here are shared with the RBAC unit tests and the chart's integration tests.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from headwater_localcluster import binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "headwater"
RELEASE = "hw"
NAMESPACE = "headwater-system"
Manifest = dict[str, Any]

# Kinds the chart renders with its default values.
DEFAULT_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "ClusterKopfPeering",
}
CLUSTER_SCOPED_KINDS = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}


def helm_path() -> Path:
    path = binaries.bin_dir() / "helm"
    if not path.is_file():
        pytest.skip("helm is not built yet: run `make cluster-bin`")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; with `check`, a non-zero exit fails the test showing helm's own message."""
    result = subprocess.run([str(helm_path()), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def value_flags(values: Mapping[str, Any]) -> list[str]:
    """`--set-json` flags for top-level keys; nested keys are written `a.b` as with `--set`."""
    return [flag for key, value in values.items() for flag in ("--set-json", f"{key}={json.dumps(value)}")]


def template_args(
    values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE, release: str = RELEASE
) -> list[str]:
    # The kube version is explicit: a helm built without release ldflags assumes Kubernetes 1.20, which
    # the chart's kubeVersion constraint refuses.
    return [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        binaries.KUBERNETES_VERSION,
        *value_flags(values or {}),
    ]


def render_text(
    values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE, release: str = RELEASE
) -> str:
    return helm(*template_args(values, namespace, release)).stdout


def render(
    values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE, release: str = RELEASE
) -> list[Manifest]:
    """The manifests `helm template` renders for these values, in order."""
    return [doc for doc in yaml.safe_load_all(render_text(values, namespace, release)) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def operator_container(manifests: list[Manifest]) -> Manifest:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


def env_of(container: Manifest) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """Every pod spec the chart renders, directly or in a workload template."""
    for manifest in manifests:
        spec = manifest.get("spec", {})
        if manifest["kind"] == "Pod":
            yield manifest["metadata"]["name"], spec
        elif "template" in spec and "spec" in spec["template"]:
            yield manifest["metadata"]["name"], spec["template"]["spec"]
        elif "jobTemplate" in spec:
            yield manifest["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]


# -- lint and schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_chart_lints(strict: bool) -> None:
    flags = ["--strict"] if strict else []
    result = helm("lint", str(CHART), "--kube-version", binaries.KUBERNETES_VERSION, *flags)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("replica=2", "'replica'"),
        ("operator.imag.tag=x", "'imag'"),
        ("worker.image.pulPolicy=Always", "'pulPolicy'"),
        ("metrics.serviceMonitor.enable=true", "'enable'"),
        ("serviceacount.create=false", "'serviceacount'"),
        ("gateway.unauthenticatd=true", "'unauthenticatd'"),
    ],
)
def test_a_values_typo_fails_naming_the_key(flag: str, named: str) -> None:
    result = helm(*template_args(), "--set", flag, check=False)
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("logFormat=xml", "/logFormat"),
        ("replicas=0", "/replicas"),
        ("operator.image.pullPolicy=Sometimes", "/operator/image/pullPolicy"),
        ("watchNamespaces[0]=Not_A_Namespace", "/watchNamespaces/0"),
        ("metrics.port=80", "/metrics/port"),
        ("gateway.actAs=no-colon", "/gateway/actAs"),
    ],
)
def test_a_wrong_value_fails_naming_its_path(flag: str, named: str) -> None:
    result = helm(*template_args(), "--set", flag, check=False)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_health_and_metrics_ports_must_differ() -> None:
    result = helm(*template_args(), "--set", "metrics.port=8080", check=False)
    assert result.returncode != 0
    assert "operator.healthPort and metrics.port must differ" in result.stderr
    container = operator_container(render({"operator.healthPort": 8081, "metrics.port": 9091}))
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"health": 8081, "metrics": 9091}
    assert {"--health-port=8081", "--metrics-port=9091"} <= set(container["args"])


def _object_schemas(node: Any, path: str) -> Iterator[tuple[str, Manifest]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, child in node.get("properties", {}).items():
            yield from _object_schemas(child, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            yield from _object_schemas(node["items"], f"{path}[]")


# Objects whose shape is a Kubernetes type (or, for `global`, a parent chart's): passed through as given.
PASSTHROUGH = {
    "/global",
    "/operator/extraEnv[]/valueFrom",
    "/gateway/extraEnv[]/valueFrom",
    "/affinity/nodeAffinity",
    "/affinity/podAffinity",
    "/affinity/podAntiAffinity",
    "/topologySpreadConstraints[]",
}


def test_schema_closes_every_object_of_the_charts_own_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = [
        path
        for path, node in _object_schemas(schema, "")
        if path not in PASSTHROUGH and node.get("additionalProperties", True) is True
    ]
    assert open_objects == []


def test_schema_describes_every_value_in_values_yaml() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(value: Any, node: Manifest, path: str) -> None:
        assert "description" in node or path == "", f"{path} has no description in the schema"
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}/{key} is not in the schema"
                check(child, node["properties"][key], f"{path}/{key}")

    check(values, schema, "")


# -- what renders --------------------------------------------------------------------------------


def test_defaults_render_the_operator_with_peering_and_two_replicas() -> None:
    manifests = render()
    assert {m["kind"] for m in manifests} == DEFAULT_KINDS
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = operator_container(manifests)
    assert container["image"] == "ghcr.io/headwater-dev/headwater-operator:0.1.0"
    assert container["command"] == ["headwater-operator"]
    assert "--peering=headwater" in container["args"]
    assert "--standalone" not in container["args"]
    assert "--log-format=json" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--namespace")]
    peering = one(manifests, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "headwater"
    assert one(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_operator_environment_names_the_worker_image_and_the_pod() -> None:
    env = env_of(operator_container(render()))
    assert env["HEADWATER_WORKER_IMAGE"] == "ghcr.io/headwater-dev/headwater-worker:0.1.0"
    assert env["HEADWATER_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "HEADWATER_IMAGE_PULL_SECRETS" not in env


def test_the_gemini_base_url_reaches_the_operator_only_when_set() -> None:
    assert "HEADWATER_GEMINI_BASE_URL" not in env_of(operator_container(render()))
    values = {"wrapper": {"gemini": {"baseUrl": "https://gemini-proxy.internal:8443"}}}
    env = env_of(operator_container(render(values)))
    assert env["HEADWATER_GEMINI_BASE_URL"] == "https://gemini-proxy.internal:8443"
    refused = helm(*template_args({"wrapper": {"gemini": {"baseUrl": "gemini-proxy"}}}), check=False)
    assert refused.returncode != 0
    assert "wrapper.gemini.baseUrl" in refused.stderr or "/wrapper/gemini/baseUrl" in refused.stderr


def test_images_follow_the_values() -> None:
    manifests = render(
        {
            "operator.image": {
                "repository": "registry.example/hw/operator",
                "tag": "1.2.3",
                "pullPolicy": "Always",
                "pullSecrets": ["regcred"],
            },
            "worker.image": {
                "repository": "registry.example/hw/worker",
                "tag": "1.2.4",
                "pullPolicy": "Never",
                "pullSecrets": ["a", "b"],
            },
        }
    )
    container = operator_container(manifests)
    assert container["image"] == "registry.example/hw/operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    env = env_of(container)
    assert env["HEADWATER_WORKER_IMAGE"] == "registry.example/hw/worker:1.2.4"
    assert env["HEADWATER_IMAGE_PULL_POLICY"] == "Never"
    assert env["HEADWATER_IMAGE_PULL_SECRETS"] == "a,b"


def test_probe_ports_and_tmp() -> None:
    manifests = render()
    container = operator_container(manifests)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert "--health-port=8080" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert ports[probe["port"]] == 8080
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    volumes = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in volumes)
    service = one(manifests, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_replicas_spread_softly_across_nodes() -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    spread = pod["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
        ("kubernetes.io/hostname", "ScheduleAnyway")
    ]
    anti = pod["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )


def test_one_replica_runs_standalone_and_never_overlaps() -> None:
    manifests = render({"replicas": 1})
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = operator_container(manifests)["args"]
    assert "--standalone" in args
    assert not [a for a in args if a.startswith("--peering")]
    assert of_kind(manifests, "PodDisruptionBudget") == []
    pod = deployment["spec"]["template"]["spec"]
    assert "affinity" not in pod
    assert "topologySpreadConstraints" not in pod


def test_watch_namespaces_render_namespaced_peering_and_flags() -> None:
    manifests = render({"watchNamespaces": ["a", "b"]})
    args = operator_container(manifests)["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]
    assert of_kind(manifests, "ClusterKopfPeering") == []
    peerings = of_kind(manifests, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("a", "headwater"),
        ("b", "headwater"),
    ]


def test_service_monitor_only_when_enabled() -> None:
    assert of_kind(render(), "ServiceMonitor") == []
    manifests = render(
        {"metrics.serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"team": "x"}}}
    )
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["team"] == "x"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    service = one(manifests, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_scheduling_values_reach_the_pod() -> None:
    manifests = render(
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
            ],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
            "podAnnotations": {"example.com/scrape": "yes"},
            "podLabels": {"team": "data"},
            "priorityClassName": "system-cluster-critical",
            "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "1Gi"}},
        }
    )
    template = one(manifests, "Deployment")["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["affinity"] == {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert template["metadata"]["annotations"] == {"example.com/scrape": "yes"}
    assert template["metadata"]["labels"]["team"] == "data"
    # Helm merges maps with the defaults: the default memory request stays.
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "192Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_every_object_is_labelled_and_namespaced_objects_name_their_namespace() -> None:
    for values in (
        {},
        {"watchNamespaces": ["a", "b"]},
        {"metrics.serviceMonitor": {"enabled": True}},
        {"gateway": {"enabled": True}},
    ):
        for manifest in render(values):
            labels = manifest["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "headwater"
            assert labels["app.kubernetes.io/instance"] == RELEASE
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/version"] == "0.1.0"
            assert labels["helm.sh/chart"] == "headwater-0.1.0"
            if manifest["kind"] in CLUSTER_SCOPED_KINDS:
                assert "namespace" not in manifest["metadata"]
            else:
                assert manifest["metadata"]["namespace"], manifest["kind"]


def test_selector_matches_the_pod_and_only_operator_pods() -> None:
    deployment = one(render(), "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "operator"
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_existing_service_account_must_be_named() -> None:
    result = helm(*template_args(), "--set", "serviceAccount.create=false", check=False)
    assert result.returncode != 0
    assert "serviceAccount.name is required" in result.stderr
    manifests = render({"serviceAccount": {"create": False, "name": "ops-operator"}})
    assert of_kind(manifests, "ServiceAccount") == []
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-operator"
    assert one(manifests, "ClusterRoleBinding")["subjects"][0]["name"] == "ops-operator"


# -- restricted Pod Security Standard (statically; the integration tests ask the API server) ------------


@pytest.mark.parametrize(
    "values",
    [{}, {"replicas": 1}, {"watchNamespaces": ["a"]}, {"gateway.enabled": True}],
    ids=["default", "one", "ns", "gateway"],
)
def test_pods_meet_the_restricted_pod_security_standard(values: Mapping[str, Any]) -> None:
    specs = list(pod_specs(render(values)))
    assert specs, "no workload rendered"
    for name, pod in specs:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] == 65532, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(field), name
        for volume in pod.get("volumes", []):
            assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected", "downwardAPI"}
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security.get("privileged", False) is False
            assert security["runAsNonRoot"] is True
            assert all("hostPort" not in port for port in container.get("ports", []))
