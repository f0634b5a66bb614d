"""The package's html pages (the seed's `index.html`, `license.html`, `version.html`), small and made from
the metadata; every value is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .metadata import ProcessorMetadata

LAYOUT_VERSION = 1
PACKAGE_LICENSE_TITLE = "Open Database License (ODbL) v1.0"
PACKAGE_LICENSE_URL = "https://opendatacommons.org/licenses/odbl/1-0/"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html>\n<head>\n"
        f'  <meta charset="utf-8">\n  <title>{escape(title)}</title>\n'
        f"</head>\n<body>\n{body}</body>\n</html>\n"
    )


def _link(url: str, text: str | None = None) -> str:
    return f'<a href="{escape(url)}">{escape(text if text is not None else url)}</a>'


@dataclass(frozen=True)
class DatasetEntry:
    dataset: str
    version: str
    title: str


def package_index(boundary_title: str, datasets: Sequence[DatasetEntry] = ()) -> str:
    items = "".join(
        f"  <li>{_link(f'./datasets/{entry.dataset}/{entry.version}/index.html', entry.title)} "
        f"({escape(entry.version)})</li>\n"
        for entry in datasets
    )
    listing = f"<ul>\n{items}</ul>\n" if datasets else "<p>No datasets yet.</p>\n"
    return _page(
        f"Data package: {boundary_title}",
        f"<h1>Data package: {escape(boundary_title)}</h1>\n"
        "<p>Datasets clipped to this boundary. <code>datapackage.json</code> describes every file "
        "(a Frictionless Data Package).</p>\n"
        f"<h2>Datasets</h2>\n{listing}"
        "<h2>License</h2>\n"
        f"<p>The package is made available under the {escape(PACKAGE_LICENSE_TITLE)}: "
        f"{_link('./license.html')}. Each dataset keeps its own licence, named on its page.</p>\n",
    )


def package_license() -> str:
    return _page(
        PACKAGE_LICENSE_TITLE,
        f"<h1>{escape(PACKAGE_LICENSE_TITLE)}</h1>\n"
        f"<p>The full text: {_link(PACKAGE_LICENSE_URL)}.</p>\n"
        "<p>The licence covers the package as a database; the rights in its individual datasets are "
        "licensed individually, see each dataset's licence.</p>\n",
    )


def package_version() -> str:
    return f"<!doctype html><html><b>Version {LAYOUT_VERSION}</b></html>\n"


def dataset_index(meta: ProcessorMetadata) -> str:
    sections = [
        f"<h1>{escape(meta.title)}</h1>\n",
        f"<p>{_link('./data/', 'Data available here')}</p>\n",
        f"<h2>Summary</h2>\n<p>{escape(meta.data_summary or meta.description)}</p>\n",
    ]
    if meta.data_title_long:
        sections.insert(1, f"<p>{escape(meta.data_title_long)}</p>\n")
    if meta.data_author:
        sections.append(f"<h2>Author</h2>\n<p>{escape(meta.data_author)}</p>\n")
    sections.append(f"<h2>Source</h2>\n<p>{_link(meta.data_origin_url)}</p>\n")
    if meta.data_citation:
        sections.append(f"<h2>Citation</h2>\n<p>{escape(meta.data_citation)}</p>\n")
    sections.append(f"<h2>Formats</h2>\n<p>{escape(', '.join(meta.data_formats))}</p>\n")
    sections.append(f"<h2>License</h2>\n<p>{_link('./license.html')}</p>\n")
    return _page(meta.title, "".join(sections))


def dataset_license(meta: ProcessorMetadata) -> str:
    licence = meta.data_license
    return _page(
        licence.title,
        f"<h1>{escape(licence.title)}</h1>\n<p>{escape(licence.name)}: {_link(licence.path)}</p>\n",
    )
