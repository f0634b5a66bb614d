"""CSV and Excel files arriving in a folder of a volume or under a key prefix of an S3 bucket (a `Store`).

A file is read once it is complete (on a volume: its size and modification time have not changed for
`stableSeconds`), loaded as one batch, then moved to the processed folder (loaded, or already loaded
before: same SHA-256) or the rejected one (refused as a whole), next to a `<name>.rejected.json` saying why.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ...logs import fields
from ..pipeline import BatchInput, BatchResult
from ..sources import file_chunks, inspect_file
from ..stores import Arrival, Changed, S3Store, Store, TooLarge, VolumeStore
from .base import Context, Sink

log = logging.getLogger(__name__)


class FileConnector:
    def __init__(
        self,
        context: Context,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = context.config.file
        assert settings is not None
        self.context = context
        self.store: Store = (
            S3Store(settings.s3, settings.include)
            if settings.s3 is not None
            else VolumeStore(settings, clock=clock, sleep=sleep)
        )

    def run(self, sink: Sink) -> None:
        for arrival in self.store.arrivals():
            if self.context.stop.is_set():
                return
            if not self.store.ready(arrival):
                log.info("file still changing: left for the next scan", extra=fields(file=arrival.name))
                continue
            try:
                try:
                    with self.store.local(arrival) as path:
                        result = sink.load(self.batch(arrival, path))
                except TooLarge as refusal:
                    # Refused before it was read: no batch, the note says why.
                    result = BatchResult(
                        None, "rejected", arrival.uri, reason=refusal.reason, message=refusal.message
                    )
                self.finish(arrival, result)
            except Changed as change:
                log.info(
                    "file replaced while it was read: left for the next scan",
                    extra=fields(file=arrival.name, detail=str(change)),
                )

    def batch(self, arrival: Arrival, path: Path) -> BatchInput:
        facts = inspect_file(path)
        mapping = self.context.mapping
        config = self.context.config
        return BatchInput(
            connector=config.connector,
            source_uri=arrival.uri,
            sha256=facts.sha256,
            datasource=config.datasource_id or Path(arrival.name).stem,
            source_type="file",
            open=lambda: file_chunks(path, mapping, facts, chunk_rows=config.chunk_rows),
            metadata={"file": arrival.name, "size": facts.size, "sha256": facts.sha256, "bom": facts.bom},
        )

    def finish(self, arrival: Arrival, result: BatchResult) -> None:
        """ack (processed) or fail (rejected): the file leaves the incoming folder either way."""
        if result.status == "rejected":
            note = {
                "file": arrival.name,
                "batchId": result.batch_id,
                "reason": result.reason,
                "message": result.message,
                "rejectedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            target = self.store.move(arrival, "rejected", json.dumps(note, indent=2) + "\n")
            log.warning("file rejected", extra=fields(file=arrival.name, reason=result.reason, to=target))
        else:
            target = self.store.move(arrival, "processed")
            log.info("file processed", extra=fields(file=arrival.name, status=result.status, to=target))
