"""Package: cropping a large raster to a country boundary, Headwater's raster processor against gdalwarp.

Headwater side: the worker's `package process --processor natural_earth_raster.version_1` stage, run as its
Job runs it (one process, the configuration in `HEADWATER_PACKAGE_CONFIG`, volume storage and a volume
source cache in a temporary folder), cropping a 16,000 by 8,000 Float32 GeoTIFF to the shipped boundary of
The Gambia. The source is served over HTTP on 127.0.0.1 and downloaded once into the cache by a warm-up run;
each measured run writes into fresh storage (so nothing is skipped) and reads the cached copy in place, as
a Job of a package with `spec.cache` does. Its time includes the worker's interpreter, the inputs hash, the
publication of the output, the dataset's pages and its record.

Baseline: `gdalwarp -cutline <boundary> -crop_to_cutline` on the same file with the same creation options
(256 by 256 tiles, deflate with the floating-point predictor, every core, BigTIFF when needed).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from .processes import Usage, measured
from .results import REPO, TIMES, Benchmark, Figures, Side, Target

log = logging.getLogger("bench.package")

REPETITIONS = 3
WIDTH, HEIGHT = 16_000, 8_000
# A 4° by 2° region around The Gambia (lon/lat), so that the crop is most of the raster, not a few pixels.
# The origin is not round, so that no pixel centre falls exactly on the boundary's (rounded) vertices.
WEST, NORTH, RESOLUTION = -17.30013, 14.40017, 0.00025
TILE = 256
NODATA = float("nan")
BOUNDARY = REPO / "tests" / "data" / "package" / "gambia.geojson"
PROCESSOR = "natural_earth_raster.version_1"
CROP_TARGET = Target(">=", 0.8)
RSS_TARGET_MIB = 500.0
CREATION_OPTIONS = {
    "TILED": "YES",
    "BLOCKXSIZE": str(TILE),
    "BLOCKYSIZE": str(TILE),
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "3",
    "NUM_THREADS": "ALL_CPUS",
    "BIGTIFF": "IF_SAFER",
}
CHUNK = 1024 * 1024


# -- the data ------------------------------------------------------------------------------------------


def write_source(path: Path) -> Path:
    """A Float32 field with structure at several scales and a little grain (so that deflate has work to do,
    as on a real elevation or climate raster), written in rows of tiles, never whole in memory."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": WIDTH,
        "height": HEIGHT,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": from_origin(WEST, NORTH, RESOLUTION, RESOLUTION),
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
    }
    generator = np.random.default_rng(11)
    columns = np.arange(WIDTH, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as target:
        for row in range(0, HEIGHT, TILE):
            rows = np.arange(row, min(row + TILE, HEIGHT), dtype=np.float32)[:, None]
            field = (
                500 * np.sin(columns / 1700) * np.cos(rows / 900)
                + 80 * np.sin((columns + 3 * rows) / 97)
                + generator.normal(0, 2, (len(rows), WIDTH)).astype(np.float32)
            )
            target.write(field.astype(np.float32)[None], window=((row, row + len(rows)), (0, WIDTH)))
    return path


class SourceServer:
    """Serves one folder on 127.0.0.1 with the headers a source's identity is made of (ETag from the file's
    size and modification time, Last-Modified, Content-Length), streaming each file."""

    def __init__(self, root: Path) -> None:
        folder = root

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _headers(self) -> Path | None:
                path = folder / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                stat = path.stat()
                self.send_response(200)
                self.send_header("Content-Length", str(stat.st_size))
                self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
                self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
                self.end_headers()
                return path

            def do_HEAD(self) -> None:
                self._headers()

            def do_GET(self) -> None:
                path = self._headers()
                if path is not None:
                    with path.open("rb") as stream:
                        shutil.copyfileobj(stream, self.wfile, CHUNK)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="sources", daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{name}"

    @contextlib.contextmanager
    def running(self) -> Iterator[SourceServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


# -- the two sides -------------------------------------------------------------------------------------


def worker_config(source_url: str, storage: Path, cache: Path) -> str:
    return json.dumps(
        {
            "package": "bench/gambia",
            "boundary": {"name": "gambia", "longName": "The Gambia", "geojsonFile": str(BOUNDARY)},
            "processors": [{"name": PROCESSOR, "options": {"source": {"url": source_url}}}],
            "storage": {"volume": {"path": str(storage)}},
            "cache": {"volume": {"path": str(cache)}},
        }
    )


def cropped_file(storage: Path) -> Path:
    dataset, version = PROCESSOR.split(".")
    return storage / "gambia" / "datasets" / dataset / version / "data" / f"{dataset}-{version}-gambia.tif"


def headwater_crop(work: Path, source_url: str, number: int) -> tuple[Usage, Path]:
    """One `package process` run into fresh storage, the shared cache holding the source."""
    storage, scratch = work / f"storage-{number}", work / f"scratch-{number}"
    scratch.mkdir(parents=True)
    env = {
        **os.environ,
        "HEADWATER_PACKAGE_CONFIG": worker_config(source_url, storage, work / "cache"),
        "HEADWATER_SCRATCH": str(scratch),
        "HEADWATER_TERMINATION_LOG": str(work / f"report-{number}.json"),
    }
    command = [sys.executable, "-m", "headwater_worker", "package", "process", "--processor", PROCESSOR]
    usage = measured(command, folder=work, name=f"headwater-{number}", env=env)
    report = (work / f"report-{number}.json").read_text()
    if usage.returncode != 0:
        raise RuntimeError(f"the worker exited with {usage.returncode}: {report}")
    [result] = json.loads(report)["processors"]
    if result["phase"] != "Succeeded":
        raise RuntimeError(f"the worker did not crop: {report}")
    shutil.rmtree(scratch)
    return usage, cropped_file(storage)


def gdalwarp_command(source: Path, output: Path, boundary: Path = BOUNDARY) -> list[str]:
    options = [part for key, value in CREATION_OPTIONS.items() for part in ("-co", f"{key}={value}")]
    return [
        "gdalwarp",
        "-q",
        *("-cutline", str(boundary)),
        "-crop_to_cutline",
        *("-dstnodata", "nan"),
        *("-of", "GTiff"),
        *options,
        str(source),
        str(output),
    ]


def gdalwarp_crop(work: Path, source: Path, number: int) -> tuple[Usage, Path]:
    output = work / f"gdalwarp-{number}.tif"
    usage = measured(gdalwarp_command(source, output), folder=work, name=f"gdalwarp-{number}")
    if usage.returncode != 0:
        error = (work / f"gdalwarp-{number}.err").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"gdalwarp exited with {usage.returncode}: {error}")
    return usage, output


# -- comparing the outputs -------------------------------------------------------------------------


def compare(headwater: Path, gdal: Path) -> Figures:
    """Shape, bounds and pixels of the two crops. Both lie on the source's grid, so their common part is
    compared pixel for pixel (row of tiles by row of tiles): how many pixels are valid (not NaN) in both, in
    one only, and the largest difference where both are valid; and how many valid pixels each holds
    outside the other's extent."""
    import rasterio
    from rasterio.windows import Window, from_bounds

    with rasterio.open(headwater) as ours, rasterio.open(gdal) as theirs:
        figures: Figures = {
            "same_shape": ours.shape == theirs.shape,
            "headwater_shape": f"{ours.width}{TIMES}{ours.height}",
            "gdalwarp_shape": f"{theirs.width}{TIMES}{theirs.height}",
            "headwater_bounds": [round(value, 6) for value in ours.bounds],
            "gdalwarp_bounds": [round(value, 6) for value in theirs.bounds],
        }
        west, south = max(ours.bounds.left, theirs.bounds.left), max(ours.bounds.bottom, theirs.bounds.bottom)
        east, north = min(ours.bounds.right, theirs.bounds.right), min(ours.bounds.top, theirs.bounds.top)
        mine = from_bounds(west, south, east, north, ours.transform).round_offsets().round_lengths()
        other = from_bounds(west, south, east, north, theirs.transform).round_offsets().round_lengths()
        valid_both = only_ours = only_theirs = unequal = 0
        largest = 0.0
        for row in range(0, int(mine.height), TILE):
            rows = min(TILE, int(mine.height) - row)
            a = ours.read(1, window=Window(mine.col_off, mine.row_off + row, mine.width, rows))
            b = theirs.read(1, window=Window(other.col_off, other.row_off + row, other.width, rows))
            valid_a, valid_b = ~np.isnan(a), ~np.isnan(b)
            both = valid_a & valid_b
            valid_both += int(both.sum())
            only_ours += int((valid_a & ~valid_b).sum())
            only_theirs += int((valid_b & ~valid_a).sum())
            if both.any():
                difference = np.abs(a[both] - b[both])
                unequal += int((difference > 0).sum())
                largest = max(largest, float(difference.max()))
        figures.update(
            common_shape=f"{int(mine.width)}{TIMES}{int(mine.height)}",
            valid_in_both=valid_both,
            valid_only_in_headwater=only_ours,
            valid_only_in_gdalwarp=only_theirs,
            unequal_where_both_valid=unequal,
            largest_difference=largest,
            headwater_valid_outside_common=_valid(ours) - valid_both - only_ours,
            gdalwarp_valid_outside_common=_valid(theirs) - valid_both - only_theirs,
        )
    return figures


def _valid(raster: Any) -> int:
    """Pixels of the first band that are not NaN, row of tiles by row of tiles."""
    count = 0
    for row in range(0, raster.height, TILE):
        window = ((row, min(row + TILE, raster.height)), (0, raster.width))
        count += int((~np.isnan(raster.read(1, window=window))).sum())
    return count


# -- the benchmark -------------------------------------------------------------------------------------


def _figures(usage: Usage, output: Path) -> Figures:
    return {
        "seconds": round(usage.seconds, 3),
        "cpu_seconds": round(usage.cpu_seconds, 2),
        "max_rss_mib": round(usage.max_rss_mib, 1),
        "output_bytes": output.stat().st_size,
    }


def crop(repetitions: int = REPETITIONS) -> Benchmark:
    if shutil.which("gdalwarp") is None:
        raise RuntimeError("gdalwarp is missing: run make system-deps")
    work = Path(tempfile.mkdtemp(prefix="headwater-bench-package-"))
    try:
        return _crop(work, repetitions)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _crop(work: Path, repetitions: int) -> Benchmark:
    served = work / "served"
    served.mkdir()
    log.info("writing a %d by %d Float32 GeoTIFF", WIDTH, HEIGHT)
    source = write_source(served / "source.tif")
    version = subprocess.run(["gdalwarp", "--version"], capture_output=True, text=True, check=True).stdout
    subjects: list[Figures] = []
    baselines: list[Figures] = []
    with SourceServer(served).running() as server:
        url = server.url(source.name)
        log.info("warm-up: the worker downloads the source into the cache; gdalwarp reads it once")
        warm_up, _ = headwater_crop(work, url, 0)
        gdalwarp_crop(work, source, 0)
        matched: Figures = {}
        for number in range(1, repetitions + 1):
            log.info("repetition %d of %d", number, repetitions)
            ours, ours_file = headwater_crop(work, url, number)
            theirs, theirs_file = gdalwarp_crop(work, source, number)
            subjects.append(_figures(ours, ours_file))
            baselines.append(_figures(theirs, theirs_file))
            if not matched:
                matched = compare(ours_file, theirs_file)
            shutil.rmtree(work / f"storage-{number}")
            theirs_file.unlink()
    subject = Side.from_runs(
        "Headwater's raster processor",
        f"`python -m headwater_worker package process --processor {PROCESSOR}` as its Job runs it, with "
        "volume storage and a volume source cache (the source already cached by a warm-up run, read in "
        "place), writing a tiled, deflate-compressed GeoTIFF and the dataset's pages and record into "
        "fresh storage.",
        subjects,
    )
    baseline = Side.from_runs(
        "gdalwarp",
        f"`{' '.join(gdalwarp_command(Path('source.tif'), Path('out.tif'), Path(BOUNDARY.name)))}` "
        f"({version.strip()}, Debian's gdal-bin) on the same file.",
        baselines,
    )
    return Benchmark.judge(
        key="package_crop",
        title="Package: raster crop to a boundary",
        metric="speed",
        unit="crops/s",
        subject=_with_speed(subject),
        baseline=_with_speed(baseline),
        target=CROP_TARGET,
        ratio_definition="gdalwarp's time ÷ Headwater's time (Headwater's speed relative to gdalwarp's); "
        "higher is better",
        parameters={
            "source": f"{WIDTH:,}{TIMES}{HEIGHT:,} Float32, {source.stat().st_size / 2**20:,.0f} MiB",
            "source extent": f"{WEST:g}..{WEST + WIDTH * RESOLUTION:g} E, "
            f"{NORTH - HEIGHT * RESOLUTION:g}..{NORTH:g} N",
            "boundary": "The Gambia (tests/data/package/gambia.geojson)",
            "peak RSS target MiB": RSS_TARGET_MIB,
            "Headwater peak RSS MiB": subject.median["max_rss_mib"],
            "peak RSS target met": "yes" if subject.median["max_rss_mib"] < RSS_TARGET_MIB else "no",
        },
        method=[
            f"A {WIDTH:,}{TIMES}{HEIGHT:,} Float32 GeoTIFF (EPSG:4326, {TILE}{TIMES}{TILE} tiles, "
            "uncompressed) of smooth waves and a little Gaussian grain, generated by the benchmark over a "
            "region holding The Gambia, so that the crop is most of the raster.",
            "The source is served over HTTP on 127.0.0.1 (ETag, Last-Modified, Content-Length). A warm-up "
            "run of each side first (not counted): the worker downloads the source into the cache, as a "
            "package's first Job would; the measured runs find it there.",
            "Each side runs as its own process under a small launcher whose rusage gives the wall time, CPU "
            "time and peak RSS of the child; the two sides alternate.",
            "The first repetition's outputs are compared: shape, bounds, the pixels valid in each (not NaN) "
            "and the largest difference where both are valid.",
        ],
        findings=_crop_findings(subject.median, baseline.median, matched, warm_up),
        details={
            "outputs_compared": matched,
            "warm_up_with_download": {
                "seconds": round(warm_up.seconds, 3),
                "cpu_seconds": warm_up.cpu_seconds,
            },
        },
    )


def _with_speed(side: Side) -> Side:
    """Speed (crops per second) is what the ratio compares: gdalwarp's time over Headwater's."""
    runs = [{**run, "speed": round(1 / float(run["seconds"]), 4)} for run in side.runs]
    return Side.from_runs(side.name, side.description, runs)


def _crop_findings(s: Figures, b: Figures, matched: Figures, warm_up: Usage) -> list[str]:
    said = [
        f"Headwater cropped in {float(s['seconds']):.2f} s ({float(s['cpu_seconds']):.2f} s of CPU, peak RSS "
        f"{float(s['max_rss_mib']):.0f} MiB); gdalwarp in {float(b['seconds']):.2f} s "
        f"({float(b['cpu_seconds']):.2f} s of CPU, peak RSS {float(b['max_rss_mib']):.0f} MiB).",
        f"Peak RSS of the Headwater process: {float(s['max_rss_mib']):.0f} MiB, target under "
        f"{RSS_TARGET_MIB:g} MiB: {'met' if float(s['max_rss_mib']) < RSS_TARGET_MIB else 'not met'}.",
        f"The warm-up run, which also downloaded the source over HTTP into the cache, took "
        f"{warm_up.seconds:.2f} s.",
        f"Output sizes: Headwater {int(s['output_bytes']):,} bytes, "
        f"gdalwarp {int(b['output_bytes']):,} bytes.",
    ]
    shapes = (
        f"the same shape ({matched['headwater_shape']})"
        if matched["same_shape"]
        else f"different shapes: Headwater {matched['headwater_shape']} with bounds "
        f"{matched['headwater_bounds']} (outward to whole source pixels), gdalwarp "
        f"{matched['gdalwarp_shape']} with bounds {matched['gdalwarp_bounds']}; both on the source's grid"
    )
    said.append(
        f"The outputs have {shapes}. On their common {matched['common_shape']} pixels, "
        f"{matched['valid_in_both']:,} are valid in both, {matched['valid_only_in_headwater']:,} only in "
        f"Headwater's and {matched['valid_only_in_gdalwarp']:,} only in gdalwarp's (along the border, where "
        "the two rasterisations of the boundary differ); where both are valid, "
        f"{matched['unequal_where_both_valid']:,} differ, by at most {matched['largest_difference']:g}. "
        f"Valid pixels outside the common part: Headwater {matched['headwater_valid_outside_common']:,}, "
        f"gdalwarp {matched['gdalwarp_valid_outside_common']:,}."
    )
    return said


def run(repetitions: int = REPETITIONS) -> list[Benchmark]:
    """The crop against gdalwarp, then the DAG on a local control plane."""
    from . import package_dag

    return [crop(repetitions), package_dag.run(repetitions)]


__all__ = ["REPETITIONS", "run"]
