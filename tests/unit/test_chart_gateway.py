"""The chart's gateway: off by default; when on, a Deployment, Service and ServiceAccount of its own, its
settings from the values, probes on /livez and /readyz, and pods apart from the operator's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_chart_render import (
    NAMESPACE,
    Manifest,
    env_of,
    helm,
    of_kind,
    render,
    template_args,
)

ENABLED = {"gateway.enabled": True}


def gateway_objects(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [
        m
        for m in of_kind(manifests, kind)
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]


def only_gateway(manifests: list[Manifest], kind: str) -> Manifest:
    [found] = gateway_objects(manifests, kind)
    return found


def gateway_container(manifests: list[Manifest]) -> Manifest:
    [container] = only_gateway(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "gateway"
    return dict(container)


def test_the_gateway_is_off_by_default() -> None:
    manifests = render()
    assert not [m for m in manifests if m["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"]


def test_the_gateway_renders_its_deployment_service_and_account() -> None:
    manifests = render(ENABLED)
    deployment = only_gateway(manifests, "Deployment")
    assert deployment["metadata"]["name"] == "hw-headwater-gateway"
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    account = only_gateway(manifests, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "hw-headwater-gateway"
    container = gateway_container(manifests)
    assert container["image"] == "ghcr.io/headwater-dev/headwater-gateway:0.1.0"
    assert container["command"] == ["headwater-gateway"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = only_gateway(manifests, "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # The operator's Deployment and metrics Service select only the operator's pods.
    operator = next(d for d in of_kind(manifests, "Deployment") if d is not deployment)
    assert not operator["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    metrics = next(s for s in of_kind(manifests, "Service") if s is not service)
    assert not metrics["spec"]["selector"].items() <= pod_labels.items()


def test_the_gateway_environment_follows_the_values() -> None:
    env = env_of(gateway_container(render(ENABLED)))
    assert env == {
        "HEADWATER_GATEWAY_PORT": "8000",
        "HEADWATER_GATEWAY_NAMESPACE": NAMESPACE,
        "HEADWATER_GATEWAY_DEFAULT_SERVICE": "",
        "HEADWATER_GATEWAY_UNAUTHENTICATED": "false",
        "HEADWATER_GATEWAY_SERVICE_ACCOUNT": "",
        "HEADWATER_GATEWAY_IMPERSONATED_EXTRAS": ",".join(
            f"authentication.kubernetes.io/{key}"
            for key in ("credential-id", "node-name", "node-uid", "pod-name", "pod-uid")
        ),
        "HEADWATER_GATEWAY_TOKEN_AUDIENCES": "",
        "HEADWATER_GATEWAY_LOG_FORMAT": "json",
    }
    values: dict[str, Any] = {
        "gateway": {
            "enabled": True,
            "namespace": "compute",
            "defaultService": "image-rotate",
            "unauthenticated": True,
            "actAs": "core:engine",
            "impersonatedExtras": ["scopes"],
            "tokenAudiences": ["headwater", "api"],
            "port": 8080,
            "image": {
                "repository": "registry.example/gw",
                "tag": "2.0",
                "pullPolicy": "Always",
                "pullSecrets": [],
            },
            "extraEnv": [{"name": "HEADWATER_GATEWAY_LOG_LEVEL", "value": "debug"}],
        },
        "logFormat": "plain",
    }
    manifests = render(values)
    container = gateway_container(manifests)
    env = env_of(container)
    assert env["HEADWATER_GATEWAY_NAMESPACE"] == "compute"
    assert env["HEADWATER_GATEWAY_DEFAULT_SERVICE"] == "image-rotate"
    assert env["HEADWATER_GATEWAY_UNAUTHENTICATED"] == "true"
    assert env["HEADWATER_GATEWAY_SERVICE_ACCOUNT"] == "core:engine"
    assert env["HEADWATER_GATEWAY_IMPERSONATED_EXTRAS"] == "scopes"
    assert env["HEADWATER_GATEWAY_TOKEN_AUDIENCES"] == "headwater,api"
    assert env["HEADWATER_GATEWAY_PORT"] == "8080"
    assert env["HEADWATER_GATEWAY_LOG_FORMAT"] == "plain"
    assert env["HEADWATER_GATEWAY_LOG_LEVEL"] == "debug"
    assert container["image"] == "registry.example/gw:2.0"
    assert container["ports"][0]["containerPort"] == 8080


def test_unauthenticated_mode_needs_the_account_to_act_as() -> None:
    result = helm(*template_args({"gateway": {"enabled": True, "unauthenticated": True}}), check=False)
    assert result.returncode != 0
    assert "gateway.actAs" in result.stderr


@pytest.mark.parametrize("values", [{}, {"gateway.unauthenticated": True, "gateway.actAs": "core:engine"}])
def test_the_gateway_settings_the_chart_renders_are_ones_the_gateway_accepts(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater_gateway.settings import GatewaySettings

    for name, value in env_of(gateway_container(render({**ENABLED, **values}))).items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()
    assert settings.namespace == NAMESPACE
    assert settings.default_service is None
    assert settings.unauthenticated is bool(values)
