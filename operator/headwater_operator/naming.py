"""Deterministic names and the labels every child carries.

A child's name is a pure function of its owner, so an operator restarted at any point finds (and never
duplicates) what it made before.
"""

from __future__ import annotations

import hashlib

from . import __version__

MAX_NAME = 63  # DNS label: Job names end up in the `job-name` label of their pods
GROUP = "headwater.dev"


def child_name(owner: str, *parts: str | int, limit: int = MAX_NAME) -> str:
    """`owner-part-...`, shortened with a stable hash when it would exceed `limit`."""
    name = "-".join([owner, *(str(p) for p in parts)])
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def labels(kind: str, owner: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "headwater",
        "app.kubernetes.io/instance": owner[:63],
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "headwater-operator",
        "app.kubernetes.io/version": __version__,
        label_key(kind): owner,
    }


def label_key(kind: str) -> str:
    """The label naming a child's owner of this kind: `headwater.dev/exportjob=<name>`."""
    return f"{GROUP}/{kind.lower()}"
