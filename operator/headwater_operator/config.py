"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import __version__

DEFAULT_WORKER_IMAGE = f"ghcr.io/headwater-dev/headwater-worker:{__version__}"


@dataclass(frozen=True)
class OperatorConfig:
    worker_image: str = DEFAULT_WORKER_IMAGE
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(
            worker_image=os.environ.get("HEADWATER_WORKER_IMAGE", DEFAULT_WORKER_IMAGE),
            image_pull_policy=os.environ.get("HEADWATER_IMAGE_PULL_POLICY", "IfNotPresent"),
            image_pull_secrets=tuple(
                name.strip()
                for name in os.environ.get("HEADWATER_IMAGE_PULL_SECRETS", "").split(",")
                if name.strip()
            ),
        )
