"""`datapackage.json`: a Frictionless Data Package with the fields the seed project writes.

One resource per dataset version: `name`, `version`, `path` (a list of URIs under the package host URL),
`description`, `format`, `bytes`, `hashes` (SHA-1 of each file, hex), `license`, `sources`; and from the
spec, `title`, `mediatype` and, for a one-file resource, `hash` (`sha1:<hex>`). The package's `licenses` are
its resources' licences, unique by name, and it says when it was `created`. The spec wants resource names
unique, so when a package holds several versions of one dataset, those resources are named
`<dataset>.<version>` instead of `<dataset>`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .errors import FailureReason, PackageError
from .processor import content_type
from .records import ProcessorRecord

Link = Callable[[str], str]
PROFILE = "data-package"


class InvalidDatapackageError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.INVALID_DATAPACKAGE, f"datapackage.json is not valid: {message}")


def resource(record: ProcessorRecord, link: Link) -> dict[str, Any]:
    meta = record.metadata
    described: dict[str, Any] = {
        "name": meta.name,
        "title": meta.title,
        "version": meta.version,
        "path": [link(data.path) for data in record.files],
        "description": meta.description,
        "format": meta.data_formats[0],
        "bytes": sum(data.bytes for data in record.files),
        "hashes": [data.sha1 for data in record.files],
        "license": meta.data_license.model_dump(),
        "sources": [{"title": meta.dataset_name, "path": meta.data_origin_url}],
    }
    media = {content_type(data.path) for data in record.files}
    if len(media) == 1:
        described["mediatype"] = media.pop()
    if len(record.files) == 1:
        described["hash"] = f"sha1:{record.files[0].sha1}"
    return described


def _unique_names(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = [str(item["name"]).split(".")[0] for item in resources]
    counts = Counter(base)
    return [
        {**item, "name": name if counts[name] == 1 else f"{name}.{item['version']}"}
        for item, name in zip(resources, base, strict=True)
    ]


def build(
    *,
    name: str,
    title: str,
    records: Sequence[ProcessorRecord],
    link: Link,
    created: str,
    existing: dict[str, Any] | None = None,
    homepage: str | None = None,
) -> dict[str, Any]:
    """The package for `records`, keeping the resources of other dataset versions that `existing` (the
    stored `datapackage.json`) lists: a package gathers every dataset ever clipped to its boundary."""
    ours = {(record.metadata.name, record.metadata.version) for record in records}
    kept = [
        item
        for item in (existing or {}).get("resources", [])
        if isinstance(item, dict)
        and (str(item.get("name", "")).split(".")[0], item.get("version")) not in ours
    ]
    resources = _unique_names(
        sorted(
            kept + [resource(record, link) for record in records],
            key=lambda item: (str(item.get("name")), str(item.get("version"))),
        )
    )
    licenses: dict[str, dict[str, Any]] = {}
    for item in resources:
        licence = item.get("license")
        if isinstance(licence, dict) and licence.get("name"):
            licenses.setdefault(str(licence["name"]), licence)
    package: dict[str, Any] = {
        "profile": PROFILE,
        "name": name,
        "title": title,
        "created": created,
        "licenses": list(licenses.values()),
        "resources": resources,
    }
    if homepage:
        package["homepage"] = homepage
    return package


def validate(descriptor: dict[str, Any]) -> None:
    """Check the descriptor against the Data Package spec with `frictionless` (metadata only: the files
    themselves are not fetched)."""
    from frictionless import Package

    report = Package.validate_descriptor(descriptor)
    if not report.valid:
        raise InvalidDatapackageError("; ".join(error.message for error in report.errors[:5]))
