"""The gzip chunker: a valid gzip stream, in fixed-size chunks, whatever the input pieces; blocks
compressed apart (on threads) that form one ordinary gzip member."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from headwater_worker.export.gzipstream import (
    INPUT_BUFFER,
    WINDOW,
    GzipChunker,
    deflate_block,
    gzip_header,
    gzip_trailer,
    window,
)


def run(chunker: GzipChunker, pieces: list[bytes] | list[memoryview]) -> list[bytes]:
    chunks = []
    for piece in pieces:
        chunks += chunker.write(piece)
    chunks += chunker.finish()
    return chunks


@pytest.mark.parametrize("chunk_size", [1, 7, 1024, 64 * 1024])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_chunks_concatenate_to_the_gzip_of_the_input(chunk_size: int, level: int) -> None:
    rng = random.Random(chunk_size * 10 + level)
    pieces = [
        rng.randbytes(rng.randrange(0, 3000)) + b"row,text\n" * rng.randrange(0, 50) for _ in range(300)
    ]
    chunker = GzipChunker(level, chunk_size)
    chunks = run(chunker, pieces)
    assert gzip.decompress(b"".join(chunks)) == b"".join(pieces)
    assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size
    assert chunker.compressed_bytes == sum(map(len, chunks))
    assert chunker.raw_bytes == sum(map(len, pieces))


def test_write_only_returns_chunks_that_more_bytes_follow() -> None:
    chunker = GzipChunker(0, 100)  # level 0: output grows with the input, a few bytes of framing aside
    written = []
    for _ in range(50):
        written += chunker.write(os.urandom(INPUT_BUFFER // 8))
    assert written
    assert len(chunker._output) > 0
    tail = chunker.finish()
    assert tail
    assert all(len(chunk) == 100 for chunk in written + tail[:-1])


def test_a_stream_of_at_most_one_chunk_comes_out_of_finish_alone() -> None:
    data = os.urandom(1000)
    compressed = gzip.compress(data, compresslevel=0, mtime=0)
    chunker = GzipChunker(0, len(compressed) + 50)
    assert chunker.write(data) == []
    [only] = chunker.finish()
    assert gzip.decompress(only) == data


def test_an_empty_stream_is_a_valid_empty_gzip() -> None:
    chunks = run(GzipChunker(6, 1024), [])
    assert len(chunks) == 1
    assert gzip.decompress(chunks[0]) == b""


def test_memoryview_input_and_level_is_used() -> None:
    text = b"abc," * 100_000
    fast = b"".join(run(GzipChunker(1, 1 << 20), [memoryview(text)]))
    best = b"".join(run(GzipChunker(9, 1 << 20), [memoryview(text)]))
    assert gzip.decompress(fast) == gzip.decompress(best) == text
    assert len(best) <= len(fast)


def test_output_is_held_in_bounded_memory() -> None:
    """Incompressible input: chunks come out while writing, so the buffer never grows past a chunk plus
    the compressor's block."""
    chunk_size = 256 * 1024
    chunker = GzipChunker(6, chunk_size)
    emitted = 0
    for _ in range(64):
        emitted += sum(map(len, chunker.write(os.urandom(64 * 1024))))
        assert len(chunker._output) <= chunk_size
        assert len(chunker._input) < INPUT_BUFFER
    assert emitted > 3 * 1024 * 1024


def test_write_after_finish_is_refused() -> None:
    chunker = GzipChunker(6, 10)
    chunker.finish()
    assert chunker.finish() == []
    with pytest.raises(ValueError, match="after finish"):
        chunker.write(b"x")


def test_stream_is_a_single_gzip_member() -> None:
    data = b"".join(run(GzipChunker(6, 100), [b"a" * 1000, b"b" * 1000]))
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decompressor.decompress(data) == b"a" * 1000 + b"b" * 1000
    assert decompressor.eof
    assert decompressor.unused_data == b""


# -- blocks compressed apart, on threads ---------------------------------------------------------------


def csv_like(rows: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = [b"id,recorded_at,station,reading,note\n"]
    for i in range(rows):
        note = b"" if i % 3 == 0 else b"calibrated by team %d" % rng.randrange(89)
        lines.append(
            b'%d,2024-01-01 00:00:%02d+00,"station-%04d-%s",%d.%03d,%s\n'
            % (i, i % 60, i % 5000, rng.randbytes(6).hex().encode(), rng.randrange(10**6), i % 1000, note)
        )
    return b"".join(lines)


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, start = [], 0
    for size in sizes:
        pieces.append(data[start : start + size])
        start += size
    pieces.append(data[start:])
    return [piece for piece in pieces if piece]


def deflate_on_threads(pieces: list[bytes], level: int, workers: int = 4) -> list[bytes]:
    """Each block compressed on its own, in parallel, submitted last first: no block depends on the order
    in which the others are compressed."""
    dictionaries = [b"", *(window(piece) for piece in pieces[:-1])]
    with ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(deflate_block, piece, level, dictionary)
            for piece, dictionary in reversed(list(zip(pieces, dictionaries, strict=True)))
        ]
        return [future.result() for future in reversed(futures)]


def assemble(pieces: list[bytes], deflated: list[bytes], level: int, chunk_size: int) -> list[bytes]:
    chunker = GzipChunker(level, chunk_size)
    chunks = []
    for piece, block in zip(pieces, deflated, strict=True):
        chunks += chunker.write_block(piece, block)
    return chunks + chunker.finish()


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_blocks_compressed_in_parallel_are_one_gzip_member_of_the_exact_input(level: int) -> None:
    data = csv_like(40_000)
    rng = random.Random(level)
    # Blocks of every kind: large, shorter than the window, a single byte.
    sizes = [rng.choice([1, 100, WINDOW - 1, WINDOW, WINDOW + 1, 200_000, 1 << 20]) for _ in range(40)]
    pieces = split(data, sizes)
    chunks = assemble(pieces, deflate_on_threads(pieces, level), level, 64 * 1024)
    stream = b"".join(chunks)
    assert gzip.decompress(stream) == data
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decompressor.decompress(stream) == data  # reads it all, as one member
    assert decompressor.eof
    assert decompressor.unused_data == b""
    assert all(len(chunk) == 64 * 1024 for chunk in chunks[:-1])


@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip command")
def test_the_gzip_command_reads_a_block_stream(tmp_path: Path) -> None:
    data = csv_like(30_000)
    pieces = split(data, [1 << 20] * 3)
    (tmp_path / "export.csv.gz").write_bytes(
        b"".join(assemble(pieces, deflate_on_threads(pieces, 6), 6, 1 << 30))
    )
    result = subprocess.run(["gzip", "-t", str(tmp_path / "export.csv.gz")], check=False)
    assert result.returncode == 0
    out = subprocess.run(["gzip", "-dc", str(tmp_path / "export.csv.gz")], capture_output=True, check=True)
    assert out.stdout == data


def test_the_stream_does_not_depend_on_threads_and_costs_almost_nothing_in_size() -> None:
    data = csv_like(60_000)
    pieces = split(data, [1 << 20] * 8)
    one = b"".join(assemble(pieces, deflate_on_threads(pieces, 6, workers=1), 6, 1 << 30))
    four = b"".join(assemble(pieces, deflate_on_threads(pieces, 6, workers=4), 6, 1 << 30))
    assert one == four
    # Each block primed with the window before it compresses as well as one zlib stream, give or take a
    # few bytes per block.
    single = zlib.compress(data, 6, wbits=16 + zlib.MAX_WBITS)
    assert abs(len(one) - len(single)) < 64 * len(pieces)


def test_write_block_checks_its_order() -> None:
    chunker = GzipChunker(6, 1024)
    chunker.write(b"gathered, not compressed yet")
    with pytest.raises(ValueError, match="out of order"):
        chunker.write_block(b"x", deflate_block(b"x", 6))
    chunker.finish()
    with pytest.raises(ValueError, match="after finish"):
        chunker.write_block(b"x", deflate_block(b"x", 6))


def test_header_and_trailer() -> None:
    assert gzip_header(6) == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    assert gzip_header(9)[8] == 2  # the level hints zlib writes
    assert gzip_header(1)[8] == gzip_header(0)[8] == 4
    data = os.urandom(5000)
    chunker = GzipChunker(9, 1 << 20)
    assert chunker.write(data) == []
    [whole] = chunker.finish()
    assert whole[:10] == gzip_header(9)
    assert whole[-8:] == gzip_trailer(zlib.crc32(data), len(data))
    assert gzip.decompress(whole) == data
