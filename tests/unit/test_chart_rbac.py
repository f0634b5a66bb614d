"""The operator's RBAC is exactly what it needs: every rule is accounted for, and nothing else is granted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from tests.unit.test_chart_render import NAMESPACE, Manifest, of_kind, one, render

Permission = tuple[str, str, str]  # (API group, resource, verb)

READ = ("get", "list", "watch")
MANAGE = (*READ, "create", "patch", "delete")
HEADWATER_KINDS = ("wrappers", "connectors", "computetasks", "packages", "exportjobs")
RBAC = "rbac.authorization.k8s.io"


def grants(group: str, resources: Iterable[str], verbs: Iterable[str]) -> set[Permission]:
    return {(group, resource, verb) for resource in resources for verb in verbs}


def namespaced_permissions(peering: str) -> set[Permission]:
    return (
        grants("headwater.dev", HEADWATER_KINDS, (*READ, "patch"))
        | grants("headwater.dev", [f"{kind}/status" for kind in HEADWATER_KINDS], ("get", "patch", "update"))
        | grants("kopf.dev", [peering], (*READ, "patch"))
        | grants("batch", ["jobs", "cronjobs"], MANAGE)
        | grants("apps", ["deployments"], MANAGE)
        | grants("", ["pods", "persistentvolumeclaims"], READ)
        | grants("", ["configmaps"], MANAGE)
        | grants("", ["serviceaccounts"], ("get", "create"))
        | grants(RBAC, ["roles", "rolebindings"], MANAGE)
        # A Wrapper's pods run untrusted code: their egress is limited by a NetworkPolicy the operator owns.
        | grants("networking.k8s.io", ["networkpolicies"], ("get", "create", "patch", "delete"))
        | grants("", ["events"], ("create", "patch"))
        | grants("events.k8s.io", ["events"], ("create", "patch"))
    )


# kopf reads CRDs to discover what it serves, and namespaces to follow the ones it serves.
DISCOVERY = grants("apiextensions.k8s.io", ["customresourcedefinitions"], READ) | grants(
    "", ["namespaces"], READ
)
CLUSTER_WIDE = namespaced_permissions("clusterkopfpeerings") | DISCOVERY
PER_NAMESPACE = namespaced_permissions("kopfpeerings")


def permissions(role: Manifest) -> set[Permission]:
    found: set[Permission] = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            found |= grants(group, rule["resources"], rule["verbs"])
    return found


def roles(manifests: list[Manifest]) -> list[Manifest]:
    return of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")


RENDERINGS: list[dict[str, Any]] = [{}, {"watchNamespaces": ["a", "b"]}, {"replicas": 1}]
IDS = ["cluster-wide", "namespaced", "standalone"]


@pytest.mark.parametrize("values", RENDERINGS, ids=IDS)
def test_no_wildcards_anywhere(values: dict[str, Any]) -> None:
    for role in roles(render(values)):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
                assert not any("*" in item for item in rule[field]), (role["metadata"]["name"], rule)


@pytest.mark.parametrize("values", RENDERINGS, ids=IDS)
def test_no_access_to_secrets(values: dict[str, Any]) -> None:
    for role in roles(render(values)):
        assert not [p for p in permissions(role) if p[1].split("/")[0] == "secrets"], role["metadata"]["name"]


@pytest.mark.parametrize("values", RENDERINGS, ids=IDS)
def test_no_privilege_escalation_verbs_or_cluster_wide_rbac(values: dict[str, Any]) -> None:
    for role in roles(render(values)):
        for group, resource, verb in permissions(role):
            assert verb not in {"escalate", "bind", "impersonate", "approve", "sign"}
            assert group not in {"certificates.k8s.io", "admissionregistration.k8s.io"}
            # Namespaced Roles and bindings only, which RBAC lets it fill with what it holds itself.
            assert group != RBAC or resource in {"roles", "rolebindings"}
            assert (group, resource) != ("", "pods") or verb in READ, "pods are made only by Jobs"
            assert not (group == "apiextensions.k8s.io" and verb not in READ), "CRDs are read-only"
            assert resource not in {"pods/exec", "pods/attach", "pods/portforward", "nodes", "nodes/proxy"}


def test_cluster_wide_grants_exactly_what_the_operator_needs() -> None:
    manifests = render()
    assert of_kind(manifests, "Role") == []
    role = one(manifests, "ClusterRole")
    assert permissions(role) == CLUSTER_WIDE
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = one(manifests, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]


def test_watch_namespaces_grant_per_namespace_and_only_reads_cluster_wide() -> None:
    manifests = render({"watchNamespaces": ["a", "b"]})
    cluster_role = one(manifests, "ClusterRole")
    assert permissions(cluster_role) == DISCOVERY
    cluster_binding = one(manifests, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]

    per_namespace = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in per_namespace) == ["a", "b"]
    for role in per_namespace:
        assert permissions(role) == PER_NAMESPACE
    bindings = of_kind(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b"]
    account = one(manifests, "ServiceAccount")["metadata"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
        ]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    manifests = render({"rbac": {"create": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert of_kind(manifests, kind) == []
