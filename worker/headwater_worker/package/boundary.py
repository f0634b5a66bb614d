"""The boundary every dataset is clipped to: GeoJSON in (a geometry, a Feature, or a FeatureCollection of
one Feature), a valid longitude/latitude Polygon or MultiPolygon out, or one line saying what is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .errors import FailureReason, PackageError

ACCEPTED_TYPES = ("Polygon", "MultiPolygon")


class InvalidBoundaryError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.INVALID_BOUNDARY, f"boundary geometry {message}")


@dataclass(frozen=True)
class Boundary:
    name: str
    long_name: str
    geometry: BaseGeometry

    @property
    def geojson(self) -> dict[str, Any]:
        """The geometry as a GeoJSON object (what GDAL and rasterio take)."""
        mapped: dict[str, Any] = shapely.geometry.mapping(self.geometry)
        return mapped

    @property
    def wkb_hex(self) -> str:
        """The normalised geometry as WKB: the same area drawn from another starting vertex or ring order
        hashes the same."""
        return str(shapely.to_wkb(shapely.normalize(self.geometry), hex=True, output_dimension=2))


def _geometry_object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidBoundaryError("is not a GeoJSON object")
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list) or len(features) != 1:
            count = len(features) if isinstance(features, list) else 0
            raise InvalidBoundaryError(f"is a FeatureCollection of {count} features; exactly one is needed")
        return _geometry_object(features[0])
    if kind == "Feature":
        geometry = document.get("geometry")
        if geometry is None:
            raise InvalidBoundaryError("is a Feature without a geometry")
        return _geometry_object(geometry)
    if kind not in ACCEPTED_TYPES:
        raise InvalidBoundaryError(f"has type {kind!r}; a Polygon or MultiPolygon is needed")
    return document


def parse_geometry(text: str) -> BaseGeometry:
    """The checked geometry of a GeoJSON text."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InvalidBoundaryError(f"is not JSON: {error}") from None
    geojson = _geometry_object(document)
    try:
        geometry = shape(geojson)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError) as error:
        raise InvalidBoundaryError(f"is not a well-formed {geojson['type']}: {error}") from None
    if geometry.is_empty:
        raise InvalidBoundaryError(f"is an empty {geojson['type']}")
    if not geometry.is_valid:
        raise InvalidBoundaryError(f"is not valid: {_reason(geometry)}")
    if geometry.area == 0:
        raise InvalidBoundaryError("encloses no area")
    west, south, east, north = geometry.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise InvalidBoundaryError(
            f"lies outside longitude -180..180 / latitude -90..90 (bounds {_bounds(geometry)}); "
            "GeoJSON coordinates are WGS 84 longitude, latitude"
        )
    return geometry


def _reason(geometry: BaseGeometry) -> str:
    """GEOS's reason (`Self-intersection[10 5]`) as a sentence: `self-intersection at (10, 5)`."""
    reason = str(shapely.is_valid_reason(geometry))
    what, _, where = reason.partition("[")
    what = what.strip()
    sentence = what[:1].lower() + what[1:]
    if where.endswith("]"):
        coordinates = ", ".join(where[:-1].split())
        return f"{sentence} at ({coordinates})"
    return sentence


def _bounds(geometry: BaseGeometry) -> str:
    return ", ".join(f"{value:g}" for value in geometry.bounds)


def parse_boundary(name: str, geojson: str, long_name: str | None = None) -> Boundary:
    return Boundary(name=name, long_name=long_name or name, geometry=parse_geometry(geojson))
