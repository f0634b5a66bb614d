import logging

import pytest
from headwater_operator.logs import RoutineSuccesses


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    "message", ["Handler 'reconcile' succeeded.", "Creation is processed: 1 succeeded; 0 failed."]
)
def test_routine_successes_are_left_out(message: str) -> None:
    assert not RoutineSuccesses().filter(record(logging.INFO, message))


@pytest.mark.parametrize(
    ("level", "message"),
    [
        (logging.INFO, "reconciled ExportJob ns/a: 2 children applied"),
        (logging.INFO, "Updating is processed: 0 succeeded; 1 failed."),
        (logging.ERROR, "Handler 'reconcile' failed with an exception. Will retry."),
        (logging.WARNING, "Handler 'reconcile' succeeded."),
    ],
)
def test_everything_else_is_kept(level: int, message: str) -> None:
    assert RoutineSuccesses().filter(record(level, message))
