"""What every worker command does around its work: logs that hold no secret, and a clean stop on a signal."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType

from . import logs, s3
from .logs import redact


class Terminated(KeyboardInterrupt):
    """Raised from the SIGTERM/SIGINT handler, so that the work in progress unwinds (open uploads are
    aborted, transactions rolled back) on the way out.

    A KeyboardInterrupt, because psycopg then cancels the running query and leaves the connection usable
    for the rollback, exactly as it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def worker_process(env: Mapping[str, str], dsn: str | None) -> Iterator[None]:
    """Set up the logs (the database DSN and the S3 keys in `env` redacted from them), and turn SIGTERM and
    SIGINT into `Terminated` until the block ends."""
    logs.setup()
    s3.redact_credentials(env)
    redact.add_dsn(dsn)
    previous = {
        signum: signal.signal(signum, _raise_terminated) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
