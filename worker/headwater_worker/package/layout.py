"""Where everything of a package lives, as the seed project's clients look for it.

Paths are relative POSIX paths under the storage root (a bucket prefix or a volume folder):

    <boundary>/index.html, license.html, version.html, datapackage.json, provenance.json
    <boundary>/datasets/<dataset>/<version>/index.html, license.html
    <boundary>/datasets/<dataset>/<version>/data/<dataset>-<version>-<boundary>.<ext>

and, Headwater's own, `<boundary>/datasets/<dataset>/<version>/provenance.json`: what the processor's last
run produced and from which inputs (the record that lets an identical run be skipped).
"""

from __future__ import annotations

INDEX = "index.html"
LICENSE = "license.html"
VERSION = "version.html"
DATAPACKAGE = "datapackage.json"
PROVENANCE = "provenance.json"
DATASETS = "datasets"
DATA = "data"
LOCKS = ".locks"


def package_folder(boundary: str) -> str:
    return boundary


def package_file(boundary: str, name: str) -> str:
    return f"{package_folder(boundary)}/{name}"


def dataset_folder(boundary: str, dataset: str, version: str) -> str:
    return f"{package_folder(boundary)}/{DATASETS}/{dataset}/{version}"


def dataset_file(boundary: str, dataset: str, version: str, name: str) -> str:
    return f"{dataset_folder(boundary, dataset, version)}/{name}"


def data_file_name(boundary: str, dataset: str, version: str, extension: str, part: str | None = None) -> str:
    """`<dataset>-<version>-<boundary>.<ext>`, or `<dataset>-<version>-<part>-<boundary>.<ext>` for one of
    several files of a dataset version (the seed's `output_filename`)."""
    extension = extension.lstrip(".")
    middle = f"-{part}" if part else ""
    return f"{dataset}-{version}{middle}-{boundary}.{extension}"


def data_file(boundary: str, dataset: str, version: str, extension: str, part: str | None = None) -> str:
    name = data_file_name(boundary, dataset, version, extension, part)
    return f"{dataset_folder(boundary, dataset, version)}/{DATA}/{name}"


def record_file(boundary: str, dataset: str, version: str) -> str:
    return dataset_file(boundary, dataset, version, PROVENANCE)


def processor_lock(boundary: str, dataset: str, version: str) -> str:
    """The lock one processor's run of one boundary holds. Storage keeps locks under `.locks/` of its
    root, outside the package folders that are served."""
    return f"{boundary}/{dataset}.{version}"


def package_lock(boundary: str) -> str:
    """The lock finalise holds while it rewrites `datapackage.json` and `provenance.json`."""
    return f"{boundary}/package"


def lock_file(name: str) -> str:
    """Where storage keeps the lock `name`."""
    return f"{LOCKS}/{name}.lock"


def join_url(base: str, path: str) -> str:
    """`path` under the URL `base`, whether or not `base` ends with a slash."""
    return f"{base.rstrip('/')}/{path.lstrip('/')}"
