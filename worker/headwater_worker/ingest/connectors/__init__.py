"""Sources of batches: files on a volume, and HTTP APIs (generic, Tago.io, Airbeld, FusionSolar)."""

from __future__ import annotations

from .base import Connector, Context, Sink

__all__ = ["Connector", "Context", "Sink", "create"]


def create(context: Context) -> Connector:
    """The connector of the configured type."""
    kind = context.config.type
    if kind == "file":
        from .file import FileConnector

        return FileConnector(context)
    if kind == "tago":
        from .tago import TagoConnector

        return TagoConnector(context)
    if kind == "airbeld":
        from .airbeld import AirbeldConnector

        return AirbeldConnector(context)
    if kind == "fusionsolar":
        from .fusionsolar import FusionSolarConnector

        return FusionSolarConnector(context)
    from .http import GenericHttpConnector

    return GenericHttpConnector(context)
