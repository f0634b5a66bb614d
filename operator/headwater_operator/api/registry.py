"""Every Headwater kind, in the order of the seeds (000 to 004)."""

from __future__ import annotations

from . import computetask, connector, exportjob, package, wrapper
from .common import KindInfo

KINDS: tuple[KindInfo, ...] = (wrapper.KIND, connector.KIND, computetask.KIND, package.KIND, exportjob.KIND)

BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KINDS}
BY_PLURAL: dict[str, KindInfo] = {info.plural: info for info in KINDS}


def kind_info(kind_or_plural: str) -> KindInfo:
    """The registry entry of a kind, looked up by kind (`ExportJob`) or plural (`exportjobs`)."""
    info = BY_KIND.get(kind_or_plural) or BY_PLURAL.get(kind_or_plural)
    if info is None:
        raise KeyError(f"unknown Headwater kind {kind_or_plural!r}")
    return info
