"""How kopf itself behaves: where it keeps its bookkeeping, what it posts, how it retries."""

from __future__ import annotations

import logging
from typing import Any

import kopf

GROUP = "headwater.dev"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's bookkeeping goes to annotations: `.status` stays exactly what the CRD schema describes, and
    # `.spec` is never touched, so GitOps tools see no drift.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events are posted explicitly on each transition; kopf's own per-handler chatter stays in the logs.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 16
