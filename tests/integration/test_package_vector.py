"""Clipping real vector files to the shipped country boundary: exactly the features that cross into it are
kept, each cut to the boundary, whatever the source format."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from headwater_worker.package import vector
from headwater_worker.package.vector import clip_vector
from pyogrio import raw
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from tests.fixtures.package import gambia_shape, write_vector

ROADS: list[tuple[str, BaseGeometry]] = [
    # Across the country from north to south: kept, cut at both borders.
    ("crossing", LineString([(-15.5, 14.2), (-15.5, 12.8)])),
    # Along the river, wholly inside: kept as it is.
    ("inside", LineString([(-16.0, 13.45), (-15.0, 13.5)])),
    # Inside the boundary's bounding box but in the estuary's notch and south of the border: left out,
    # though a bounding-box filter would let them through.
    ("in_the_notch", LineString([(-16.81, 13.41), (-16.70, 13.44)])),
    ("south_of_the_border", LineString([(-14.6, 13.10), (-14.3, 13.15)])),
    # Far away: left out.
    ("elsewhere", LineString([(2.0, 48.0), (2.5, 48.5)])),
    # Into the country from the east and ending there: kept, cut at the border.
    ("from_the_east", LineString([(-13.0, 13.4), (-14.0, 13.4)])),
]
KEPT = {"crossing", "inside", "from_the_east"}


def clipped_features(path: Path) -> dict[str, BaseGeometry]:
    _, _, geometries, fields = raw.read(path)
    return dict(zip(fields[0], shapely.from_wkb(geometries), strict=True))


def assert_clipped(output: Path) -> None:
    boundary = gambia_shape()
    features = clipped_features(output)
    assert set(features) == KEPT
    assert {name for name, road in ROADS if road.intersects(boundary)} == KEPT
    for name, road in ROADS:
        if name in KEPT:
            expected = road.intersection(boundary)
            assert features[name].equals(expected) or features[name].equals_exact(expected, 1e-9)
            assert features[name].within(boundary.buffer(1e-9))
    info = pyogrio.read_info(output)
    assert info["driver"] == "GPKG"
    assert info["geometry_type"] == "MultiLineString"
    assert info["crs"] == "EPSG:4326"
    assert list(info["fields"]) == ["name", "lanes"]


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_features_are_clipped_from_each_format(tmp_path: Path, suffix: str) -> None:
    source = write_vector(tmp_path / f"roads{suffix}", ROADS)
    summary = clip_vector(str(source), gambia_shape(), tmp_path / "out" / "clipped.gpkg")
    assert_clipped(tmp_path / "out" / "clipped.gpkg")
    assert (summary.features_kept, summary.geometry_type) == (3, "MultiLineString")


def test_a_shapefile_inside_a_zip_is_read_where_it_is(tmp_path: Path) -> None:
    source = write_vector(tmp_path / "shp" / "roads.shp", ROADS)
    archive = tmp_path / "roads.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for part in source.parent.iterdir():
            zipped.write(part, part.name)
    clip_vector(f"/vsizip/{archive}/roads.shp", gambia_shape(), tmp_path / "clipped.gpkg")
    assert_clipped(tmp_path / "clipped.gpkg")


def test_features_are_read_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector, "BATCH", 2)
    source = write_vector(tmp_path / "roads.gpkg", ROADS)
    fractions: list[float] = []
    output = tmp_path / "clipped.gpkg"
    summary = clip_vector(str(source), gambia_shape(), output, on_fraction=fractions.append)
    assert_clipped(tmp_path / "clipped.gpkg")
    assert len(fractions) >= 2
    assert summary.features_kept == 3


def test_a_source_with_nothing_in_the_boundary_makes_an_empty_layer(tmp_path: Path) -> None:
    source = write_vector(tmp_path / "roads.gpkg", [ROADS[4]])
    summary = clip_vector(str(source), gambia_shape(), tmp_path / "clipped.gpkg")
    assert summary.features_kept == 0
    assert pyogrio.read_info(tmp_path / "clipped.gpkg")["features"] == 0


def test_a_polygon_touching_the_boundary_only_along_an_edge_is_left_out(tmp_path: Path) -> None:
    boundary = shapely.box(0, 0, 1, 1)
    touching = shapely.box(1, 0, 2, 1)
    overlapping = shapely.box(0.5, 0.5, 1.5, 1.5)
    path = tmp_path / "areas.gpkg"
    raw.write(
        path,
        geometry=shapely.to_wkb([touching, overlapping]),
        field_data=[np.array(["touching", "overlapping"], dtype=object)],
        fields=["name"],
        driver="GPKG",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )
    clip_vector(str(path), boundary, tmp_path / "clipped.gpkg")
    features = clipped_features(tmp_path / "clipped.gpkg")
    assert set(features) == {"overlapping"}
    assert features["overlapping"].equals(shapely.box(0.5, 0.5, 1, 1))
