"""What every connector gets (`Context`) and what it feeds (`Sink`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ...logs import redact
from ..config import IngestConfig
from ..errors import FailureReason, IngestError
from ..mapping import Mapping
from ..pipeline import BatchInput, BatchResult, CursorUpdate


class Sink(Protocol):
    """Where batches go: the pipeline, one transaction each, and the cursors it keeps."""

    def load(self, batch: BatchInput) -> BatchResult: ...

    def advance(self, update: CursorUpdate) -> None: ...

    def cursor(self, device_id: str, dataset: str) -> datetime | None: ...


@dataclass
class Context:
    config: IngestConfig
    mapping: Mapping
    credentials: MappingType[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def credential(self, *keys: str) -> str:
        """The first of `keys` present in the credentials Secret; a clear failure otherwise."""
        for key in keys:
            value = self.credentials.get(key)
            if value:
                return value
        raise IngestError(
            FailureReason.CONFIGURATION_ERROR,
            f"the credentials Secret has no key {' or '.join(repr(k) for k in keys)}",
        )

    @property
    def connector_id(self) -> str:
        return self.config.connector


class Connector(Protocol):
    def run(self, sink: Sink) -> None:
        """Discover new input and feed it to `sink`; raise IngestError when the source fails."""


def read_credentials(folder: Path) -> dict[str, str]:
    """One value per file of a mounted Secret (`..data` links and hidden files skipped); every value is
    registered for redaction before anything can log it."""
    values: dict[str, str] = {}
    if not folder.is_dir():
        return values
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        value = entry.read_text(encoding="utf-8").strip()
        redact.add(value)
        values[entry.name] = value
    return values
