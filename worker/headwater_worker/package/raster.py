"""Cropping a raster to a boundary, a block of rows at a time so that memory stays flat whatever the size
of the source: the window of the source that covers the boundary's bounds (outward to whole pixels) is
copied strip by strip into a tiled, compressed GeoTIFF, and pixels whose centre lies outside the boundary
are set to nodata. Strips wholly inside the boundary are copied without a mask; strips wholly outside are
not read at all."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .errors import FailureReason, PackageError
from .geo import in_crs

TILE = 256
MAX_STRIP_BYTES = 64 * 1024 * 1024
GDAL_CACHE_MB = 128
EPSILON = 1e-9

Fraction = Callable[[float], None]


class RasterError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.PROCESSING_FAILED, message)


@dataclass(frozen=True)
class CropSummary:
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    crs: str
    nodata: float | int | None

    def as_log(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "bounds": list(self.bounds),
            "crs": self.crs,
            "nodata": None if self.nodata is None or _is_nan(self.nodata) else self.nodata,
        }


def _is_nan(value: float | int) -> bool:
    return isinstance(value, float) and math.isnan(value)


def default_nodata(dtype: str) -> float | int:
    """For a source without nodata: NaN for floats, else 0 (what `rasterio.mask` uses)."""
    return math.nan if np.issubdtype(np.dtype(dtype), np.floating) else 0


def covering_window(
    transform: Any, width: int, height: int, bounds: tuple[float, float, float, float]
) -> Any:
    """The source window of whole pixels that covers `bounds`, clipped to the source; None if disjoint."""
    from rasterio.windows import Window

    west, south, east, north = bounds
    inverse = ~transform
    corners = [inverse @ (x, y) for x in (west, east) for y in (south, north)]
    cols = [col for col, _ in corners]
    rows = [row for _, row in corners]
    col_start = max(0, math.floor(min(cols) + EPSILON))
    row_start = max(0, math.floor(min(rows) + EPSILON))
    col_stop = min(width, math.ceil(max(cols) - EPSILON))
    row_stop = min(height, math.ceil(max(rows) - EPSILON))
    if col_stop <= col_start or row_stop <= row_start:
        return None
    return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


def _output_profile(source: Any, window: Any, nodata: float | int) -> dict[str, Any]:
    floating = np.issubdtype(np.dtype(source.dtypes[0]), np.floating)
    return {
        "driver": "GTiff",
        "width": int(window.width),
        "height": int(window.height),
        "count": source.count,
        "dtype": source.dtypes[0],
        "crs": source.crs,
        "transform": source.window_transform(window),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "predictor": 3 if floating else 2,
        "num_threads": "ALL_CPUS",
        "bigtiff": "IF_SAFER",
    }


def crop_raster(
    source_path: str,
    boundary: BaseGeometry,
    output: Path,
    *,
    nodata: float | int | None = None,
    on_fraction: Fraction | None = None,
) -> CropSummary:
    """Crop the raster at `source_path` (a file or a GDAL path) to `boundary` (longitude, latitude)."""
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    output.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(source_path) as source:
        if source.crs is None:
            raise RasterError("the source raster has no coordinate reference system")
        shape_in_source = in_crs(boundary, source.crs)
        window = covering_window(source.transform, source.width, source.height, shape_in_source.bounds)
        if window is None:
            raise RasterError(
                f"the boundary {_bounds(boundary)} does not overlap the source raster "
                f"{_bounds_of(source.bounds)}"
            )
        fill = nodata if nodata is not None else source.nodata
        fill = default_nodata(source.dtypes[0]) if fill is None else fill
        profile = _output_profile(source, window, fill)
        shapely.prepare(shape_in_source)
        width, height = int(window.width), int(window.height)
        # One row of output tiles at a time (each tile then compressed once), in pieces of at most
        # MAX_STRIP_BYTES for very wide crops.
        strip_rows = TILE
        pixel_bytes = source.count * np.dtype(source.dtypes[0]).itemsize
        strip_cols = min(width, max(TILE, MAX_STRIP_BYTES // (TILE * pixel_bytes) // TILE * TILE))
        out_transform = profile["transform"]
        with rasterio.open(output, "w", **profile) as target:
            for row in range(0, height, strip_rows):
                rows = min(strip_rows, height - row)
                for col in range(0, width, strip_cols):
                    cols = min(strip_cols, width - col)
                    part = Window(col, row, cols, rows)
                    part_transform = rasterio.windows.transform(part, out_transform)
                    box = shapely.box(*rasterio.windows.bounds(part, out_transform))
                    if not shape_in_source.intersects(box):
                        blank = np.full((source.count, rows, cols), fill, dtype=source.dtypes[0])
                        target.write(blank, window=part)
                        continue
                    data = source.read(window=Window(window.col_off + col, window.row_off + row, cols, rows))
                    if not shape_in_source.contains(box):
                        outside = geometry_mask(
                            [shape_in_source], out_shape=(rows, cols), transform=part_transform
                        )
                        data[:, outside] = fill
                    target.write(data, window=part)
                if on_fraction is not None:
                    on_fraction(min(1.0, (row + rows) / height))
            bounds = tuple(target.bounds)
        return CropSummary(
            width=width,
            height=height,
            bounds=(bounds[0], bounds[1], bounds[2], bounds[3]),
            crs=str(source.crs),
            nodata=fill,
        )


def write_test_raster(boundary: BaseGeometry, output: Path, *, size: int = 64) -> CropSummary:
    """A small GeoTIFF over the boundary's bounds: 1 inside the boundary, nodata (0) outside."""
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.transform import from_bounds

    output.parent.mkdir(parents=True, exist_ok=True)
    bounds = boundary.bounds
    transform = from_bounds(*bounds, size, size)
    outside = geometry_mask([boundary], out_shape=(size, size), transform=transform)
    data = np.where(outside, 0, 1).astype("uint8")
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": transform,
        "nodata": 0,
        "compress": "deflate",
    }
    with rasterio.open(output, "w", **profile) as target:
        target.write(data, 1)
    return CropSummary(width=size, height=size, bounds=bounds, crs="EPSG:4326", nodata=0)


def _bounds(geometry: BaseGeometry) -> str:
    return _bounds_of(geometry.bounds)


def _bounds_of(bounds: Any) -> str:
    return "(" + ", ".join(f"{value:g}" for value in tuple(bounds)) + ")"
