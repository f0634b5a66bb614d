"""The inputs hash changes exactly when an output would: with the boundary's area, the processor, its
options or a source's identity; not with how the same polygon is written down."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from headwater_worker.package.boundary import parse_boundary
from headwater_worker.package.hashing import file_sha1, inputs_hash

RING: list[list[float]] = [[0, 0], [4, 0], [4, 3], [1, 3], [0, 0]]


def boundary_hex(ring: list[list[float]] | list[object]) -> str:
    return parse_boundary("b", json.dumps({"type": "Polygon", "coordinates": [ring]})).wkb_hex


def digest(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "boundary_name": "b",
        "boundary_wkb_hex": boundary_hex(RING),
        "processor": "natural_earth_raster.version_1",
        "options": {"source": {"url": "https://example.org/a.tif"}},
        "sources": [{"uri": "https://example.org/a.tif", "etag": '"1"', "size": 10}],
    }
    arguments.update(changes)
    return inputs_hash(**arguments)


def test_the_same_inputs_hash_the_same() -> None:
    assert digest() == digest()
    assert len(digest()) == 64


def test_the_same_polygon_from_another_vertex_or_winding_hashes_the_same() -> None:
    rotated = [*RING[2:-1], *RING[:3]]
    reversed_ring = list(reversed(RING))
    assert digest(boundary_wkb_hex=boundary_hex(rotated)) == digest()
    assert digest(boundary_wkb_hex=boundary_hex(reversed_ring)) == digest()


def test_each_input_changes_the_hash() -> None:
    moved: list[list[float]] = [[0, 0], [4, 0], [4, 3.5], [1, 3], [0, 0]]
    variants = {
        digest(boundary_wkb_hex=boundary_hex(moved)),
        digest(boundary_name="c"),
        digest(processor="natural_earth_raster.version_2"),
        digest(options={"source": {"url": "https://example.org/b.tif"}}),
        digest(sources=[{"uri": "https://example.org/a.tif", "etag": '"2"', "size": 10}]),
        digest(sources=[{"uri": "https://example.org/a.tif", "etag": '"1"', "size": 11}]),
    }
    assert digest() not in variants
    assert len(variants) == 6


def test_file_hashes_are_sha1_hex(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha1(path) == hashlib.sha1(b"x" * 3_000_000, usedforsecurity=False).hexdigest()
