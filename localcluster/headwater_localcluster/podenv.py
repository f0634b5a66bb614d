"""A container's environment and command line, resolved as a kubelet resolves them (pure functions).

- `$(VAR)` references in `env[].value`, `command` and `args` expand to variables defined before them;
  `$$` is an escaped `$`, and references to undefined variables stay as they are.
- `envFrom` sources come first, then `env` in order; a later definition wins.
- A missing Secret, ConfigMap or key that is not `optional` is a `ContainerConfigError`, which the node
  reports as the waiting reason `CreateContainerConfigError` and retries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from .control_plane import NODE_NAME

Json = dict[str, Any]

HOST_IP = "127.0.0.1"


class ContainerConfigError(Exception):
    """The container cannot be configured yet (a referenced object or key is missing)."""


class ObjectSource(Protocol):
    """Where Secrets and ConfigMaps come from; None means the object does not exist."""

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None: ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


# -- $(VAR) expansion ------------------------------------------------------------------------------


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand `$(NAME)` from `variables`; `$$` gives `$`; unknown names and unclosed `$(` stay literal."""
    out: list[str] = []
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if char != "$" or i + 1 >= length:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            out.append(variables.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


# -- quantities ------------------------------------------------------------------------------------

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (`500m`, `2Gi`, `1e3`) as a number."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"invalid quantity {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as error:
        raise ValueError(f"invalid quantity {text!r}") from error


# -- downward API ------------------------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.+)'\]$")


def _format_map(values: Mapping[str, str]) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for k, v in values.items()}
    return "\n".join(f'{key}="{escaped[key]}"' for key in sorted(escaped))


def field_value(pod: Json, field_path: str) -> str:
    """The value of a downward API `fieldRef.fieldPath`."""
    metadata: Json = pod.get("metadata", {})
    spec: Json = pod.get("spec", {})
    status: Json = pod.get("status", {})
    subscript = _SUBSCRIPT.match(field_path)
    if subscript:
        section = "labels" if subscript.group(1).endswith("labels") else "annotations"
        return str((metadata.get(section) or {}).get(subscript.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName") or NODE_NAME,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": status.get("hostIP") or HOST_IP,
        "status.hostIPs": status.get("hostIP") or HOST_IP,
        "status.podIP": status.get("podIP") or HOST_IP,
        "status.podIPs": status.get("podIP") or HOST_IP,
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    if field_path == "metadata.labels":
        return _format_map(metadata.get("labels") or {})
    if field_path == "metadata.annotations":
        return _format_map(metadata.get("annotations") or {})
    raise ContainerConfigError(f"unsupported fieldRef.fieldPath {field_path!r}")


def resource_value(pod: Json, container_name: str, ref: Json, node_allocatable: Mapping[str, str]) -> str:
    """The value of a `resourceFieldRef`: the container's limit (or request), else the node's allocatable."""
    name = ref.get("containerName") or container_name
    resource = str(ref.get("resource", ""))
    kind, _, what = resource.partition(".")
    containers = [*pod.get("spec", {}).get("containers", []), *pod.get("spec", {}).get("initContainers", [])]
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None or kind not in ("limits", "requests") or not what:
        raise ContainerConfigError(f"unsupported resourceFieldRef {resource!r} of container {name!r}")
    declared = (container.get("resources") or {}).get(kind) or {}
    raw = declared.get(what)
    if raw is None:
        raw = node_allocatable.get(what, "0") if kind == "limits" else "0"
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        raise ContainerConfigError(f"resourceFieldRef {resource!r} has a zero divisor")
    return str(math.ceil(parse_quantity(str(raw)) / divisor))


# -- environment -------------------------------------------------------------------------------------


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _key_ref(namespace: str, ref: Json, source: ObjectSource, *, secret: bool) -> str | None:
    name = str(ref.get("name", ""))
    key = str(ref.get("key", ""))
    optional = bool(ref.get("optional", False))
    kind = "secret" if secret else "configmap"
    values: Mapping[str, str] | None
    if secret:
        raw = source.secret(namespace, name)
        values = None if raw is None else {k: _decode(v) for k, v in raw.items()}
    else:
        values = source.config_map(namespace, name)
    if values is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{name}" not found')
    if key not in values:
        if optional:
            return None
        label = "Secret" if secret else "ConfigMap"
        raise ContainerConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
    return values[key]


def _env_from(namespace: str, entry: Json, source: ObjectSource) -> dict[str, str]:
    prefix = str(entry.get("prefix") or "")
    if "secretRef" in entry:
        ref: Json = entry["secretRef"] or {}
        raw = source.secret(namespace, str(ref.get("name", "")))
        values = None if raw is None else {k: _decode(v) for k, v in raw.items()}
        kind = "secret"
    else:
        ref = entry.get("configMapRef") or {}
        config_map = source.config_map(namespace, str(ref.get("name", "")))
        values = None if config_map is None else dict(config_map)
        kind = "configmap"
    if values is None:
        if ref.get("optional", False):
            return {}
        raise ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
    # Names with "=" cannot be environment variables; the kubelet skips them the same way.
    return {prefix + key: value for key, value in values.items() if "=" not in prefix + key}


def resolve_env(
    pod: Json,
    container: Json,
    source: ObjectSource,
    service_env: Mapping[str, str],
    node_allocatable: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a container declares (`envFrom`, then `env`), on top of `service_env`."""
    namespace = str(pod.get("metadata", {}).get("namespace", "default"))
    env: dict[str, str] = dict(service_env)
    for entry in container.get("envFrom") or []:
        env.update(_env_from(namespace, entry, source))
    for var in container.get("env") or []:
        name = str(var["name"])
        value_from: Json | None = var.get("valueFrom")
        if not value_from:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        resolved: str | None
        if "secretKeyRef" in value_from:
            resolved = _key_ref(namespace, value_from["secretKeyRef"], source, secret=True)
        elif "configMapKeyRef" in value_from:
            resolved = _key_ref(namespace, value_from["configMapKeyRef"], source, secret=False)
        elif "fieldRef" in value_from:
            resolved = field_value(pod, str(value_from["fieldRef"].get("fieldPath", "")))
        elif "resourceFieldRef" in value_from:
            resolved = resource_value(
                pod, str(container.get("name", "")), value_from["resourceFieldRef"], node_allocatable or {}
            )
        else:
            raise ContainerConfigError(f"unsupported valueFrom for {name}: {sorted(value_from)}")
        if resolved is not None:
            env[name] = resolved
    return env


def command_line(container: Json, env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded.

    There are no images, hence no ENTRYPOINT or CMD: without `command`, `args` is the whole command line.
    """
    command = [expand(str(part), env) for part in container.get("command") or []]
    args = [expand(str(part), env) for part in container.get("args") or []]
    return command + args
