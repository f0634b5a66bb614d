"""Pieces of the run that need no server: error reasons, connection retries, redaction, the CLI."""

from __future__ import annotations

import io
import json
import logging
from typing import Any, cast

import headwater_worker.__main__ as worker_main
import psycopg
import psycopg.errors
import pytest
from headwater_worker import logs
from headwater_worker.export import runner
from headwater_worker.export.config import FailureReason
from headwater_worker.export.errors import ConfigurationError, ExportError
from headwater_worker.logs import redact, redact_dsn


class FakeConnection:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken


def classify(error: psycopg.Error, broken: bool = False) -> FailureReason:
    return runner.classify_database_error(error, cast(Any, FakeConnection(broken)), "t").reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (psycopg.errors.SyntaxError("syntax error at or near"), FailureReason.INVALID_QUERY),
        (psycopg.errors.UndefinedTable('relation "x" does not exist'), FailureReason.INVALID_QUERY),
        (psycopg.errors.DivisionByZero("division by zero"), FailureReason.INVALID_QUERY),
        (psycopg.errors.InsufficientPrivilege("permission denied"), FailureReason.INVALID_QUERY),
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), FailureReason.INVALID_QUERY),
        (psycopg.errors.SerializationFailure("could not serialize"), FailureReason.SERIALIZATION_FAILURE),
        (psycopg.errors.DeadlockDetected("deadlock"), FailureReason.SERIALIZATION_FAILURE),
        (psycopg.errors.AdminShutdown("terminating connection"), FailureReason.DATABASE_UNAVAILABLE),
        (psycopg.errors.ConnectionFailure("gone"), FailureReason.DATABASE_UNAVAILABLE),
        (psycopg.errors.DiskFull("no space"), FailureReason.DATABASE_UNAVAILABLE),
        (psycopg.OperationalError("server closed the connection"), FailureReason.DATABASE_UNAVAILABLE),
        (psycopg.ProgrammingError("the query has no results to fetch"), FailureReason.INVALID_QUERY),
    ],
)
def test_database_errors_map_to_reasons(error: psycopg.Error, reason: FailureReason) -> None:
    assert classify(error) is reason


def test_a_broken_connection_is_unavailability_whatever_the_error() -> None:
    assert classify(psycopg.ProgrammingError("?"), broken=True) is FailureReason.DATABASE_UNAVAILABLE


def test_connect_retries_with_backoff_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []
    sleeps: list[float] = []

    def refuse(dsn: str, **_: Any) -> None:
        attempts.append(dsn)
        raise psycopg.OperationalError('connection to server at "db", port 5432 failed: Connection refused')

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(ExportError, match=r"after 4 attempts.*Connection refused") as raised:
        runner.connect("postgresql+psycopg2://u:pw@db/x", attempts=4, sleep=sleeps.append)
    assert raised.value.reason is FailureReason.DATABASE_UNAVAILABLE
    assert attempts == ["postgresql://u:pw@db/x"] * 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[-1] <= runner.CONNECT_MAX_DELAY


def test_connect_does_not_retry_an_invalid_dsn_nor_show_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def invalid(dsn: str, **_: Any) -> None:
        raise psycopg.ProgrammingError(f'missing "=" after "{dsn}" in connection info string')

    monkeypatch.setattr(psycopg, "connect", invalid)
    redact.add_dsn("postgresql://u:hunter22@db/x")
    try:
        with pytest.raises(ConfigurationError) as raised:
            runner.connect("postgresql://u:hunter22@db/x", sleep=lambda _: None)
    finally:
        redact.clear()
    assert "hunter22" not in raised.value.message


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://app:p%40ss%2Fw0rd@db:5432/ckb", "p@ss/w0rd"),
        ("postgres://app:plain-secret@db/ckb?sslmode=require", "plain-secret"),
        ("host=db user=app password='quoted secret' dbname=ckb", "quoted secret"),
        ("host=db user=app password=kvsecret dbname=ckb", "kvsecret"),
    ],
)
def test_redactor_hides_dsns_and_their_passwords(dsn: str, secret: str) -> None:
    redact.add_dsn(dsn)
    try:
        for text in (dsn, f"error near {secret}!", f"could not connect with {dsn}"):
            cleaned = redact(text)
            assert secret not in cleaned
            assert secret.replace("@", "%40").replace("/", "%2F") not in cleaned
    finally:
        redact.clear()


def test_urls_with_passwords_are_redacted_even_when_unregistered() -> None:
    assert redact("see postgresql://u:unknown@h/db") == "see postgresql://u:***@h/db"
    assert redact_dsn("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"


def test_json_logs_carry_fields_and_are_redacted() -> None:
    stream = io.StringIO()
    logs.setup(stream=stream)
    redact.add("AKIASECRETKEYVALUE")
    try:
        logging.getLogger("headwater_worker.test").info(
            "hello %s", "AKIASECRETKEYVALUE", extra=logs.fields(task="t", rows=3)
        )
    finally:
        redact.clear()
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue())
    assert line["message"] == "hello ***"
    assert line["task"] == "t"
    assert line["rows"] == 3
    assert line["level"] == "info"
    assert line["time"].endswith("Z")


def test_worker_cli_lists_and_dispatches_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        worker_main.main(["--help"])
    assert "export" in capsys.readouterr().out
    with pytest.raises(SystemExit) as raised:
        worker_main.main(["nope"])
    assert raised.value.code == 2
    from headwater_worker.export import command

    seen: list[Any] = []

    def fake_run(args: Any) -> int:
        seen.append(args.only)
        return 0

    monkeypatch.setattr(command, "run", fake_run)
    assert worker_main.main(["export", "--only", "a", "--only", "b"]) == 0
    assert seen == [["a", "b"]]


def test_export_without_configuration_is_a_configuration_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from headwater_worker.export import command

    log = tmp_path / "termination-log"
    code = command.run(
        worker_main.build_parser("export")[0].parse_args(["export"]),
        {"HEADWATER_TERMINATION_LOG": str(log), "DATABASE_URL": "postgresql://u:pw@h/db"},
    )
    logging.getLogger().handlers.clear()
    assert code == 1
    message = json.loads(log.read_text())
    assert message["error"]["reason"] == "ConfigurationError"
    assert "HEADWATER_EXPORT_CONFIG" in message["error"]["message"]
    assert message["tasks"] == []
    assert capsys.readouterr().out == ""
