"""Processors are found through their entry points, each with the seed's metadata; a broken plugin or an
unknown name is refused with one line saying which and why."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from headwater_worker.package import registry
from headwater_worker.package.metadata import ProcessorMetadata
from headwater_worker.package.processor import NoOptions, Processor
from headwater_worker.package.registry import BrokenProcessorError, UnknownProcessorError

from tests.fixtures.package import builtin_entry_points, write_dist_info

BUILTINS = {
    "test_processor.version_1": "headwater_worker.package.processors.test_processor:Version1",
    "natural_earth_raster.version_1": "headwater_worker.package.processors.natural_earth_raster:Version1",
    "natural_earth_vector.version_1": "headwater_worker.package.processors.natural_earth_vector:Version1",
}
SEED_FIELDS = {
    "name",
    "description",
    "version",
    "dataset_name",
    "data_author",
    "data_title",
    "data_title_long",
    "data_summary",
    "data_citation",
    "data_license",
    "data_origin_url",
    "data_formats",
}


def test_pyproject_declares_the_built_in_processors() -> None:
    assert builtin_entry_points() == BUILTINS


@pytest.mark.usefixtures("processor_path")
def test_the_built_ins_are_discovered_and_say_who_they_are() -> None:
    assert set(BUILTINS) <= set(registry.installed())
    for name in BUILTINS:
        processor = registry.load(name)
        assert processor.metadata.processor == name
        assert set(processor.metadata.model_dump()) == SEED_FIELDS
        assert set(processor.metadata.data_license.model_dump()) == {"name", "path", "title"}


def test_the_test_processor_keeps_the_seed_metadata() -> None:
    from headwater_worker.package.processors.test_processor import Version1

    meta = Version1.metadata
    assert (meta.name, meta.version, meta.dataset_name) == ("test_processor", "version_1", "nightlights")
    assert meta.data_license.name == "CC-BY-4.0"
    assert Version1.options_model is NoOptions


def test_source_processors_take_their_source_as_an_option() -> None:
    from headwater_worker.package.processors import natural_earth_raster, natural_earth_vector

    raster = natural_earth_raster.RasterOptions.model_validate(
        {"source": {"s3": {"bucket": "sources", "key": "k.tif"}}}
    )
    assert raster.source.uri == "s3://sources/k.tif"
    vector = natural_earth_vector.VectorOptions.model_validate(
        {"source": {"url": "https://example.org/r.gpkg"}}
    )
    assert vector.source.uri == "https://example.org/r.gpkg"
    assert natural_earth_raster.RasterOptions().source.member == "NE2_50M_SR/NE2_50M_SR.tif"


# -- plugins that other distributions add -----------------------------------------------------------------


class Plugin(Processor):
    metadata = ProcessorMetadata(
        name="my_dataset",
        version="version_1",
        description="d",
        dataset_name="my dataset",
        data_license={
            "name": "CC0-1.0",
            "path": "https://creativecommons.org/publicdomain/zero/1.0/",
            "title": "CC0",
        },
        data_origin_url="https://example.org",
        data_formats=["GeoTIFF"],
    )

    def generate(self, context: object) -> dict[str, object]:  # type: ignore[override]
        return {}


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution whose module `my_plugins` declares processors, good and broken."""
    (tmp_path / "my_plugins.py").write_text(
        textwrap.dedent(
            """
            from tests.unit.test_package_processors import Plugin

            class NotAProcessor:
                pass

            class Renamed(Plugin):
                metadata = Plugin.metadata.model_copy(update={"version": "version_9"})
            """
        ),
        encoding="utf-8",
    )
    write_dist_info(
        tmp_path,
        "my_plugins",
        {
            "my_dataset.version_1": "my_plugins:Plugin",
            "missing.version_1": "my_plugins_gone:Version1",
            "not_a.version_1": "my_plugins:NotAProcessor",
            "renamed.version_1": "my_plugins:Renamed",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_plugins", raising=False)
    return tmp_path


@pytest.mark.usefixtures("plugins")
def test_a_plugin_from_another_distribution_is_found_by_its_name() -> None:
    assert registry.load("my_dataset.version_1") is Plugin


@pytest.mark.usefixtures("plugins")
def test_an_unknown_name_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(UnknownProcessorError) as caught:
        registry.load("nightlights.version_7")
    message = caught.value.message
    assert message.startswith("unknown processor 'nightlights.version_7'; known: ")
    assert "my_dataset.version_1" in message


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "missing.version_1",
            "(my_plugins_gone:Version1) cannot be used: ModuleNotFoundError: No module named",
        ),
        ("not_a.version_1", "(my_plugins:NotAProcessor) cannot be used: it is not a Processor subclass"),
        ("renamed.version_1", "cannot be used: its metadata names it 'my_dataset.version_9'"),
    ],
)
def test_a_broken_plugin_is_refused_naming_its_entry_point(name: str, problem: str) -> None:
    with pytest.raises(BrokenProcessorError) as caught:
        registry.load(name)
    assert problem in caught.value.message
    assert caught.value.permanent
