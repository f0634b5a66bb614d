"""The three stages of a Package, each run by its own Job:

- `setup` checks the boundary, the processors and their options, and the storage, and writes the
  package's pages (`index.html`, `license.html`, `version.html`) where they are missing;
- `process` runs one processor under the lock of its boundary and dataset version: skipped when the stored
  record was made from the same inputs (boundary, processor, options, source identities) and its files are
  intact, else generated, stored, its dataset pages written and its record written last;
- `finalise`, under the lock of the package, builds `datapackage.json` from the records, validates it with
  `frictionless`, rewrites the package's `index.html` and appends this run to `provenance.json`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..logs import error_line, fields
from . import datapackage, layout, pages, registry
from .boundary import Boundary, parse_boundary
from .config import (
    BoundarySpec,
    PackageConfig,
    ProcessorEntry,
    ProcessorPhase,
    ProcessorResult,
    StageReport,
)
from .errors import FailureReason, PackageError
from .hashing import inputs_hash
from .processor import Processor, ProcessorContext
from .records import ProcessorRecord, append_run, read_record, record_path, run_time, utc_now, write_record
from .sources import Sources
from .storage import Storage

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
JSON = "application/json"

Progress = Callable[[str, int, str], None]


class ConfigurationError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.CONFIGURATION_ERROR, message)


@dataclass
class Stage:
    """What every stage works with."""

    config: PackageConfig
    storage: Storage
    scratch: Path
    cache: Storage | None = None
    progress: Progress = lambda processor, percent, message: None

    @property
    def boundary_name(self) -> str:
        return self.config.boundary.name

    def link(self, path: str) -> str:
        """How `datapackage.json` and the results name a stored file: under the package host URL, else
        by the storage's URI, else relative to the package folder."""
        if self.config.package_host_url:
            return layout.join_url(self.config.package_host_url, path)
        if self.storage.has_portable_uris:
            return self.storage.uri(path)
        return path.removeprefix(f"{layout.package_folder(self.boundary_name)}/")


def load_boundary(spec: BoundarySpec) -> Boundary:
    if spec.geojson is not None:
        text = spec.geojson
    else:
        assert spec.geojson_file is not None
        try:
            text = Path(spec.geojson_file).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(
                f"cannot read the boundary {spec.geojson_file}: {error.strerror}"
            ) from None
    return parse_boundary(spec.name, text, spec.long_name)


def load_processor(entry: ProcessorEntry) -> Processor:
    """The processor `entry` names, given its checked options."""
    processor_class = registry.load(entry.name)
    try:
        options = processor_class.options_model.model_validate(entry.options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigurationError(f"invalid options of {entry.name}: {problems}") from None
    return processor_class(options)


def _options_of(processor: Processor) -> dict[str, Any]:
    options: BaseModel = processor.options
    return options.model_dump(mode="json", by_alias=True)


def _put_if_missing(storage: Storage, path: str, text: str) -> bool:
    if storage.exists(path):
        return False
    storage.put_bytes(text.encode(), path, HTML)
    return True


# -- setup ------------------------------------------------------------------------------------------------


def setup(stage: Stage) -> StageReport:
    boundary = load_boundary(stage.config.boundary)
    for entry in stage.config.processors:
        load_processor(entry)
    stage.storage.check()
    name = boundary.name
    written = [
        path
        for path, text in (
            (layout.package_file(name, layout.INDEX), pages.package_index(boundary.long_name)),
            (layout.package_file(name, layout.LICENSE), pages.package_license()),
            (layout.package_file(name, layout.VERSION), pages.package_version()),
        )
        if _put_if_missing(stage.storage, path, text)
    ]
    log.info("package set up", extra=fields(boundary=name, written=written))
    return StageReport(stage="setup", boundary=name)


# -- process ----------------------------------------------------------------------------------------------


def process(stage: Stage, name: str) -> ProcessorResult:
    entry = stage.config.processor(name)
    if entry is None:
        known = ", ".join(item.name for item in stage.config.processors)
        raise ConfigurationError(f"processor {name!r} is not one of this package's: {known}")
    processor = load_processor(entry)
    boundary = load_boundary(stage.config.boundary)
    meta = processor.metadata
    stage.storage.check()

    def report(percent: int, message: str) -> None:
        stage.progress(name, percent, message)

    sources = Sources(stage.scratch, stage.cache, lock_timeout=stage.config.lock_timeout_seconds)
    lock = layout.processor_lock(boundary.name, meta.name, meta.version)
    with stage.storage.lock(lock, stage.config.lock_timeout_seconds):
        report(0, "checking the sources")
        identities = {ref.uri: sources.identify(ref) for ref in processor.sources()}
        source_list = [identity.as_dict() for identity in identities.values()]
        digest = inputs_hash(
            boundary_name=boundary.name,
            boundary_wkb_hex=boundary.wkb_hex,
            processor=name,
            options=_options_of(processor),
            sources=source_list,
        )
        path = record_path(boundary.name, meta)
        record = read_record(stage.storage, path)
        if processor.exists(stage.storage, record, digest):
            assert record is not None
            report(100, "skipped: the outputs for these inputs exist")
            return _result(stage, record, ProcessorPhase.SKIPPED, "outputs for these inputs exist")
        context = ProcessorContext(
            boundary=boundary,
            metadata=meta,
            storage=stage.storage,
            sources=sources,
            scratch=stage.scratch,
            progress=report,
            identities=identities,
        )
        try:
            provenance = processor.generate(context)
        except PackageError:
            raise
        except Exception as error:
            log.exception("processor failed", extra=fields(processor=name))
            raise PackageError(
                FailureReason.PROCESSING_FAILED, f"{name} failed: {type(error).__name__}: {error_line(error)}"
            ) from error
        if not context.published:
            raise PackageError(FailureReason.PROCESSING_FAILED, f"{name} stored no file")
        report(95, "writing the dataset's pages and record")
        folder = (boundary.name, meta.name, meta.version)
        stage.storage.put_bytes(
            pages.dataset_index(meta).encode(), layout.dataset_file(*folder, layout.INDEX), HTML
        )
        stage.storage.put_bytes(
            pages.dataset_license(meta).encode(), layout.dataset_file(*folder, layout.LICENSE), HTML
        )
        record = ProcessorRecord(
            processor=name,
            boundary=boundary.name,
            inputs_hash=digest,
            generated_at=utc_now(),
            metadata=meta,
            sources=source_list,
            files=context.published,
            log=provenance,
        )
        write_record(stage.storage, path, record)
        report(100, "done")
        return _result(stage, record, ProcessorPhase.SUCCEEDED, "generated")


def _result(stage: Stage, record: ProcessorRecord, phase: ProcessorPhase, message: str) -> ProcessorResult:
    return ProcessorResult(
        name=record.processor,
        phase=phase,
        progress=100,
        message=message,
        result_uris=[stage.link(data.path) for data in record.files],
        inputs_hash=record.inputs_hash,
    )


# -- finalise ---------------------------------------------------------------------------------------------


def _stored_json(storage: Storage, path: str) -> dict[str, Any] | None:
    raw = storage.read_bytes(path)
    if raw is None:
        return None
    try:
        loaded = json.loads(raw)
    except ValueError:
        log.warning("ignoring an unreadable file", extra=fields(path=path))
        return None
    return loaded if isinstance(loaded, dict) else None


def finalise(stage: Stage) -> StageReport:
    config = stage.config
    name = config.boundary.name
    title = config.boundary.long_name or name
    with stage.storage.lock(layout.package_lock(name), config.lock_timeout_seconds):
        records: list[ProcessorRecord] = []
        missing: list[str] = []
        for entry in config.processors:
            dataset, version = entry.name.split(".")
            record = read_record(stage.storage, layout.record_file(name, dataset, version))
            if record is None:
                missing.append(entry.name)
            else:
                records.append(record)
        if missing:
            raise PackageError(
                FailureReason.MISSING_RESULT, f"no stored result of {', '.join(missing)}: did it run?"
            )
        datapackage_path = layout.package_file(name, layout.DATAPACKAGE)
        descriptor = datapackage.build(
            name=name,
            title=title,
            records=records,
            link=stage.link,
            created=utc_now(),
            existing=_stored_json(stage.storage, datapackage_path),
            homepage=layout.join_url(config.package_host_url, f"{name}/")
            if config.package_host_url
            else None,
        )
        datapackage.validate(descriptor)
        stage.storage.put_bytes(json.dumps(descriptor, indent=2).encode(), datapackage_path, JSON)
        entries = [
            pages.DatasetEntry(
                dataset=str(item["name"]).split(".")[0],
                version=str(item.get("version", "")),
                title=str(item.get("title") or item["name"]),
            )
            for item in descriptor["resources"]
        ]
        stage.storage.put_bytes(
            pages.package_index(title, entries).encode(), layout.package_file(name, layout.INDEX), HTML
        )
        provenance_path = layout.package_file(name, layout.PROVENANCE)
        run = [{record.processor: record.model_dump(mode="json")} for record in records]
        run.append({"finalise": {"datapackage": stage.link(datapackage_path), "resources": len(entries)}})
        stage.storage.put_bytes(
            append_run(stage.storage.read_bytes(provenance_path), run_time(), run), provenance_path, JSON
        )
    uri = stage.link(datapackage_path)
    log.info("package finalised", extra=fields(boundary=name, datapackage=uri))
    return StageReport(stage="finalise", boundary=name, datapackage_uri=uri)


def scratch_folder(base: str | None) -> tempfile.TemporaryDirectory[str]:
    """A scratch folder for one stage's interim files, removed when the stage ends."""
    return tempfile.TemporaryDirectory(prefix="headwater-package-", dir=base)
