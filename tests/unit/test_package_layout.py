"""Files sit where the seed project's clients look for them."""

from __future__ import annotations

from headwater_worker.package import layout


def test_package_files_are_at_the_boundary_folder() -> None:
    names = [layout.INDEX, layout.LICENSE, layout.VERSION, layout.DATAPACKAGE, layout.PROVENANCE]
    assert [layout.package_file("gambia", name) for name in names] == [
        "gambia/index.html",
        "gambia/license.html",
        "gambia/version.html",
        "gambia/datapackage.json",
        "gambia/provenance.json",
    ]


def test_a_dataset_version_lives_under_datasets_with_its_data_folder() -> None:
    assert layout.dataset_file("gambia", "natural_earth_raster", "version_1", layout.INDEX) == (
        "gambia/datasets/natural_earth_raster/version_1/index.html"
    )
    assert layout.data_file("gambia", "natural_earth_raster", "version_1", "tif") == (
        "gambia/datasets/natural_earth_raster/version_1/data/natural_earth_raster-version_1-gambia.tif"
    )


def test_a_file_of_several_is_named_with_its_part_before_the_boundary() -> None:
    assert layout.data_file_name("gambia", "wri_aqueduct", "version_2", ".tif", "rp0100") == (
        "wri_aqueduct-version_2-rp0100-gambia.tif"
    )


def test_locks_are_kept_outside_the_served_package_folder() -> None:
    lock = layout.lock_file(layout.processor_lock("gambia", "a", "version_1"))
    assert lock == ".locks/gambia/a.version_1.lock"
    assert layout.lock_file(layout.package_lock("gambia")) == ".locks/gambia/package.lock"


def test_urls_join_with_or_without_a_trailing_slash() -> None:
    assert (
        layout.join_url("https://example.org/packages/", "gambia/x")
        == "https://example.org/packages/gambia/x"
    )
    assert (
        layout.join_url("https://example.org/packages", "gambia/x") == "https://example.org/packages/gambia/x"
    )
