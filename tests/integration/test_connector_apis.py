"""The API connectors against local fakes of Tago.io, Airbeld, FusionSolar and a generic OAuth API.

What each shows: data loads window by window with the cursor advancing in the load's transaction; 500s,
timeouts and malformed JSON are retried, then the run fails with a clear reason and the cursor of the
failing window does not move; `429 Retry-After` is honoured; tokens are renewed once when they expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_worker.ingest.config import IngestConfig, IngestSummary
from headwater_worker.ingest.errors import IngestError
from headwater_worker.ingest.runner import run_once

from tests.fakes.apis import FakeAirbeld, FakeFusionSolar, FakeOAuthApi, FakeTago, energy

pytestmark = [pytest.mark.postgres]

FAST = {"timeoutSeconds": 1, "maxRetries": 2, "backoffSeconds": 0.05}


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def credentials(tmp_path: Path, **values: str) -> Path:
    folder = tmp_path / "credentials"
    folder.mkdir(exist_ok=True)
    for key, value in values.items():
        (folder / key).write_text(value + "\n")
    return folder


def config(kind: str, mapping: str, **extra: Any) -> IngestConfig:
    body: dict[str, Any] = {
        "connector": f"tests/{kind}",
        "type": kind,
        "mapping": {"name": mapping},
        "lookbackDays": 1,
    }
    body.update(extra)
    return IngestConfig.model_validate(body)


def query(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return list(conn.execute(statement, params).fetchall())


def cursor_of(dsn: str, device: str) -> datetime | None:
    rows = query(dsn, "SELECT cursor FROM api_fetch_cursor WHERE device_id = %s", device)
    return rows[0][0] if rows else None


@pytest.fixture
def tago() -> Iterator[FakeTago]:
    fake = FakeTago({"tok-1": "dev-1", "tok-2": "dev-2"})
    fake.timeout_seconds = 1.5
    fake.start()
    yield fake
    fake.stop()


def tago_config(tago: FakeTago, **extra: Any) -> IngestConfig:
    return config(
        "tago", "api_energy_hourly", deviceIds=["dev-1"], http={"baseUrl": tago.url, **FAST}, **extra
    )


# -- Tago.io -------------------------------------------------------------------------------------------------


def test_tago_loads_hour_by_hour_and_the_next_run_resumes_from_the_cursor(
    tago: FakeTago, database: str, tmp_path: Path
) -> None:
    secrets = credentials(tmp_path, **{"dev-1": "tok-1"})
    summary = run_once(tago_config(tago), database, secrets)

    horizon = now_hour()
    assert summary.run.batches == 24, "one batch per hour of the day looked back"
    assert summary.rows_loaded == 24
    assert summary.cursor == horizon
    requests = tago.received("/data")
    assert len(requests) == 24
    assert requests[0].headers["device-token"] == "tok-1"
    assert requests[0].query["variable"] == "energy_hourly"
    assert requests[0].query["start_date"] == (horizon - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    rows = query(database, "SELECT ts, energy_kwh FROM fact_energy_hourly ORDER BY ts")
    assert len(rows) == 24
    assert all(value == energy(ts) for ts, value in rows)
    assert cursor_of(database, "dev-1") == horizon

    again = run_once(tago_config(tago), database, secrets)
    assert again.run.batches == 0
    assert len(tago.received("/data")) == 24, "nothing left to ask for: the cursor is at the last full hour"


def test_tago_500s_are_retried_then_succeed(tago: FakeTago, database: str, tmp_path: Path) -> None:
    tago.fail("/data", "500", "500")
    summary = run_once(tago_config(tago), database, credentials(tmp_path, token="tok-1"))
    assert summary.run.batches == 24
    assert len(tago.received("/data")) == 26


@pytest.mark.parametrize(
    ("fault", "reason", "says"),
    [
        ("500", "SourceUnavailable", "500 Internal Server Error"),
        ("timeout", "SourceUnavailable", "timed out after 1s"),
        ("malformed", "SourceInvalidResponse", "unexpected response"),
    ],
)
def test_a_failing_tago_fails_the_run_and_the_cursor_stays(
    tago: FakeTago, database: str, tmp_path: Path, fault: str, reason: str, says: str
) -> None:
    tago.fail("/data", "ok", "ok", fault, fault, fault)  # two hours load, the third keeps failing
    with pytest.raises(IngestError) as failure:
        run_once(tago_config(tago), database, credentials(tmp_path, token="tok-1"))
    assert failure.value.reason == reason
    assert says in failure.value.message
    assert "(after 3 attempts)" in failure.value.message
    start = now_hour() - timedelta(days=1)
    assert cursor_of(database, "dev-1") == start + timedelta(hours=2), "advanced by the loaded windows only"
    assert query(database, "SELECT count(*) FROM fact_energy_hourly")[0][0] == 2
    summary = failure.value.summary
    assert isinstance(summary, IngestSummary)
    assert summary.run.batches == 2

    resumed = run_once(tago_config(tago), database, credentials(tmp_path, token="tok-1"))
    assert resumed.run.batches == 22
    third = [r for r in tago.received("/data")][-22]
    assert third.query["start_date"] == (start + timedelta(hours=2)).isoformat().replace("+00:00", "Z")


def test_429_retry_after_is_honoured(tago: FakeTago, database: str, tmp_path: Path) -> None:
    tago.fail("/data", "429")
    started = time.monotonic()
    run_once(
        tago_config(tago, lookbackDays=1, windowHours=24), database, credentials(tmp_path, token="tok-1")
    )
    assert time.monotonic() - started >= 1.0, "waited the second Retry-After asked for"
    assert len(tago.received("/data")) == 2


def test_a_wrong_tago_token_fails_at_once(tago: FakeTago, database: str, tmp_path: Path) -> None:
    with pytest.raises(IngestError) as failure:
        run_once(tago_config(tago), database, credentials(tmp_path, token="wrong"))
    assert failure.value.reason == "SourceAuthFailed"
    assert len(tago.received("/data")) == 1
    assert cursor_of(database, "dev-1") is None


# -- Airbeld -------------------------------------------------------------------------------------------------


def test_airbeld_logs_in_lists_devices_and_renews_an_expired_token(database: str, tmp_path: Path) -> None:
    fake = FakeAirbeld("ops@example.org", "pw-9", ["s1", "s2"])
    fake.start()
    try:
        cfg = config("airbeld", "api_environmental_metrics", http={"baseUrl": fake.url, **FAST})
        secrets = credentials(tmp_path, username="ops@example.org", password="pw-9")
        summary = run_once(cfg, database, secrets)
        assert summary.run.batches == 2, "one day-long window per device"
        assert query(database, "SELECT count(*) FROM environmental_metrics")[0][0] == 48
        assert len(fake.received("/auth/login")) == 1

        fake.expire_tokens()
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DELETE FROM api_fetch_cursor")
        again = run_once(cfg, database, secrets)
        assert again.run.duplicates == 2, "the same answers again: duplicates, nothing changes"
        assert len(fake.received("/auth/login")) == 2
    finally:
        fake.stop()


# -- FusionSolar ---------------------------------------------------------------------------------------------


def test_fusionsolar_hourly_kpis_with_relogin(database: str, tmp_path: Path) -> None:
    fake = FakeFusionSolar("api-user", "sys-code", ["NE=1"])
    fake.sessions_last = 1  # failCode 305 on the call after each KPI answer
    fake.start()
    try:
        cfg = config("fusionsolar", "api_solar_hourly", http={"baseUrl": fake.url, **FAST})
        secrets = credentials(tmp_path, username="api-user", systemCode="sys-code")
        summary = run_once(cfg, database, secrets)
        assert summary.run.batches == 2, "yesterday and today (Athens days)"
        assert query(database, "SELECT count(*) FROM fact_solar_hourly")[0][0] == 48
        tokens = [r.headers["xsrf-token"] for r in fake.received("/getKpiStationHour")]
        assert tokens == ["x-1", "x-1", "x-2"], (
            "the second day met failCode 305, logged in again, asked again"
        )
        assert fake.logins == 2

        again = run_once(cfg, database, secrets)
        assert again.run.duplicates == 1, "today again (its figures grow): same answer, a duplicate"
    finally:
        fake.stop()


def test_fusionsolar_daily_and_monthly(database: str, tmp_path: Path) -> None:
    fake = FakeFusionSolar("api-user", "sys-code", ["NE=7"])
    fake.start()
    try:
        secrets = credentials(tmp_path, username="api-user", systemCode="sys-code")
        run_once(
            config("fusionsolar", "api_solar_daily", http={"baseUrl": fake.url, **FAST}), database, secrets
        )
        run_once(
            config("fusionsolar", "api_solar_monthly", http={"baseUrl": fake.url, **FAST}), database, secrets
        )
        days = query(database, "SELECT count(*), min(extract(day FROM day)) FROM fact_solar_daily")[0]
        assert days[0] >= 28
        assert days[1] == 1
        assert query(database, "SELECT count(*) FROM fact_solar_monthly")[0][0] == 12
    finally:
        fake.stop()


# -- generic HTTP --------------------------------------------------------------------------------------------


def readings(start: datetime, end: datetime) -> list[dict[str, Any]]:
    moment, found = start, []
    while moment < end:
        found.append({"at": moment.isoformat(), "kwh": "1,5"})
        moment += timedelta(hours=6)
    return found


@pytest.mark.parametrize("auth", ["oauthPassword", "apiKey"])
def test_generic_http_with_oauth_or_an_api_key(database: str, tmp_path: Path, auth: str) -> None:
    fake = FakeOAuthApi(username="u1", password="p1", api_key="k-123", records=readings)
    fake.start()
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "api_energy_hourly.yaml").read_text()
    custom = tmp_path / "generic.yaml"
    custom.write_text(
        mapping.replace('"time": ts', '"at": ts').replace('"value": energy_kwh', '"kwh": energy_kwh')
    )
    try:
        cfg = IngestConfig.model_validate(
            {
                "connector": "tests/generic",
                "type": "http",
                "mapping": {"path": str(custom)},
                "datasourceId": "meter-9",
                "lookbackDays": 1,
                "windowHours": 24,
                "http": {
                    "baseUrl": fake.url,
                    "path": "/v1/data",
                    "recordsPath": "data.items",
                    "auth": {"type": auth},
                    **FAST,
                },
            }
        )
        secrets = credentials(tmp_path, username="u1", password="p1", apiKey="k-123")
        summary = run_once(cfg, database, secrets)
        assert summary.rows_loaded == 4
        assert query(database, "SELECT DISTINCT energy_kwh FROM fact_energy_hourly") == [(1.5,)]
        assert len(fake.received("/oauth/token")) == (1 if auth == "oauthPassword" else 0)
    finally:
        fake.stop()
