"""Processors are plugins: entry points of the group `headwater.package.processors`, each named
`dataset.version` and pointing at a `Processor` subclass. A distribution adds processors by declaring
entry points; nothing in Headwater needs editing."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from .errors import FailureReason, PackageError
from .processor import Processor

GROUP = "headwater.package.processors"


class UnknownProcessorError(PackageError):
    def __init__(self, name: str, known: list[str]) -> None:
        listing = ", ".join(known) if known else "none is installed"
        super().__init__(FailureReason.UNKNOWN_PROCESSOR, f"unknown processor {name!r}; known: {listing}")


class BrokenProcessorError(PackageError):
    def __init__(self, name: str, target: str, problem: str) -> None:
        super().__init__(
            FailureReason.BROKEN_PROCESSOR, f"processor {name!r} ({target}) cannot be used: {problem}"
        )


def installed() -> dict[str, EntryPoint]:
    """The processors' entry points by name; of two with one name, the first found."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        found.setdefault(point.name, point)
    return dict(sorted(found.items()))


def load(name: str) -> type[Processor]:
    """The processor class `name` (`dataset.version`), checked to be a processor that says it is `name`."""
    points = installed()
    point = points.get(name)
    if point is None:
        raise UnknownProcessorError(name, list(points))
    try:
        loaded = point.load()
    except Exception as error:
        raise BrokenProcessorError(name, point.value, f"{type(error).__name__}: {error}") from error
    if not (isinstance(loaded, type) and issubclass(loaded, Processor)):
        raise BrokenProcessorError(name, point.value, "it is not a Processor subclass")
    metadata = getattr(loaded, "metadata", None)
    if metadata is None:
        raise BrokenProcessorError(name, point.value, "it declares no metadata")
    if metadata.processor != name:
        raise BrokenProcessorError(name, point.value, f"its metadata names it {metadata.processor!r}")
    return loaded
