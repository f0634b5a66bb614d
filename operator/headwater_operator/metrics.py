"""Prometheus metrics of the operator: reconciles, errors and durations per kind."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "headwater_reconciles_total", "Reconciles handled, by kind and result", ["kind", "result"]
)
RECONCILE_ERRORS = Counter(
    "headwater_reconcile_errors_total", "Reconciles that raised, by kind and error type", ["kind", "error"]
)
RECONCILE_SECONDS = Histogram(
    "headwater_reconcile_duration_seconds", "Time spent in one reconcile, by kind", ["kind"]
)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def measured(kind: str) -> Callable[[Handler], Handler]:
    """Count and time an (asynchronous) handler; exceptions are counted and re-raised for kopf to retry."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await handler(*args, **kwargs)
            except Exception as error:
                RECONCILES.labels(kind, "error").inc()
                RECONCILE_ERRORS.labels(kind, type(error).__name__).inc()
                raise
            finally:
                RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
            RECONCILES.labels(kind, "ok").inc()
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
