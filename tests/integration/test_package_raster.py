"""Cropping a real GeoTIFF to the shipped country boundary: the output covers the boundary's bounds on the
source's grid, holds the source's values inside the boundary and nodata outside, tiled and compressed."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from headwater_worker.package.errors import PackageError
from headwater_worker.package.raster import crop_raster, write_test_raster

from tests.fixtures.package import Grid, gambia_shape, synthetic_values, write_geotiff

NODATA = -9999.0


def pixel_centres(dataset: rasterio.io.DatasetReader) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : dataset.height, 0 : dataset.width]
    xs, ys = rasterio.transform.xy(dataset.transform, rows.ravel(), cols.ravel())
    return np.asarray(xs).reshape(rows.shape), np.asarray(ys).reshape(rows.shape)


def assert_cropped(output: Path, grid: Grid, offset: float = 0.0) -> None:
    boundary = gambia_shape()
    with rasterio.open(output) as cropped:
        # The boundary's bounds, outward to whole pixels of the source's grid.
        west, south, east, north = boundary.bounds
        res = grid.resolution
        assert cropped.bounds.left <= west < cropped.bounds.left + res
        assert cropped.bounds.right - res < east <= cropped.bounds.right
        assert cropped.bounds.bottom <= south < cropped.bounds.bottom + res
        assert cropped.bounds.top - res < north <= cropped.bounds.top
        col_off = round((cropped.bounds.left - grid.west) / res)
        row_off = round((grid.north - cropped.bounds.top) / res)
        assert cropped.bounds.left == pytest.approx(grid.west + col_off * res)
        assert cropped.nodata == NODATA
        assert cropped.profile["tiled"] is True
        assert cropped.compression is not None
        assert cropped.compression.value == "DEFLATE"
        values = cropped.read(1)
        xs, ys = pixel_centres(cropped)
    inside = shapely.contains_xy(boundary, xs, ys)
    source = synthetic_values(grid.height, grid.width, offset)[
        row_off : row_off + values.shape[0], col_off : col_off + values.shape[1]
    ]
    assert inside.any()
    assert (~inside).any()
    np.testing.assert_array_equal(values[inside], source[inside])
    assert (values[~inside] == NODATA).all()


def test_a_geotiff_is_cropped_to_the_boundary(tmp_path: Path) -> None:
    grid = Grid()
    source = write_geotiff(tmp_path / "source.tif", grid, nodata=NODATA)
    output = tmp_path / "out" / "cropped.tif"
    fractions: list[float] = []
    summary = crop_raster(str(source), gambia_shape(), output, on_fraction=fractions.append)
    assert_cropped(output, grid)
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    with rasterio.open(output) as cropped:
        assert (summary.width, summary.height) == (cropped.width, cropped.height)


def test_a_crop_wider_than_one_strip_is_assembled_from_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater_worker.package import raster

    # Strips of one tile (256 x 256 float32 pixels): the crop (about 304 x 71) takes two pieces.
    monkeypatch.setattr(raster, "MAX_STRIP_BYTES", 256 * 256 * 4)
    grid = Grid()
    source = write_geotiff(tmp_path / "source.tif", grid, nodata=NODATA)
    crop_raster(str(source), gambia_shape(), tmp_path / "cropped.tif")
    assert_cropped(tmp_path / "cropped.tif", grid)


def test_a_geotiff_inside_a_zip_is_read_where_it_is(tmp_path: Path) -> None:
    grid = Grid()
    source = write_geotiff(tmp_path / "relief.tif", grid, nodata=NODATA)
    archive = tmp_path / "relief.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(source, "relief/relief.tif")
    crop_raster(f"/vsizip/{archive}/relief/relief.tif", gambia_shape(), tmp_path / "cropped.tif")
    assert_cropped(tmp_path / "cropped.tif", grid)


def test_a_source_away_from_the_boundary_is_refused_saying_so(tmp_path: Path) -> None:
    source = write_geotiff(tmp_path / "source.tif", Grid(west=100.0, north=50.0))
    with pytest.raises(PackageError) as caught:
        crop_raster(str(source), gambia_shape(), tmp_path / "cropped.tif")
    assert "does not overlap the source raster" in caught.value.message


def test_the_test_raster_covers_the_boundary(tmp_path: Path) -> None:
    write_test_raster(gambia_shape(), tmp_path / "test.tif")
    with rasterio.open(tmp_path / "test.tif") as made:
        assert tuple(made.bounds) == pytest.approx(gambia_shape().bounds)
        values = made.read(1)
    assert set(np.unique(values)) == {0, 1}
