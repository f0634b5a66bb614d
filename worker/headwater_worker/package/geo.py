"""The boundary in a dataset's coordinate reference system (GeoJSON is always WGS 84 longitude, latitude)."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"


def is_wgs84(crs: Any) -> bool:
    if crs is None:
        return True
    text = str(crs.to_string() if hasattr(crs, "to_string") else crs).upper()
    return text in ("EPSG:4326", "OGC:CRS84", "WGS84", "+PROJ=LONGLAT +DATUM=WGS84 +NO_DEFS")


def in_crs(geometry: BaseGeometry, crs: Any) -> BaseGeometry:
    """`geometry` (longitude, latitude) transformed to `crs`; itself when `crs` is WGS 84 or unknown."""
    if is_wgs84(crs):
        return geometry
    from rasterio.warp import transform_geom

    transformed: BaseGeometry = shape(transform_geom(WGS84, crs, shapely.geometry.mapping(geometry)))
    return transformed
