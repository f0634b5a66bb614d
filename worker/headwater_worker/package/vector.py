"""Clipping vector features (any format GDAL reads: GeoPackage, GeoJSON, Shapefile, ...) to a boundary, in
batches: the features the boundary intersects are kept, each cut to the boundary, and written to a
GeoPackage layer. A feature that only touches the boundary (its clipped part has fewer dimensions than the
feature, like a road ending at the border) is left out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .errors import FailureReason, PackageError
from .geo import in_crs

BATCH = 50_000
DIMENSION = {"Point": 0, "LineString": 1, "Polygon": 2}
MULTI = {0: "MultiPoint", 1: "MultiLineString", 2: "MultiPolygon"}

Fraction = Callable[[float], None]


class VectorError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.PROCESSING_FAILED, message)


@dataclass(frozen=True)
class ClipSummary:
    layer: str
    features_read: int
    features_kept: int
    geometry_type: str

    def as_log(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "features_read": self.features_read,
            "features_kept": self.features_kept,
            "geometry_type": self.geometry_type,
        }


def _dimension(geometry_type: str) -> int | None:
    """0, 1 or 2 for point, line and polygon types (single, multi, 3D); None for mixed layers."""
    base = geometry_type.replace("Multi", "").replace(" Z", "").replace(" M", "").replace("25D", "").strip()
    return DIMENSION.get(base)


def same_dimension_part(geometry: BaseGeometry, dimension: int | None) -> BaseGeometry | None:
    """The part of a clipped geometry that has the layer's dimension (a polygon cut along the border can
    also yield lines and points where it only touches); None when nothing of it is left."""
    if geometry.is_empty:
        return None
    if dimension is None:
        return geometry
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if shapely.get_dimensions(part) == dimension and not part.is_empty
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def clip_vector(
    source_path: str,
    boundary: BaseGeometry,
    output: Path,
    *,
    layer: str | None = None,
    on_fraction: Fraction | None = None,
) -> ClipSummary:
    import pyogrio
    from pyogrio import raw

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = pyogrio.read_info(source_path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise VectorError(f"cannot read the vector source: {error}") from error
    layer_name = str(info.get("layer_name") or layer or output.stem)
    dimension = _dimension(str(info["geometry_type"]))
    output_type = MULTI[dimension] if dimension is not None else "Unknown"
    mask = in_crs(boundary, info["crs"])
    shapely.prepare(mask)
    total = max(int(info.get("features") or 0), 1)
    read = kept = 0
    first = True
    while True:
        meta, _, geometries, field_data = raw.read(
            source_path, layer=layer, mask=mask, skip_features=read, max_features=BATCH
        )
        count = len(geometries)
        shapes = shapely.from_wkb(geometries)
        hits = np.flatnonzero(shapely.intersects(mask, shapes)) if count else np.array([], dtype=int)
        clipped = [
            same_dimension_part(shapely.intersection(shapes[index], mask), dimension) for index in hits
        ]
        keep = [index for index, result in zip(hits, clipped, strict=True) if result is not None]
        results = [result for result in clipped if result is not None]
        if first or keep:
            raw.write(
                output,
                geometry=np.array([shapely.to_wkb(result) for result in results], dtype=object),
                field_data=[column[keep] for column in field_data],
                fields=meta["fields"],
                layer=layer_name,
                driver="GPKG",
                geometry_type=output_type,
                promote_to_multi=dimension is not None,
                crs=meta["crs"],
                encoding="UTF-8",
                append=not first,
            )
            first = False
        read += count
        kept += len(keep)
        if on_fraction is not None:
            on_fraction(min(1.0, read / total))
        if count < BATCH:
            break
    return ClipSummary(layer=layer_name, features_read=read, features_kept=kept, geometry_type=output_type)
