"""The block pipeline: blocks in, compressed on a pool, uploaded in order by one thread; failures of that
thread reach the caller, and an abort stops everything and leaves nothing behind."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import pytest
from headwater_worker.export import pipeline
from headwater_worker.export.config import FailureReason, VolumeDestinationSpec
from headwater_worker.export.destinations import Upload, VolumeDestination
from headwater_worker.export.errors import ExportError
from headwater_worker.export.gzipstream import deflate_block
from headwater_worker.export.naming import file_name
from headwater_worker.export.pipeline import BlockPipeline, blocks
from headwater_worker.process import Terminated

NAME = file_name("t", datetime(2025, 1, 1, tzinfo=UTC))
KIB = 1024


def rows(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [
        b"%d,station-%s,%d\n" % (i, rng.randbytes(8).hex().encode(), rng.randrange(10**9))
        for i in range(count)
    ]


def reader(pieces: list[bytes]) -> Iterator[bytes]:
    yield from pieces
    yield b""


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("export-upload", "export-gzip"))]


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline_threads() == []


class RecordingUpload(Upload):
    """Keeps the parts in memory; `fail_at` makes the nth write fail, `gate` holds writes until set."""

    def __init__(self, fail_at: int | None = None, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.completed: bytes | None = None
        self.aborted = False
        self.writing = threading.Event()
        self.fail_at = fail_at
        self.gate = gate
        self.threads: set[str] = set()

    def write(self, chunk: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        self.writing.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_at is not None and len(self.parts) + 1 == self.fail_at:
            raise ExportError(FailureReason.DESTINATION_UNAVAILABLE, "S3 UploadPart failed: gone")
        self.parts.append(chunk)
        self.bytes_written += len(chunk)

    def complete(self, last: bytes = b"") -> str:
        self.completed = last
        self.bytes_written += len(last)
        return "memory://export.csv.gz"

    def abort(self) -> None:
        self.aborted = True


# -- gathering rows -------------------------------------------------------------------------------------


def test_blocks_gather_rows_into_blocks_of_at_least_the_size() -> None:
    pieces = rows(5000)
    gathered = list(blocks(reader(pieces).__next__, size=16 * KIB))
    assert b"".join(gathered) == b"".join(pieces)
    assert all(len(block) >= 16 * KIB for block in gathered[:-1])
    assert all(len(block) < 16 * KIB + 100 for block in gathered)  # a block ends with the row that fills it
    assert gathered[-1]
    assert list(blocks(reader([]).__next__)) == []


def test_blocks_accept_memoryviews_and_hand_out_immutable_blocks() -> None:
    pieces = [memoryview(row) for row in rows(100)]
    [block] = blocks(reader(pieces).__next__)  # type: ignore[arg-type]
    assert isinstance(block, bytes)
    assert block == b"".join(bytes(piece) for piece in pieces)


# -- the whole way through ------------------------------------------------------------------------------


def run_through(
    upload: Upload, data: bytes, *, block: int = 64 * KIB, chunk: int = 100 * KIB, **options: int
) -> str:
    flow = BlockPipeline(upload, level=6, chunk_size=chunk, **options)
    try:
        for piece in blocks(reader([data[i : i + 977] for i in range(0, len(data), 977)]).__next__, block):
            flow.put(piece)
        return flow.complete()
    except BaseException:
        flow.abort()
        raise


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_parts_come_out_in_order_and_form_the_gzip_of_the_input(workers: int) -> None:
    data = b"".join(rows(60_000))
    upload = RecordingUpload()
    assert run_through(upload, data, workers=workers) == "memory://export.csv.gz"
    assert upload.completed is not None
    stream = b"".join(upload.parts) + upload.completed
    assert gzip.decompress(stream) == data
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decompressor.decompress(stream) == data
    assert decompressor.eof
    assert decompressor.unused_data == b""
    assert all(len(part) == 100 * KIB for part in upload.parts)
    assert 0 < len(upload.completed) <= 100 * KIB
    assert upload.bytes_written == len(stream)
    assert upload.threads == {"export-upload"}, "parts are sent by the upload thread only"
    assert not upload.aborted


def test_a_small_export_is_one_last_chunk() -> None:
    upload = RecordingUpload()
    run_through(upload, b"id\n1\n")
    assert upload.parts == []
    assert upload.completed is not None
    assert gzip.decompress(upload.completed) == b"id\n1\n"


def test_an_empty_export_is_a_valid_empty_gzip() -> None:
    upload = RecordingUpload()
    run_through(upload, b"")
    assert upload.completed is not None
    assert gzip.decompress(upload.completed) == b""


def test_a_volume_file_is_written_and_published(tmp_path: Path) -> None:
    data = b"".join(rows(50_000))
    upload = VolumeDestination(VolumeDestinationSpec(path=str(tmp_path))).open(NAME)
    run_through(upload, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    assert gzip.decompress((tmp_path / NAME).read_bytes()) == data


# -- failures ---------------------------------------------------------------------------------------------


def test_a_failure_in_the_upload_thread_is_raised_by_put_and_the_abort_leaves_nothing(
    tmp_path: Path,
) -> None:
    class Failing(Upload):
        """A volume upload whose third part fails."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = VolumeDestination(VolumeDestinationSpec(path=str(tmp_path))).open(NAME)
            self.writes = 0

        def write(self, chunk: bytes) -> None:
            self.writes += 1
            if self.writes == 3:
                raise ExportError(FailureReason.DESTINATION_UNAVAILABLE, "writing failed: disk gone")
            self.inner.write(chunk)

        def complete(self, last: bytes = b"") -> str:
            return self.inner.complete(last)

        def abort(self) -> None:
            self.inner.abort()

    upload = Failing()
    assert list(tmp_path.iterdir()), "the temporary file exists while writing"
    data = os.urandom(4 * 1024 * KIB)  # incompressible: parts come out as fast as blocks go in
    with pytest.raises(ExportError, match="disk gone") as raised:
        run_through(upload, data, chunk=64 * KIB)
    assert raised.value.reason is FailureReason.DESTINATION_UNAVAILABLE
    assert upload.writes == 3, "nothing is sent after the failure"
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_the_last_put_is_raised_by_complete() -> None:
    upload = RecordingUpload(fail_at=2)
    data = os.urandom(300 * KIB)
    flow = BlockPipeline(upload, level=0, chunk_size=100 * KIB)
    flow.put(data)  # one block: every part comes out when the stream finishes
    with pytest.raises(ExportError, match="UploadPart"):
        flow.complete()
    flow.abort()
    assert upload.aborted
    assert upload.completed is None


@pytest.mark.timeout(30)
def test_a_failure_while_sending_the_end_of_the_stream_is_raised_by_complete() -> None:
    data = b"abc," * 5000
    dry = RecordingUpload()
    run_through(dry, data, chunk=8)
    # After the last block at most 8 bytes wait; the final deflate block and the trailer (10 bytes) come
    # with complete(), so the last full part is sent then.
    upload = RecordingUpload(fail_at=len(dry.parts))
    with pytest.raises(ExportError, match="UploadPart"):
        run_through(upload, data, chunk=8)
    assert upload.aborted
    assert upload.completed is None


def test_a_compression_failure_is_raised_too(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = deflate_block

    def deflate(data: bytes, level: int, dictionary: bytes = b"", *, last: bool = False) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise MemoryError("no room to compress")
        return real(data, level, dictionary, last=last)

    monkeypatch.setattr(pipeline, "deflate_block", deflate)
    upload = RecordingUpload()
    with pytest.raises(MemoryError, match="no room"):
        run_through(upload, b"".join(rows(40_000)))
    assert upload.aborted
    assert upload.completed is None


def test_a_pipeline_that_cannot_start_aborts_its_upload() -> None:
    upload = RecordingUpload()
    with pytest.raises(ValueError, match="chunk_size"):
        BlockPipeline(upload, level=6, chunk_size=0)
    assert upload.aborted


def test_an_error_of_the_caller_stops_the_threads_and_aborts() -> None:
    upload = RecordingUpload()
    flow = BlockPipeline(upload, level=6, chunk_size=64 * KIB)
    for block in blocks(reader(rows(20_000)).__next__, 64 * KIB):
        flow.put(block)
    flow.abort()  # as the runner does when the COPY fails
    assert upload.aborted
    assert upload.completed is None
    sent = len(upload.parts)
    time.sleep(0.1)
    assert len(upload.parts) == sent


# -- bounded memory, slow uploads, signals ----------------------------------------------------------------


def test_put_waits_while_the_upload_is_slow_then_abort_lets_the_part_finish_and_sends_no_other() -> None:
    gate = threading.Event()
    upload = RecordingUpload(gate=gate)
    flow = BlockPipeline(upload, level=0, chunk_size=16 * KIB, workers=2, depth=3)
    done = 0

    def feed() -> None:
        nonlocal done
        with contextlib.suppress(RuntimeError):  # put() after the abort
            for _ in range(50):
                flow.put(os.urandom(32 * KIB))
                done += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    assert upload.writing.wait(5)
    deadline = time.monotonic() + 5
    while done < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # The upload thread holds one block, `depth` wait in the queue, and the next put() waits for room.
    assert done == 1 + 3
    assert feeder.is_alive()

    aborting = threading.Thread(target=flow.abort)
    aborting.start()
    time.sleep(0.2)
    assert aborting.is_alive(), "abort waits for the part being sent"
    gate.set()
    aborting.join(5)
    assert not aborting.is_alive()
    assert upload.aborted
    assert len(upload.parts) == 1, "no part starts after the abort"
    feeder.join(5)  # the feeder's last put() went through or failed; either way it is done


def test_abort_does_not_wait_forever_for_a_stuck_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "ABORT_WAIT_SECONDS", 0.2)
    gate = threading.Event()
    upload = RecordingUpload(gate=gate)
    flow = BlockPipeline(upload, level=0, chunk_size=16 * KIB)
    flow.put(os.urandom(64 * KIB))
    assert upload.writing.wait(5)
    started = time.monotonic()
    flow.abort()
    assert time.monotonic() - started < 3
    assert upload.aborted
    gate.set()  # the stuck part returns; the thread then stops without sending another


def test_sigterm_while_put_waits_for_room_aborts_cleanly() -> None:
    """As in the worker: the handler raises in the main thread, which waits in put() for room."""
    gate = threading.Event()
    upload = RecordingUpload(gate=gate)

    def terminate(signum: int, frame: FrameType | None) -> None:
        gate.set()  # the part being sent finishes meanwhile
        raise Terminated(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, terminate)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(Terminated):
            run_through(upload, os.urandom(2 * 1024 * KIB), block=32 * KIB, chunk=16 * KIB, depth=2)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        gate.set()
    assert upload.aborted
    assert upload.completed is None
    assert len(upload.parts) == 1
