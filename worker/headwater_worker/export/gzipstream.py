"""Incremental gzip: bytes in, fixed-size compressed chunks out, never the whole stream in memory."""

from __future__ import annotations

import zlib

GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
INPUT_BUFFER = 256 * 1024


class GzipChunker:
    """Compresses what it is fed; hands out chunks of exactly `chunk_size` bytes (the last one shorter).

    `write()` returns a chunk only once compressed bytes beyond it exist, so every chunk it returns is
    known not to be the last: an upload can send it as a part at once. `finish()` returns the rest, the
    last chunk at its end. A stream that compresses to at most `chunk_size` bytes therefore comes out of
    `finish()` alone, in one piece.

    COPY delivers one row at a time; rows are gathered up to `INPUT_BUFFER` bytes before each call into
    zlib, which keeps the per-row overhead low. Memory held: the input buffer plus about one chunk.
    """

    def __init__(self, level: int, chunk_size: int) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self.raw_bytes = 0
        self.compressed_bytes = 0
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
        self._input = bytearray()
        self._output = bytearray()
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed uncompressed bytes; returns the complete chunks that more bytes follow."""
        if self._finished:
            raise ValueError("write after finish")
        self.raw_bytes += len(data)
        self._input += data
        if len(self._input) >= INPUT_BUFFER:
            self._compress()
        return self._take_chunks(more_follow=True)

    def finish(self) -> list[bytes]:
        """Flush the gzip trailer; returns the remaining chunks, at least one (the last may be shorter)."""
        if self._finished:
            return []
        self._compress()
        tail = self._compressor.flush(zlib.Z_FINISH)
        self._output += tail
        self.compressed_bytes += len(tail)
        self._finished = True
        chunks = self._take_chunks(more_follow=False)
        if self._output:
            chunks.append(bytes(self._output))
            self._output.clear()
        return chunks

    def _compress(self) -> None:
        if self._input:
            out = self._compressor.compress(bytes(self._input))
            self._input.clear()
            self._output += out
            self.compressed_bytes += len(out)

    def _take_chunks(self, *, more_follow: bool) -> list[bytes]:
        chunks = []
        while len(self._output) > self.chunk_size or (
            not more_follow and len(self._output) >= self.chunk_size
        ):
            chunks.append(bytes(self._output[: self.chunk_size]))
            del self._output[: self.chunk_size]
        return chunks
