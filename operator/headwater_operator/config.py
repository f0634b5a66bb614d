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
    # ComputeTask: the largest input object, and how a TaskUpdate is delivered and a `url` service polled.
    compute_max_input_bytes: int = 256 << 20
    callback_attempts: int = 5
    callback_timeout_seconds: float = 10.0
    compute_poll_seconds: float = 5.0
    # Wrapper: where the generator reaches Gemini (a proxy, a compatible gateway); None: the SDK's default.
    gemini_base_url: str | None = None

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
            compute_max_input_bytes=int(os.environ.get("HEADWATER_COMPUTE_MAX_INPUT_BYTES", 256 << 20)),
            callback_attempts=int(os.environ.get("HEADWATER_CALLBACK_ATTEMPTS", 5)),
            callback_timeout_seconds=float(os.environ.get("HEADWATER_CALLBACK_TIMEOUT_SECONDS", 10.0)),
            compute_poll_seconds=float(os.environ.get("HEADWATER_COMPUTE_POLL_SECONDS", 5.0)),
            gemini_base_url=os.environ.get("HEADWATER_GEMINI_BASE_URL") or None,
        )
