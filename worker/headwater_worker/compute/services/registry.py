"""Finding the installed compute services: the entry points of the group `headwater.compute.services`.

Each entry point's name is the service's slug and its object a zero-argument callable — the service's class,
or a factory — that returns the service. A plugin that cannot be loaded is set aside with a one-line reason
naming its entry point, so one broken distribution never hides the others.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from ...logs import one_line
from . import ENTRY_POINT_GROUP, ComputeService, ServiceInfo


class ServiceLoadError(Exception):
    """An entry point of the group that does not give a working service."""


class UnknownServiceError(LookupError):
    """No installed service has the slug asked for."""


@dataclass(frozen=True)
class Discovery:
    """The services that loaded, keyed by slug, and the entry points that did not, with why."""

    services: dict[str, ComputeService] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)


def discover() -> Discovery:
    """Load every installed service."""
    found = Discovery()
    for slug, points in _entry_points_by_name().items():
        try:
            found.services[slug] = load(_only(slug, points))
        except ServiceLoadError as error:
            found.broken[slug] = str(error)
    return found


def service_named(slug: str) -> ComputeService:
    """The installed service with this slug, loading only its own plugin."""
    points = _entry_points_by_name()
    if slug not in points:
        known = ", ".join(sorted(points)) or "none"
        raise UnknownServiceError(f"no compute service is named {slug!r}; installed: {known}")
    try:
        return load(_only(slug, points[slug]))
    except ServiceLoadError as error:
        raise UnknownServiceError(f"compute service {slug!r} is installed but broken: {error}") from error


def load(point: EntryPoint) -> ComputeService:
    """The service an entry point gives, checked against the plugin contract."""
    where = f"entry point {point.name!r} ({point.value})"
    try:
        factory = point.load()
        service = factory()
    except Exception as error:  # a plugin's import or constructor may fail in any way
        raise ServiceLoadError(f"{where}: {type(error).__name__}: {one_line(str(error))}") from error
    info = getattr(service, "info", None)
    if not isinstance(info, ServiceInfo):
        raise ServiceLoadError(f"{where}: its object has no `info` of type ServiceInfo")
    if not callable(getattr(service, "process", None)):
        raise ServiceLoadError(f"{where}: its object has no `process` method")
    if info.slug != point.name:
        raise ServiceLoadError(f"{where}: its info.slug is {info.slug!r}, not the entry point's name")
    return cast(ComputeService, service)


def _entry_points_by_name() -> dict[str, list[EntryPoint]]:
    points: dict[str, list[EntryPoint]] = defaultdict(list)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        points[point.name].append(point)
    return points


def _only(slug: str, points: list[EntryPoint]) -> EntryPoint:
    # Two distributions claiming one slug would make the service a task runs depend on install order.
    if len(points) > 1:
        owners = ", ".join(sorted(f"{_distribution(p)} ({p.value})" for p in points))
        raise ServiceLoadError(f"entry point {slug!r} is published by more than one distribution: {owners}")
    return points[0]


def _distribution(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "unknown distribution"
