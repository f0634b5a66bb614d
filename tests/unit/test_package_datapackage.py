"""`datapackage.json` has the seed's fields, passes frictionless's validation, and gathers every dataset
version of the boundary with unique names and licences."""

from __future__ import annotations

from typing import Any

import pytest
from headwater_worker.package import datapackage, pages
from headwater_worker.package.datapackage import InvalidDatapackageError
from headwater_worker.package.metadata import DataLicense, ProcessorMetadata
from headwater_worker.package.records import DataFile, ProcessorRecord

HOST = "https://example.org/packages"
CC_BY = DataLicense(name="CC-BY-4.0", path="https://creativecommons.org/licenses/by/4.0/", title="CC BY 4.0")
SHA = "a" * 40


def record(
    dataset: str, version: str = "version_1", *, licence: DataLicense = CC_BY, files: int = 1
) -> ProcessorRecord:
    meta = ProcessorMetadata(
        name=dataset,
        version=version,
        description=f"{dataset} clipped",
        dataset_name=f"{dataset} data",
        data_title=f"{dataset} title",
        data_license=licence,
        data_origin_url=f"https://origin.example.org/{dataset}",
        data_formats=["GeoTIFF"],
    )
    return ProcessorRecord(
        processor=f"{dataset}.{version}",
        boundary="gambia",
        inputs_hash="h",
        generated_at="2026-01-01T00:00:00Z",
        metadata=meta,
        files=[
            DataFile(
                path=f"gambia/datasets/{dataset}/{version}/data/{dataset}-{version}-{part}gambia.tif",
                bytes=10 + part,
                sha1=f"{part}" * 40,
            )
            for part in range(files)
        ],
    )


def link(path: str) -> str:
    return f"{HOST}/{path}"


def build(records: list[ProcessorRecord], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    return datapackage.build(
        name="gambia",
        title="The Gambia",
        records=records,
        link=link,
        created="2026-01-01T00:00:00Z",
        existing=existing,
    )


def test_a_resource_has_the_seed_fields_and_the_spec_own() -> None:
    descriptor = build([record("natural_earth_raster")])
    datapackage.validate(descriptor)
    assert descriptor["name"] == "gambia"
    assert descriptor["title"] == "The Gambia"
    [resource] = descriptor["resources"]
    assert resource == {
        "name": "natural_earth_raster",
        "title": "natural_earth_raster title",
        "version": "version_1",
        "path": [
            f"{HOST}/gambia/datasets/natural_earth_raster/version_1/data/natural_earth_raster-version_1-0gambia.tif"
        ],
        "description": "natural_earth_raster clipped",
        "format": "GeoTIFF",
        "bytes": 10,
        "hashes": ["0" * 40],
        "license": {
            "name": "CC-BY-4.0",
            "path": "https://creativecommons.org/licenses/by/4.0/",
            "title": "CC BY 4.0",
        },
        "sources": [
            {"title": "natural_earth_raster data", "path": "https://origin.example.org/natural_earth_raster"}
        ],
        "mediatype": "image/tiff",
        "hash": "sha1:" + "0" * 40,
    }


def test_a_resource_of_several_files_lists_each_path_and_hash_and_adds_their_sizes() -> None:
    [resource] = build([record("wri_aqueduct", files=3)])["resources"]
    assert len(resource["path"]) == len(resource["hashes"]) == 3
    assert resource["bytes"] == 10 + 11 + 12
    assert "hash" not in resource


def test_licences_are_unique_by_name() -> None:
    other = DataLicense(name="ODbL-1.0", path="https://opendatacommons.org/licenses/odbl/", title="ODbL")
    descriptor = build([record("a"), record("b"), record("c", licence=other)])
    assert [licence["name"] for licence in descriptor["licenses"]] == ["CC-BY-4.0", "ODbL-1.0"]
    datapackage.validate(descriptor)


def test_two_versions_of_one_dataset_get_names_the_spec_accepts() -> None:
    descriptor = build([record("a", "version_1"), record("a", "version_2"), record("b")])
    assert [item["name"] for item in descriptor["resources"]] == ["a.version_1", "a.version_2", "b"]
    datapackage.validate(descriptor)


def test_resources_of_other_runs_are_kept_and_this_runs_replace_theirs() -> None:
    earlier = build([record("a"), record("b", files=2)])
    descriptor = build([record("b")], existing=earlier)
    assert [item["name"] for item in descriptor["resources"]] == ["a", "b"]
    assert len(descriptor["resources"][1]["path"]) == 1


def test_a_descriptor_that_breaks_the_spec_is_refused() -> None:
    descriptor = build([record("a")])
    descriptor["resources"][0]["name"] = "Not A Name"
    with pytest.raises(InvalidDatapackageError) as caught:
        datapackage.validate(descriptor)
    assert "Not A Name" in caught.value.message


def test_pages_escape_what_the_metadata_says() -> None:
    meta = record("a").metadata.model_copy(update={"data_summary": "<script>x</script> & more"})
    page = pages.dataset_index(meta)
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt; &amp; more" in page
    assert 'href="./license.html"' in pages.dataset_index(meta)
    assert "CC BY 4.0" in pages.dataset_license(meta)


def test_the_package_index_links_each_dataset_version() -> None:
    page = pages.package_index("The <Gambia>", [pages.DatasetEntry("a", "version_1", "A title")])
    assert "The &lt;Gambia&gt;" in page
    assert 'href="./datasets/a/version_1/index.html"' in page
