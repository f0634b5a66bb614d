"""The export's hot path: COPY rows gathered into blocks, compressed on a few threads, uploaded in order.

    main thread (COPY)         compression pool                     upload thread
    rows → 1 MiB blocks ──put──→ deflate_block(block, dictionary) ──→ in order: GzipChunker → upload.write

The main thread only reads: `blocks()` appends each row to a buffer and hands over whole blocks. Each
block is compressed on a small thread pool (zlib releases the GIL, so the blocks really are compressed in
parallel, and beside the COPY); `gzipstream` explains why the blocks form one ordinary gzip stream. One
upload thread takes the compressed blocks in input order, cuts them into parts and sends them.

Bounded memory: at most `depth` blocks wait between the main thread and the upload thread; `put()` waits
for room. Failures: whatever stops the upload thread (an S3 or volume error, a compression error) is
raised by the next `put()` or by `complete()`, in the main thread, as it would have been raised by a
direct `upload.write()`; `abort()` then stops the threads and aborts the upload. Signals (SIGTERM) only
ever interrupt the main thread: `put()` and `complete()` wait in interruptible calls, and the runner's
`abort()` on the way out stops the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ..logs import fields
from .destinations import Upload
from .gzipstream import Bytes, GzipChunker, deflate_block, window

log = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
MAX_WORKERS = 4
ABORT_WAIT_SECONDS = 10.0  # how long abort() lets a part being sent finish before aborting the upload

Item = tuple[bytes, Future[bytes]]


def compress_workers() -> int:
    """Threads for compression: the CPUs this process may run on, at most MAX_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def blocks(read: Callable[[], Bytes], size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Gather what `read()` returns (COPY rows, one at a time) into blocks of at least `size` bytes, the
    last one shorter, until `read()` returns nothing. The per-row work is one append and one comparison."""
    buffer = bytearray()
    while data := read():
        buffer += data
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


class _AbortedError(Exception):
    """The upload thread was told to stop (abort)."""


class BlockPipeline:
    """Blocks of uncompressed data in (`put`), a verified gzip file out (`complete`), or nothing (`abort`).

    Owns `upload` from here on: every call on it happens on the upload thread until that thread is done,
    then on the caller's thread (`complete`, `abort`).
    """

    def __init__(
        self,
        upload: Upload,
        *,
        level: int,
        chunk_size: int,
        workers: int | None = None,
        depth: int | None = None,
    ) -> None:
        self.upload = upload
        self.level = level
        self.workers = workers or compress_workers()
        self.depth = depth or 2 * self.workers
        self._queue: queue.Queue[Item | None] = queue.Queue(maxsize=self.depth)
        self._dictionary = b""
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._last: bytes | None = None
        try:
            self._chunker = GzipChunker(level, chunk_size)
            # Threads start with the first block (the pool) and here (the upload thread, last).
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="export-gzip")
            self._thread = threading.Thread(target=self._run, name="export-upload", daemon=True)
            self._thread.start()
        except BaseException:
            upload.abort()
            raise

    # -- the caller's side ---------------------------------------------------------------------------

    def put(self, block: bytes) -> None:
        """Hand over the next block (not to be changed afterwards); waits while `depth` blocks are pending.
        Raises the error that stopped the upload thread, if one did."""
        if self._stopping.is_set():
            raise RuntimeError("put() after abort()")
        self._raise_failure()
        future = self._pool.submit(deflate_block, block, self.level, self._dictionary)
        self._dictionary = window(block)
        self._queue.put((block, future))

    def complete(self) -> str:
        """Wait until every block is compressed and sent, then complete and verify the upload (see
        `Upload.complete`); returns its URI."""
        self._queue.put(None)
        self._thread.join()
        self._pool.shutdown()
        self._raise_failure()
        assert self._last is not None
        return self.upload.complete(self._last)

    def abort(self) -> None:
        """Stop the threads, then remove whatever the upload left behind (`Upload.abort`). Never raises.

        A part being sent may finish first, for up to ABORT_WAIT_SECONDS; no new one starts. After that
        the upload is aborted regardless: a part still under way can at worst leave a multipart upload
        behind, which the next run of the task removes."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._discard_pending()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wakes the upload thread if it waits for a block
        self._thread.join(ABORT_WAIT_SECONDS)
        if self._thread.is_alive():
            log.warning(
                "the upload thread is still sending; aborting the upload anyway",
                extra=fields(waitedSeconds=ABORT_WAIT_SECONDS),
            )
        self._pool.shutdown()  # a block being compressed takes milliseconds
        self.upload.abort()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _discard_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].cancel()

    # -- the upload thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        ended = False  # the end of the input (None) was taken from the queue
        try:
            while (item := self._queue.get()) is not None:
                block, future = item
                deflated = future.result()
                for chunk in self._chunker.write_block(block, deflated):
                    self._send(chunk)
            ended = True
            if self._stopping.is_set():
                return
            *middle, self._last = self._chunker.finish()
            for chunk in middle:
                self._send(chunk)
        except _AbortedError:
            return
        except BaseException as error:
            self._error = error
            # Keep taking blocks until the end, so that a put() waiting for room goes on and raises this.
            while not ended and (item := self._queue.get()) is not None:
                item[1].cancel()

    def _send(self, chunk: bytes) -> None:
        if self._stopping.is_set():
            raise _AbortedError
        self.upload.write(chunk)
