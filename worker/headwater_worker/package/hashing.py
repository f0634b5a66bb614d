"""Hashes: of a run's inputs (what decides whether an existing output can be kept) and of files (SHA-1, as
the seed's `datapackage.json` lists them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024
# Part of every inputs hash: changing how outputs are made (not just what from) changes the hash too.
HASH_SCHEME = "headwater-package/1"


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no whitespace, so equal inputs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def inputs_hash(
    *,
    boundary_name: str,
    boundary_wkb_hex: str,
    processor: str,
    options: Mapping[str, Any],
    sources: Sequence[Mapping[str, Any]],
) -> str:
    """SHA-256 of everything an output depends on: the boundary (its normalised geometry), the processor
    (`dataset.version`), its options and the identity of each source (URL or object, with its ETag,
    modification time and size)."""
    payload = {
        "scheme": HASH_SCHEME,
        "boundary": {"name": boundary_name, "geometry": boundary_wkb_hex},
        "processor": processor,
        "options": options,
        "sources": list(sources),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def file_sha1(path: Path) -> str:
    """SHA-1 of a file, hex, read in chunks."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
