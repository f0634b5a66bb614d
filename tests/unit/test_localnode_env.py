"""The local node's environment and command line resolution: `$(VAR)` expansion, valueFrom, envFrom."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from headwater_localcluster.podenv import (
    ContainerConfigError,
    command_line,
    expand,
    field_value,
    parse_quantity,
    resolve_env,
    resource_value,
)
from headwater_localcluster.podworker import image_env

Json = dict[str, Any]


class FakeObjects:
    def __init__(self, secrets: dict[str, dict[str, bytes]], config_maps: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets
        self.config_maps = config_maps

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get(f"{namespace}/{name}")

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get(f"{namespace}/{name}")


OBJECTS = FakeObjects(
    {"ns/creds": {"user": b"alice", "password": b"s3cret"}},
    {"ns/settings": {"mode": "fast", "level": "3"}},
)

POD: Json = {
    "metadata": {
        "name": "web-1",
        "namespace": "ns",
        "uid": "1234",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {
        "nodeName": "localnode",
        "serviceAccountName": "runner",
        "containers": [
            {"name": "main", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
        ],
    },
    "status": {"podIP": "127.0.0.1"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1y2z"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("a$", "a$"),
        ("$", "$"),
        ("$()", "$()"),
        ("no refs", "no refs"),
        ("$(A)$(A)", "11"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_env_values_expand_earlier_variables_only() -> None:
    container: Json = {
        "env": [
            {"name": "FIRST", "value": "one"},
            {"name": "SECOND", "value": "$(FIRST)-two-$(THIRD)"},
            {"name": "THIRD", "value": "three"},
        ]
    }
    env = resolve_env(POD, container, OBJECTS, {})
    assert env["SECOND"] == "one-two-$(THIRD)"


def test_value_from_sources() -> None:
    container: Json = {
        "name": "main",
        "env": [
            {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
    }
    env = resolve_env(POD, container, OBJECTS, {"KUBERNETES_SERVICE_HOST": "127.0.0.1"})
    assert env == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "USER": "alice",
        "MODE": "fast",
        "POD": "web-1",
        "NS": "ns",
        "UID": "1234",
        "APP": "web",
        "NODE": "localnode",
        "SA": "runner",
        "IP": "127.0.0.1",
        "CPU": "500",
        "MEM": "64",
    }


def test_env_from_with_prefix_then_env_wins() -> None:
    container: Json = {
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        "env": [{"name": "user", "value": "override"}],
    }
    env = resolve_env(POD, container, OBJECTS, {})
    assert env == {"CFG_mode": "fast", "CFG_level": "3", "user": "override", "password": "s3cret"}


def test_optional_references_are_skipped() -> None:
    container: Json = {
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
            {
                "name": "B",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}},
            },
        ]
    }
    assert resolve_env(POD, container, OBJECTS, {}) == {}


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ({"secretKeyRef": {"name": "absent", "key": "k"}}, 'secret "absent" not found'),
        ({"secretKeyRef": {"name": "creds", "key": "nope"}}, "couldn't find key nope in Secret ns/creds"),
        ({"configMapKeyRef": {"name": "absent", "key": "k"}}, 'configmap "absent" not found'),
        (
            {"configMapKeyRef": {"name": "settings", "key": "x"}},
            "couldn't find key x in ConfigMap ns/settings",
        ),
        ({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldRef"),
    ],
)
def test_missing_references_are_config_errors(var: Json, message: str) -> None:
    container: Json = {"env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ContainerConfigError, match=message.replace("(", r"\(")):
        resolve_env(POD, container, OBJECTS, {})


def test_command_line_expands_command_and_args() -> None:
    container: Json = {
        "command": ["python", "-m", "$(MOD)"],
        "args": ["--mode=$(MODE)", "$$(MODE)", "$(NONE)"],
    }
    assert command_line(container, {"MOD": "headwater_worker", "MODE": "fast"}) == [
        "python",
        "-m",
        "headwater_worker",
        "--mode=fast",
        "$(MODE)",
        "$(NONE)",
    ]


def test_args_alone_are_the_command_line() -> None:
    assert command_line({"args": ["python", "-V"]}, {}) == ["python", "-V"]


def test_field_value_maps_are_formatted_like_the_downward_api() -> None:
    assert field_value(POD, "metadata.labels") == 'app="web"\ntier="front"'
    assert field_value(POD, "metadata.annotations") == 'note="say \\"hi\\""'
    assert field_value(POD, "metadata.annotations['missing']") == ""


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("2Gi", Decimal(2 * 2**30)),
        ("1k", Decimal(1000)),
        ("1e3", Decimal(1000)),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_resource_value_defaults_to_node_allocatable() -> None:
    ref = {"resource": "limits.cpu"}
    pod: Json = {"spec": {"containers": [{"name": "c"}]}}
    assert resource_value(pod, "c", ref, {"cpu": "4"}) == "4"
    assert resource_value(POD, "main", {"resource": "limits.cpu"}, {"cpu": "4"}) == "1"  # ceil(0.5)
    assert resource_value(pod, "c", {"resource": "requests.memory"}, {}) == "0"


def test_the_image_imports_what_the_node_imports_from_absolute_folders_only() -> None:
    env = image_env(
        Path("/venv/bin"), {"PYTHONPATH": "/checkout/worker:worker:/checkout/operator", "HOME": "/h"}
    )
    assert env["PATH"].startswith("/venv/bin:")
    assert env["PYTHONPATH"] == "/checkout/worker:/checkout/operator"
    assert "PYTHONPATH" not in image_env(Path("/venv/bin"), {"PYTHONPATH": "worker:."})
    assert "PYTHONPATH" not in image_env(Path("/venv/bin"), {})
