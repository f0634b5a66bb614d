"""CSV and Excel files arriving in a folder (a volume path).

A file is read once its size and modification time have not changed for `stableSeconds` (a writer still
copying it is left for the next scan), loaded as one batch, then moved to `processedPath` (loaded, or
already loaded before: same SHA-256) or `rejectedPath` (refused as a whole), next to a
`<name>.rejected.json` saying why.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ...logs import fields
from ..errors import FailureReason, IngestError
from ..pipeline import BatchInput, BatchResult
from ..sources import file_chunks, inspect_file
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
        assert context.config.file is not None
        self.context = context
        self.settings = context.config.file
        self.folder = Path(self.settings.path)
        self.processed = Path(self.settings.processed_path)
        self.rejected = Path(self.settings.rejected_path)
        self.clock = clock
        self.sleep = sleep

    # -- discovery --------------------------------------------------------------------------------

    def discover(self) -> list[Path]:
        if not self.folder.is_dir():
            raise IngestError(FailureReason.SOURCE_NOT_FOUND, f"folder {self.folder} does not exist")
        found = [
            entry
            for entry in self.folder.iterdir()
            if entry.is_file()
            and not entry.name.startswith(".")
            and any(fnmatch.fnmatch(entry.name.lower(), pattern.lower()) for pattern in self.settings.include)
        ]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def stable(self, path: Path) -> bool:
        """Whether the file stayed unchanged for `stableSeconds` (waiting up to that long to find out)."""
        seconds = self.settings.stable_seconds
        try:
            first = path.stat()
        except FileNotFoundError:
            return False
        if seconds == 0:
            return True
        age = self.clock() - first.st_mtime
        if age < seconds:
            self.sleep(seconds - age)
        try:
            second = path.stat()
        except FileNotFoundError:
            return False
        return (second.st_size, second.st_mtime_ns) == (first.st_size, first.st_mtime_ns) and (
            self.clock() - second.st_mtime >= seconds
        )

    # -- one scan ---------------------------------------------------------------------------------

    def run(self, sink: Sink) -> None:
        for path in self.discover():
            if self.context.stop.is_set():
                return
            if not self.stable(path):
                log.info("file still changing: left for the next scan", extra=fields(file=path.name))
                continue
            result = sink.load(self.batch(path))
            self.finish(path, result)

    def batch(self, path: Path) -> BatchInput:
        facts = inspect_file(path)
        mapping = self.context.mapping
        config = self.context.config
        return BatchInput(
            connector=config.connector,
            source_uri=f"file://{path}",
            sha256=facts.sha256,
            datasource=config.datasource_id or path.stem,
            source_type="file",
            open=lambda: file_chunks(path, mapping, facts, chunk_rows=config.chunk_rows),
            metadata={"file": path.name, "size": facts.size, "sha256": facts.sha256, "bom": facts.bom},
        )

    def finish(self, path: Path, result: BatchResult) -> None:
        """ack (processed) or fail (rejected): the file leaves the incoming folder either way."""
        if result.status == "rejected":
            target = _move(path, self.rejected)
            note = {
                "file": path.name,
                "batchId": result.batch_id,
                "reason": result.reason,
                "message": result.message,
                "rejectedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            target.with_name(target.name + ".rejected.json").write_text(json.dumps(note, indent=2) + "\n")
            log.warning("file rejected", extra=fields(file=path.name, reason=result.reason, to=str(target)))
        else:
            target = _move(path, self.processed)
            log.info("file processed", extra=fields(file=path.name, status=result.status, to=str(target)))


def _move(path: Path, folder: Path) -> Path:
    """Move without overwriting: a name already taken gets a timestamp."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    try:
        os.replace(path, target)
    except OSError:
        shutil.move(str(path), str(target))
    return target
