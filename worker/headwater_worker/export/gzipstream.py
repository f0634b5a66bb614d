"""Gzip in blocks: bytes in, fixed-size compressed chunks out, never the whole stream in memory.

The stream is one gzip member whose deflate data is made of blocks compressed separately. Each block is
raw deflate primed with the end of the input before it (the 32 KiB window a back-reference may reach) and
ends with a sync flush: non-final and byte-aligned. Blocks compressed one after another — or at the same
time on several threads, zlib releasing the GIL — therefore concatenate into a single deflate stream that
any gunzip reads as if one compressor had read the whole input, at practically the same size (a few bytes
per block). The CRC-32 and length of the trailer are computed over the blocks in order.
"""

from __future__ import annotations

import struct
import zlib

Bytes = bytes | bytearray | memoryview

WINDOW = 32 * 1024  # how far back deflate looks: the dictionary a block needs from the input before it
INPUT_BUFFER = 256 * 1024  # GzipChunker.write gathers this much before each block


def gzip_header(level: int) -> bytes:
    """The 10-byte member header zlib writes: no name, no time, the level hint, Unix."""
    hint = 2 if level == 9 else 4 if level < 2 else 0
    return bytes((0x1F, 0x8B, zlib.DEFLATED, 0, 0, 0, 0, 0, hint, 3))


def gzip_trailer(crc: int, size: int) -> bytes:
    """CRC-32 and length (modulo 2**32) of the uncompressed data, little-endian."""
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def window(data: Bytes) -> bytes:
    """The dictionary for the block that follows `data`: its last WINDOW bytes. The block before a short
    one may have held more of the window; a shorter dictionary only costs a little compression."""
    return bytes(data[-WINDOW:])


def deflate_block(data: Bytes, level: int, dictionary: Bytes = b"", *, last: bool = False) -> bytes:
    """One block of the stream: raw deflate of `data`, primed with `dictionary` (exactly the input bytes
    before `data`, at most WINDOW of them), ended by a sync flush — or, for the `last` block, by the final
    deflate block. Needs no state beyond its arguments, so blocks can be compressed on several threads."""
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class GzipChunker:
    """Assembles the gzip stream; hands out chunks of exactly `chunk_size` bytes (the last one shorter).

    `write()` gathers input up to `INPUT_BUFFER` bytes and compresses it as one block here;
    `write_block()` takes a block compressed elsewhere (by `deflate_block`, for example on a thread pool),
    blocks in input order. Both return a chunk only once compressed bytes beyond it exist, so every chunk
    they return is known not to be the last: an upload can send it as a part at once. `finish()` returns
    the rest, the last chunk at its end. A stream that compresses to at most `chunk_size` bytes therefore
    comes out of `finish()` alone, in one piece. Memory held: the input buffer plus about one chunk and one
    compressed block.
    """

    def __init__(self, level: int, chunk_size: int) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.level = level
        self.chunk_size = chunk_size
        self.raw_bytes = 0
        self.compressed_bytes = 0
        self._crc = 0
        self._dictionary = b""  # the end of the input so far, for the next block compressed here
        self._input = bytearray()
        self._output = bytearray()
        self._finished = False
        self._append(gzip_header(level))

    def write(self, data: Bytes) -> list[bytes]:
        """Feed uncompressed bytes; returns the complete chunks that more bytes follow."""
        self._check_open()
        self.raw_bytes += len(data)
        self._input += data
        if len(self._input) >= INPUT_BUFFER:
            self._compress_input(last=False)
        return self._take_chunks(more_follow=True)

    def write_block(self, data: Bytes, deflated: bytes) -> list[bytes]:
        """Add the next block of input, `data`, which `deflated = deflate_block(data, level, dictionary)`
        compressed with `dictionary = window(<the block before it>)` (empty for the first block). Returns
        the complete chunks that more bytes follow."""
        self._check_open()
        if self._input:
            raise ValueError("write_block after write: gathered input would come out of order")
        self.raw_bytes += len(data)
        self._add(data, deflated)
        return self._take_chunks(more_follow=True)

    def finish(self) -> list[bytes]:
        """Flush the gzip trailer; returns the remaining chunks, at least one (the last may be shorter)."""
        if self._finished:
            return []
        self._compress_input(last=True)
        self._append(gzip_trailer(self._crc, self.raw_bytes))
        self._finished = True
        chunks = self._take_chunks(more_follow=False)
        if self._output:
            chunks.append(bytes(self._output))
            self._output.clear()
        return chunks

    def _check_open(self) -> None:
        if self._finished:
            raise ValueError("write after finish")

    def _compress_input(self, *, last: bool) -> None:
        data = bytes(self._input)
        self._input.clear()
        self._add(data, deflate_block(data, self.level, self._dictionary, last=last))

    def _add(self, data: Bytes, deflated: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        if data:
            self._dictionary = window(data)
        self._append(deflated)

    def _append(self, compressed: bytes) -> None:
        self._output += compressed
        self.compressed_bytes += len(compressed)

    def _take_chunks(self, *, more_follow: bool) -> list[bytes]:
        chunks = []
        while len(self._output) > self.chunk_size or (
            not more_follow and len(self._output) >= self.chunk_size
        ):
            chunks.append(bytes(self._output[: self.chunk_size]))
            del self._output[: self.chunk_size]
        return chunks
