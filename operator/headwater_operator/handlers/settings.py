"""How kopf itself behaves: where it keeps its bookkeeping, what it posts, how it retries."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import kube
from .storage import LastHandledInMemory, ProgressInMemory


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's bookkeeping stays in this process: `.status` stays exactly what the CRD schema describes,
    # `.spec` is never touched (GitOps tools see no drift), and handling a change costs no extra write.
    settings.persistence.progress_storage = ProgressInMemory()
    settings.persistence.diffbase_storage = LastHandledInMemory()
    # Events are posted explicitly on each transition; kopf's own per-handler chatter stays in the logs.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30


@kopf.on.cleanup()
async def close_api_session(**_: Any) -> None:
    await kube.close()
