"""What reaches a status message, an Event or a termination message is one readable line."""

import socket

import psycopg
import pytest
import sqlalchemy
from headwater_operator.conditions import Outcome
from headwater_worker.logs import error_line, one_line, redact


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_through_sqlalchemy_is_one_line_without_its_link_or_password() -> None:
    dsn = f"postgresql+psycopg://ingest:hunter2-secret@127.0.0.1:{closed_port()}/farm"
    redact.add_dsn(dsn)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
            sqlalchemy.create_engine(dsn).connect()
        assert "\n" in str(caught.value)
        assert "sqlalche.me" in str(caught.value)
        line = error_line(caught.value)
    finally:
        redact.clear()
    assert "\n" not in line
    assert "sqlalche.me" not in line
    assert not line.startswith("(psycopg.OperationalError)")
    assert line.startswith('connection failed: connection to server at "127.0.0.1"')
    assert "Connection refused Is the server running" in line


def test_a_refused_connection_from_psycopg_keeps_its_hint_on_the_same_line() -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(f"postgresql://ingest@127.0.0.1:{closed_port()}/farm", connect_timeout=2)
    line = error_line(caught.value)
    assert "\n" not in line
    assert "\t" not in line
    assert line.endswith("Is the server running on that host and accepting TCP/IP connections?")


def test_one_line_drops_sqlalchemys_statement_echo_and_psycopgs_caret() -> None:
    text = '(psycopg.errors.UndefinedTable) relation "x" does not exist\n[SQL: TABLE x]\n[parameters: {}]'
    assert one_line(text) == '(psycopg.errors.UndefinedTable) relation "x" does not exist'
    assert one_line('syntax error at or near "SELEC"\nLINE 1: SELEC 1\n        ^') == (
        'syntax error at or near "SELEC" LINE 1: SELEC 1'
    )


def test_an_outcome_message_is_one_line() -> None:
    outcome = Outcome.stalled(
        "Failed", "WorkerFailed", "Traceback (most recent call last):\n  File x\nValueError"
    )
    assert outcome.message == "Traceback (most recent call last): File x ValueError"
