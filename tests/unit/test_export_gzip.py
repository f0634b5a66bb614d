"""The gzip chunker: a valid gzip stream, in fixed-size chunks, whatever the input pieces."""

from __future__ import annotations

import gzip
import os
import random
import zlib

import pytest
from headwater_worker.export.gzipstream import INPUT_BUFFER, GzipChunker


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
