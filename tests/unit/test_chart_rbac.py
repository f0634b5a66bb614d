"""The operator's and the gateway's RBAC are exactly what each needs: every rule is accounted for, and
nothing else is granted."""

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


def roles(manifests: list[Manifest], component: str | None = None) -> list[Manifest]:
    found = of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
    return [r for r in found if component in (None, r["metadata"]["labels"]["app.kubernetes.io/component"])]


GATEWAY = {"gateway.enabled": True}
UNAUTHENTICATED_GATEWAY = {**GATEWAY, "gateway.unauthenticated": True, "gateway.actAs": "core:engine"}
RENDERINGS: list[dict[str, Any]] = [
    {},
    {"watchNamespaces": ["a", "b"]},
    {"replicas": 1},
    GATEWAY,
    UNAUTHENTICATED_GATEWAY,
]
IDS = ["cluster-wide", "namespaced", "standalone", "gateway", "unauthenticated-gateway"]


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
        granted = [r for rule in role["rules"] for r in rule["resources"] if r.split("/")[0] == "secrets"]
        assert not granted, role["metadata"]["name"]


@pytest.mark.parametrize("values", RENDERINGS, ids=IDS)
def test_no_privilege_escalation_verbs_or_cluster_wide_rbac(values: dict[str, Any]) -> None:
    for role in roles(render(values), "operator"):
        for group, resource, verb in permissions(role):
            assert verb not in {"escalate", "bind", "impersonate", "approve", "sign"}
            assert group not in {"certificates.k8s.io", "admissionregistration.k8s.io"}
            # Namespaced Roles and bindings only, which RBAC lets it fill with what it holds itself.
            assert group != RBAC or resource in {"roles", "rolebindings"}
            assert (group, resource) != ("", "pods") or verb in READ, "pods are made only by Jobs"
            assert not (group == "apiextensions.k8s.io" and verb not in READ), "CRDs are read-only"
            assert resource not in {"pods/exec", "pods/attach", "pods/portforward", "nodes", "nodes/proxy"}


@pytest.mark.parametrize("values", [{}, GATEWAY], ids=["alone", "with-gateway"])
def test_cluster_wide_grants_exactly_what_the_operator_needs(values: dict[str, Any]) -> None:
    manifests = [
        m for m in render(values) if m["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
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


# -- the gateway ------------------------------------------------------------------------------------

SERVICE_ACCOUNT_EXTRAS = [
    f"authentication.kubernetes.io/{key}"
    for key in ("credential-id", "node-name", "node-uid", "pod-name", "pod-uid")
]


def gateway_permissions(extras: Iterable[str]) -> set[Permission]:
    """Reviewing tokens, and acting as whoever presented one: users, groups and ServiceAccounts cannot be
    narrowed by name; user extras are named one by one (RBAC has no wildcard for them)."""
    return (
        grants("authentication.k8s.io", ["tokenreviews"], ["create"])
        | grants("", ["users", "groups", "serviceaccounts"], ["impersonate"])
        | grants("authentication.k8s.io", [f"userextras/{key}" for key in extras], ["impersonate"])
    )


def gateway_account(manifests: list[Manifest]) -> Manifest:
    [account] = [
        m
        for m in of_kind(manifests, "ServiceAccount")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    return account


@pytest.mark.parametrize(
    ("values", "extras"),
    [({}, SERVICE_ACCOUNT_EXTRAS), ({"gateway.impersonatedExtras": ["scopes"]}, ["scopes"])],
    ids=["default-extras", "own-extras"],
)
def test_the_gateway_may_only_review_tokens_and_impersonate(
    values: dict[str, Any], extras: list[str]
) -> None:
    manifests = render({**GATEWAY, **values})
    [role] = roles(manifests, "gateway")
    assert role["kind"] == "ClusterRole"
    assert permissions(role) == gateway_permissions(extras)
    [binding] = [
        b
        for b in of_kind(manifests, "ClusterRoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    account = gateway_account(manifests)["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]
    assert of_kind(manifests, "RoleBinding") == []


def test_an_unauthenticated_gateway_may_only_act_as_its_one_service_account() -> None:
    manifests = render(UNAUTHENTICATED_GATEWAY)
    [role] = roles(manifests, "gateway")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "core"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "resourceNames": ["engine"],
            "verbs": ["impersonate"],
        }
    ]
    [binding] = [
        b
        for b in of_kind(manifests, "RoleBinding")
        if b["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    assert binding["metadata"]["namespace"] == "core"
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": role["metadata"]["name"]}
    account = gateway_account(manifests)["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]
