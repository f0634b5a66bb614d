"""Setup refuses a boundary that is not one valid longitude/latitude area, with one line saying why."""

from __future__ import annotations

import json

import pytest
from headwater_worker.package.boundary import InvalidBoundaryError, parse_boundary, parse_geometry

from tests.fixtures.package import gambia_geojson

SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]


def polygon(coordinates: object) -> str:
    return json.dumps({"type": "Polygon", "coordinates": coordinates})


def refusal(text: str) -> str:
    with pytest.raises(InvalidBoundaryError) as caught:
        parse_geometry(text)
    message = caught.value.message
    assert "\n" not in message
    return message


def test_the_shipped_country_boundary_is_accepted_from_its_feature_collection() -> None:
    boundary = parse_boundary("gambia", gambia_geojson(), "The Gambia")
    assert boundary.geometry.geom_type == "Polygon"
    assert boundary.long_name == "The Gambia"
    west, south, east, north = boundary.geometry.bounds
    assert -17 < west < east < -13
    assert 13 < south < north < 14


@pytest.mark.parametrize(
    "document",
    [
        {"type": "Polygon", "coordinates": SQUARE},
        {"type": "MultiPolygon", "coordinates": [SQUARE, [[[2, 2], [3, 2], [3, 3], [2, 2]]]]},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": SQUARE}},
    ],
)
def test_polygons_multipolygons_and_features_are_accepted(document: dict[str, object]) -> None:
    assert parse_geometry(json.dumps(document)).area > 0


def test_a_self_intersecting_polygon_is_refused_naming_where() -> None:
    bowtie = [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]
    assert refusal(polygon(bowtie)) == "boundary geometry is not valid: self-intersection at (1, 1)"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "has type 'Point'; a Polygon or MultiPolygon is needed"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "has type 'LineString'"),
        ({"type": "GeometryCollection", "geometries": []}, "has type 'GeometryCollection'"),
        ({"type": "Polygon", "coordinates": []}, "is an empty Polygon"),
        ({"type": "MultiPolygon", "coordinates": []}, "is an empty MultiPolygon"),
        ({"type": "Feature", "geometry": None}, "is a Feature without a geometry"),
        ({"type": "FeatureCollection", "features": []}, "FeatureCollection of 0 features; exactly one"),
        ([1, 2], "is not a GeoJSON object"),
    ],
)
def test_wrong_types_and_empty_geometries_are_refused(document: object, expected: str) -> None:
    assert expected in refusal(json.dumps(document))


def test_coordinates_that_are_not_longitude_latitude_are_refused() -> None:
    metres = [[[500000, 1400000], [510000, 1400000], [510000, 1410000], [500000, 1400000]]]
    assert "outside longitude -180..180" in refusal(polygon(metres))


def test_text_that_is_not_json_is_refused() -> None:
    assert refusal("{not json").startswith("boundary geometry is not JSON")


def test_rings_too_short_to_enclose_an_area_are_refused() -> None:
    assert "not a well-formed Polygon" in refusal(polygon([[[0, 0], [1, 1]]]))
    assert "too few points in geometry component" in refusal(polygon([[[0, 0], [1, 1], [0, 0]]]))
