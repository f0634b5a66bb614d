"""What a processor's run leaves beside its data: `<boundary>/datasets/<dataset>/<version>/provenance.json`,
the record of the files it made and from which inputs. Written last, after every data file is in place,
so a record names only complete outputs; finalise builds `datapackage.json` from the records, and a run
whose inputs hash matches an intact record is skipped (the seed's `exists()`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from ..logs import fields
from . import layout
from .metadata import ProcessorMetadata
from .storage import Storage

log = logging.getLogger(__name__)


class DataFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="storage path, under the root")
    bytes: int = Field(ge=0)
    sha1: str = Field(pattern=r"^[0-9a-f]{40}$")


class ProcessorRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    processor: str = Field(description="`dataset.version`")
    boundary: str
    inputs_hash: str
    generated_at: str = Field(description="when the run finished, RFC 3339 UTC")
    metadata: ProcessorMetadata
    sources: list[dict[str, JsonValue]] = Field(default_factory=list, description="identity of each source")
    files: list[DataFile]
    log: dict[str, JsonValue] = Field(default_factory=dict, description="what the processor reported")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_time() -> str:
    """The key of a run in `provenance.json`: the UTC time to the microsecond, as the seed's keys are."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record_path(boundary: str, metadata: ProcessorMetadata) -> str:
    return layout.record_file(boundary, metadata.name, metadata.version)


def read_record(storage: Storage, path: str) -> ProcessorRecord | None:
    """The record at `path`; None when there is none or it cannot be read as one (it is then rewritten)."""
    raw = storage.read_bytes(path)
    if raw is None:
        return None
    try:
        return ProcessorRecord.model_validate_json(raw)
    except ValidationError as error:
        log.warning("ignoring an unreadable record", extra=fields(path=path, error=str(error)))
        return None


def write_record(storage: Storage, path: str, record: ProcessorRecord) -> None:
    storage.put_bytes(record.model_dump_json(indent=2).encode(), path, "application/json")


def outputs_intact(storage: Storage, record: ProcessorRecord) -> bool:
    """Every file the record names is there with the size it had."""
    return all(storage.size(data.path) == data.bytes for data in record.files)


def append_run(existing: bytes | None, run_time: str, entries: list[dict[str, Any]]) -> bytes:
    """`provenance.json` with one more run: an object keyed by each run's UTC time, each holding the list
    of what every processor reported (the seed's format). An unreadable file is kept aside under a key of
    its own rather than lost."""
    document: dict[str, Any] = {}
    if existing:
        try:
            loaded = json.loads(existing)
            document = loaded if isinstance(loaded, dict) else {"unreadable": loaded}
        except ValueError:
            document = {"unreadable": existing.decode("utf-8", "replace")}
    document[run_time] = entries
    return json.dumps(document, indent=2, ensure_ascii=False).encode()
