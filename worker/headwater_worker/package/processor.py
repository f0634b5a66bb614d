"""What a processor is: its metadata, its options, its sources and its `generate` step; and the context a
run hands it (the boundary, a scratch folder, sources, progress reporting, and `publish` to store a file).

A processor writes its outputs into `context.scratch` and `publish`es each: the file goes to its place in
the package layout (under a temporary name first) and into the run's record. The runner does the rest:
the lock, the inputs hash, skipping what exists, the dataset's pages and the record.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, JsonValue

from ..logs import fields
from . import layout
from .boundary import Boundary
from .hashing import file_sha1
from .metadata import ProcessorMetadata
from .records import DataFile, ProcessorRecord, outputs_intact
from .sources import SourceIdentity, SourceRef, Sources
from .storage import Storage

log = logging.getLogger(__name__)

Progress = Callable[[int, str], None]
ProvenanceLog = dict[str, JsonValue]

CONTENT_TYPES = {
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "gpkg": "application/geopackage+sqlite3",
    "geojson": "application/geo+json",
    "json": "application/json",
    "csv": "text/csv",
    "zip": "application/zip",
}


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(path.rsplit(".", 1)[-1].lower(), "application/octet-stream")


class NoOptions(BaseModel):
    """A processor that takes no options refuses any."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ProcessorContext:
    """One run of one processor for one boundary."""

    boundary: Boundary
    metadata: ProcessorMetadata
    storage: Storage
    sources: Sources
    scratch: Path
    progress: Progress
    identities: Mapping[str, SourceIdentity] = field(default_factory=dict)
    published: list[DataFile] = field(default_factory=list)

    def report(self, percent: int, message: str) -> None:
        """Tell the operator how far the run is (0 to 100) and what it does now."""
        self.progress(max(0, min(100, percent)), message)

    def fetch(self, ref: SourceRef) -> Path:
        """A local copy of a source, from the cache when it holds this version of it."""
        identity = self.identities.get(ref.uri) or self.sources.identify(ref)
        return self.sources.fetch(ref, identity)

    def output_file(self, extension: str, part: str | None = None) -> Path:
        """Where in scratch to write an output: named as it will be in the package."""
        name = layout.data_file_name(
            self.boundary.name, self.metadata.name, self.metadata.version, extension, part
        )
        return self.scratch / "outputs" / name

    def publish(self, local: Path, part: str | None = None) -> DataFile:
        """Store an output file at its place under `data/` and add it to the run's record."""
        extension = local.suffix.lstrip(".")
        path = layout.data_file(
            self.boundary.name, self.metadata.name, self.metadata.version, extension, part
        )
        data = DataFile(path=path, bytes=local.stat().st_size, sha1=file_sha1(local))
        self.storage.put_file(local, path, content_type(path))
        self.published.append(data)
        log.info("output stored", extra=fields(path=path, bytes=data.bytes))
        return data


class Processor(abc.ABC):
    """One version of one dataset. Subclasses set `metadata`, optionally `options_model` (a pydantic model
    of the options a Package may give) and `sources()`, and implement `generate`."""

    metadata: ClassVar[ProcessorMetadata]
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def sources(self) -> list[SourceRef]:
        """The sources `generate` reads; their identity is part of the inputs hash."""
        return []

    @abc.abstractmethod
    def generate(self, context: ProcessorContext) -> ProvenanceLog:
        """Make the outputs for `context.boundary`, `publish` each, and return what the run did (the
        processor's provenance log)."""

    def exists(self, storage: Storage, record: ProcessorRecord | None, inputs_hash: str) -> bool:
        """Whether the outputs for these inputs are already stored: the record was made from the same
        inputs and every file it names is there."""
        return record is not None and record.inputs_hash == inputs_hash and outputs_intact(storage, record)
