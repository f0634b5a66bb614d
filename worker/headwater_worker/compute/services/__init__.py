"""Services built into the worker, and the plugin point to add more.

A service is an object with an `info` (its registration metadata: the compute protocol's name, slug,
summary, fields with MIME types) and a `process(inputs, workdir)` step, published under the entry-point
group `headwater.compute.services` with its slug as the entry point's name. The worker discovers every
installed one; `spec.service.name` picks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Protocol

from ..protocol import ExecutionUnitTag, FieldDescription, MimeType, ServiceRegistration

ENTRY_POINT_GROUP = "headwater.compute.services"


class ServiceError(Exception):
    """The inputs cannot be processed (content that does not parse, a parameter out of range): the task
    ends in `error` with this message, which names the field at fault."""


@dataclass(frozen=True)
class ServiceInfo:
    """What a service tells a Core engine about itself (`ServiceRegistration` without its URL)."""

    name: str
    slug: str
    summary: str
    description: str
    data_in_fields: tuple[FieldDescription, ...]
    data_out_fields: tuple[FieldDescription, ...]
    tags: tuple[ExecutionUnitTag, ...] = ()
    has_ai: bool = False
    docs_url: str | None = None

    def registration(self, url: str) -> ServiceRegistration:
        return ServiceRegistration(
            name=self.name,
            slug=self.slug,
            url=url.rstrip("/"),
            summary=self.summary,
            description=self.description,
            data_in_fields=list(self.data_in_fields),
            data_out_fields=list(self.data_out_fields),
            tags=list(self.tags),
            has_ai=self.has_ai,
            docs_url=self.docs_url,
        )


@dataclass(frozen=True)
class TaskInput:
    """One input, downloaded: `field` is its `data_in_fields` name, `mime_type` the type its key's
    extension gives (one the field accepts), `path` the local copy."""

    field: str
    key: str
    mime_type: MimeType
    path: Path


@dataclass(frozen=True)
class TaskOutput:
    """One output, written by the service under its workdir; the worker uploads it."""

    field: str
    mime_type: MimeType
    path: Path
    metadata: dict[str, str] = dataclass_field(default_factory=dict)


class ComputeService(Protocol):
    info: ServiceInfo

    def process(self, inputs: Sequence[TaskInput], workdir: Path) -> Sequence[TaskOutput]:
        """Outputs in the order of `info.data_out_fields`; raise `ServiceError` for inputs it refuses."""
        ...
