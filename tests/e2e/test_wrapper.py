"""Wrapper end to end: kubectl apply → operator → generator Job → code ConfigMap → collector Job, CronJob or
Deployment on the local node → PostgreSQL or S3, against corpus sources in a ConfigMap, in S3 and served by
a local HTTP API.

Issue 9's acceptance:
- each source type end to end, the points exactly the source's, water marks and periods right, a second run
  collecting nothing new: a wide CSV in a ConfigMap (`test_wide_csv_*`), an XLSX with title and notes rows
  in S3 (`test_xlsx_*`), a paginated JSON API with an API key (`test_paginated_api_*`);
- continuous mode: a new record is collected by the next poll alone, the pod killed in between loses and
  duplicates nothing (`test_continuous_*`);
- bad input: an unreachable source (`test_unreachable_*`), no time axis (`test_no_time_axis_*`), a missing
  Secret (`test_missing_secret_*`), a source that changes shape twice (`test_a_source_that_changes_*`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_localcluster.services import PostgresServer, S3Server

from tests.fakes.apis import FakeIndicatorApi
from tests.fixtures.cluster import Cluster, Kubectl, poll
from tests.fixtures.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

DATA = Path(__file__).resolve().parents[1] / "data" / "wrapper"
CORPUS = {entry["name"]: entry for entry in json.loads((DATA / "corpus.json").read_text())}
API_KEY = "wrapper-e2e-key"

Point = tuple[datetime, float, str]


def expected(name: str) -> list[Point]:
    entry = CORPUS[name]
    points = [(datetime.fromisoformat(p["x"]), p["y"], p["series"] or "") for p in entry["expected"]]
    return sorted(points, key=lambda point: (point[2], point[0]))


@dataclass
class Setup:
    kubectl: Kubectl
    namespace: str
    dsn: str

    def wrapper(self, name: str, entry: str, source: dict[str, Any], **spec: Any) -> dict[str, Any]:
        """A Wrapper of a corpus entry's indicator, its points going to the test database."""
        indicator = {k: v for k, v in CORPUS[entry]["indicator"].items() if v is not None}
        notes = indicator.pop("notes", None)
        body: dict[str, Any] = {
            "indicator": indicator,
            "source": {**source, **({"notes": notes} if notes else {})},
            "generator": {"type": "template", "maxAttempts": 2},
            "output": {"database": {"secretRef": {"name": "db"}, "table": "indicator_points"}},
        }
        body.update(spec)
        return {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "Wrapper",
            "metadata": {"name": name},
            "spec": body,
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.get_json("wrapper", name).get("status") or {})

    def wait(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 180
    ) -> Any:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if check(status) else None

        return poll(reached, timeout=timeout, interval=1.0, message=lambda: f"{what}: {self.describe(name)}")

    def wait_phase(self, name: str, *phases: str, timeout: float = 180) -> dict[str, Any]:
        return dict(
            self.wait(name, lambda s: s.get("phase") in phases, f"never {' or '.join(phases)}", timeout)
        )

    def describe(self, name: str) -> str:
        pods = self.kubectl.get_json("pods", "-l", f"headwater.dev/wrapper={name}")["items"]
        logs = [self.kubectl("logs", p["metadata"]["name"], "--all-containers") for p in pods]
        return (
            f"wrapper {name}: {json.dumps(self.status(name), indent=1)}\n"
            f"pods: {json.dumps([p.get('status') for p in pods], indent=1)}\nlogs: {logs}"
        )

    def points(self, resource_id: str) -> list[Point]:
        with psycopg.connect(self.dsn) as connection:
            rows = connection.execute(
                "SELECT ts, value, series FROM indicator_points WHERE resource_id = %s ORDER BY series, ts",
                (resource_id,),
            ).fetchall()
        return [(ts, value, series) for ts, value, series in rows]

    def resource(self, resource_id: str) -> dict[str, Any]:
        with psycopg.connect(self.dsn) as connection:
            row = connection.execute(
                "SELECT wrapper, name, type, unit, start_period, end_period, points, deleted"
                " FROM resources WHERE id = %s",
                (resource_id,),
            ).fetchone()
        assert row is not None, f"no resource {resource_id}"
        keys = ("wrapper", "name", "type", "unit", "start_period", "end_period", "points", "deleted")
        return dict(zip(keys, row, strict=True))

    def assert_collected(self, name: str, entry: str) -> dict[str, Any]:
        """The wrapper `name` completed with exactly the corpus entry's points, its marks and periods."""
        status = self.wait_phase(name, "Completed", "Error", "Stalled")
        assert status["phase"] == "Completed", self.describe(name)
        want = expected(entry)
        assert self.points(status["resourceId"]) == want
        times = [point[0] for point in want]
        assert parse(status["lowWaterMark"]) == parse(status["startPeriod"]) == min(times)
        assert parse(status["highWaterMark"]) == parse(status["endPeriod"]) == max(times)
        assert status["pointsCollected"] == len(want)
        assert status["collector"]["newPoints"] == len(want)
        resource = self.resource(status["resourceId"])
        assert resource["wrapper"] == f"{self.namespace}/{name}"
        assert resource["type"] == "sustainability_indicator"
        assert (resource["start_period"], resource["end_period"]) == (min(times), max(times))
        assert (resource["points"], resource["deleted"]) == (len(want), False)
        assert status["code"]["generator"] == "template"
        assert len(status["code"]["sha256"]) == 64
        return status

    def run_again(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """A second one-off run of the same code (its Job deleted, the operator starts it again)."""
        ran_at = status["collector"]["ranAt"]
        self.kubectl("delete", "job", status["workloadName"], "--wait=true")
        return dict(
            self.wait(
                name,
                lambda s: s.get("phase") == "Completed" and s.get("collector", {}).get("ranAt") != ran_at,
                "the second run never reported",
            )
        )


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def setup(
    operator: OperatorProcess, cluster: Cluster, namespace: str, postgres: PostgresServer, database: str
) -> Setup:
    kubectl = cluster.kubectl.in_namespace(namespace)
    kubectl.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"dsn": database}}
    )
    return Setup(kubectl, namespace, database)


@pytest.fixture
def api() -> Iterator[FakeIndicatorApi]:
    apis = {}
    for entry in CORPUS.values():
        if entry["type"] == "API":
            served = json.loads((DATA / entry["file"]).read_text())
            apis[served["path"]] = served
    server = FakeIndicatorApi(apis, api_key=API_KEY).start()
    yield server
    server.stop()


def api_path(entry: str) -> str:
    return str(json.loads((DATA / CORPUS[entry]["file"]).read_text())["path"])


def csv_config_map(name: str, entry: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {CORPUS[entry]["file"]: (DATA / CORPUS[entry]["file"]).read_text(encoding="utf-8")},
    }


def test_wide_csv_in_a_configmap_is_collected_exactly_and_a_second_run_adds_nothing(setup: Setup) -> None:
    entry = "stats-office-wide"
    setup.kubectl.apply(
        [
            csv_config_map("energy-csv", entry),
            setup.wrapper(
                "energy",
                entry,
                {
                    "type": "CSV",
                    "file": {"configMapRef": {"name": "energy-csv", "key": CORPUS[entry]["file"]}},
                },
            ),
        ]
    )
    status = setup.assert_collected("energy", entry)
    assert status["workloadName"] == "energy-run-1"
    assert status["health"] == "HEALTHY"
    code = setup.kubectl.get_json("configmap", "energy-code")
    assert code["metadata"]["annotations"]["headwater.dev/code-sha256"] == status["code"]["sha256"]
    assert "def collect(since, source)" in code["data"]["wrapper.py"]

    again = setup.run_again("energy", status)
    assert again["collector"]["newPoints"] == 0
    assert again["pointsCollected"] == len(expected(entry))
    assert setup.points(status["resourceId"]) == expected(entry)
    assert again["code"]["sha256"] == status["code"]["sha256"], "the same spec is not regenerated"


@pytest.mark.s3
def test_xlsx_with_title_and_notes_rows_in_s3_is_collected_exactly(
    setup: Setup, s3: S3Server, bucket: str
) -> None:
    entry = "xlsx-report"
    s3.client().put_object(
        Bucket=bucket, Key="sources/report.xlsx", Body=(DATA / CORPUS[entry]["file"]).read_bytes()
    )
    setup.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3"},
                "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            },
            setup.wrapper(
                "report",
                entry,
                {
                    "type": "XLSX",
                    "file": {
                        "s3": {
                            "bucket": bucket,
                            "key": "sources/report.xlsx",
                            "endpoint": s3.endpoint_url,
                            "forcePathStyle": True,
                            "credentialsSecretRef": {"name": "s3"},
                        }
                    },
                },
            ),
        ]
    )
    status = setup.assert_collected("report", entry)
    again = setup.run_again("report", status)
    assert (again["collector"]["newPoints"], again["pointsCollected"]) == (0, len(expected(entry)))
    assert setup.points(status["resourceId"]) == expected(entry)


def api_key_secret(setup: Setup, name: str = "source-key") -> None:
    setup.kubectl.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"apiKey": API_KEY}}
    )


def api_source(api: FakeIndicatorApi, entry: str, key_secret: str) -> dict[str, Any]:
    return {"type": "API", "url": api.url + api_path(entry), "apiKeySecretRef": {"name": key_secret}}


def test_paginated_api_with_a_key_is_collected_exactly_and_a_second_run_adds_nothing(
    setup: Setup, api: FakeIndicatorApi
) -> None:
    entry = "api-list-link"
    api_key_secret(setup)
    setup.kubectl.apply(setup.wrapper("emissions", entry, api_source(api, entry, "source-key"), mode="once"))
    status = setup.assert_collected("emissions", entry)
    requests = api.received(api_path(entry))
    assert len({request.query.get("page", "1") for request in requests}) > 1, "every page was read"
    assert {request.headers.get("x-api-key") for request in requests} == {API_KEY}
    assert API_KEY not in json.dumps(status)

    again = setup.run_again("emissions", status)
    assert (again["collector"]["newPoints"], again["pointsCollected"]) == (0, len(expected(entry)))
    assert setup.points(status["resourceId"]) == expected(entry)


def continuous_api(setup: Setup, api: FakeIndicatorApi, name: str, entry: str) -> dict[str, Any]:
    """A continuous wrapper of the API `entry`, once its first poll has collected all of it."""
    api_key_secret(setup)
    setup.kubectl.apply(
        setup.wrapper(name, entry, api_source(api, entry, "source-key"), pollIntervalSeconds=10)
    )
    total = len(expected(entry))
    status = dict(
        setup.wait(
            name,
            lambda s: s.get("pointsCollected") == total or s.get("phase") in ("Error", "Stalled"),
            "the first poll never collected the source",
        )
    )
    assert status["phase"] == "Executing", setup.describe(name)
    assert status["workloadName"] == f"{name}-collect"
    assert setup.points(status["resourceId"]) == expected(entry)
    return status


def test_continuous_wrapper_collects_only_new_data_and_a_killed_pod_loses_and_duplicates_nothing(
    setup: Setup, api: FakeIndicatorApi
) -> None:
    entry = "api-results-next"
    path = api_path(entry)
    status = continuous_api(setup, api, "air", entry)
    [deployment] = setup.kubectl.get_json("deployments")["items"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    first_pod = setup.kubectl.get_json("pods", "-l", "headwater.dev/wrapper=air")["items"][0]

    # Two new days at the source, and the collector's pod killed before it polls again.
    records = json.loads((DATA / CORPUS[entry]["file"]).read_text())["records"]
    newest = max(records, key=lambda record: str(record["date"]))
    last_day = datetime.fromisoformat(newest["date"]).replace(tzinfo=UTC)
    added = [
        {**newest, "id": 10_000 + days, "date": (last_day + timedelta(days=days)).date().isoformat()}
        for days in (1, 2)
    ]
    setup.kubectl("delete", "pod", first_pod["metadata"]["name"], "--wait=false")
    api.add(path, added)
    total = len(expected(entry)) + 2
    status = dict(
        setup.wait(
            "air",
            lambda s: s.get("pointsCollected") == total,
            "the new records were never collected",
        )
    )
    rows = setup.points(status["resourceId"])
    assert len(rows) == len(set(rows)) == total
    assert parse(status["highWaterMark"]) == last_day + timedelta(days=2)
    assert status["collector"]["newPoints"] in (0, 2)
    assert status["collectionPhase"] == "continuous", "the history is back-filled"
    pods = setup.kubectl.get_json("pods", "-l", "headwater.dev/wrapper=air")["items"]
    assert first_pod["metadata"]["name"] not in {pod["metadata"]["name"] for pod in pods}


def test_a_source_that_changes_shape_is_regenerated_once_then_the_wrapper_errs(
    setup: Setup, api: FakeIndicatorApi
) -> None:
    entry = "api-list-link"
    path = api_path(entry)
    status = continuous_api(setup, api, "carbon", entry)
    first_code = status["code"]["sha256"]
    api.rename(path, "value", "reading")
    status = setup.wait(
        "carbon",
        lambda s: s.get("regenerations") == 1 and s.get("code", {}).get("sha256") not in (None, first_code),
        "never regenerated",
    )
    events = [entry["event"] for entry in status["executionLog"]]
    assert "regenerating" in events
    assert status["phase"] in ("Executing", "CreatingResource", "Generating")

    api.rename(path, "reading", "measurement")
    status = setup.wait_phase("carbon", "Error")
    assert status["regenerations"] == 1
    assert "changed shape again" in status["message"]
    assert status["health"] == "CRASHED"
    assert [job["metadata"]["name"] for job in setup.kubectl.get_json("jobs")["items"]].count(
        "carbon-gen-1-r2"
    ) == 0, "never a third generation"


def test_unreachable_source_is_retried_then_a_clear_error(setup: Setup) -> None:
    setup.kubectl.apply(
        setup.wrapper(
            "nowhere", "api-list-link", {"type": "API", "url": "http://127.0.0.1:9/v1/emissions"}, mode="once"
        )
    )
    status = setup.wait_phase("nowhere", "Error", "Stalled", timeout=240)
    assert status["phase"] == "Error"
    assert status["reason"] == "SourceUnreachable"
    assert "127.0.0.1:9" in status["message"]
    assert "\n" not in status["message"]


def test_no_time_axis_is_an_error_naming_what_was_not_found_after_max_attempts(setup: Setup) -> None:
    setup.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "sites"},
                "data": {"sites.csv": "site,area_m2,floors\nNorth depot,1200,2\nSouth yard,800,1\n"},
            },
            setup.wrapper(
                "sites",
                "stats-office-wide",
                {"type": "CSV", "file": {"configMapRef": {"name": "sites", "key": "sites.csv"}}},
            ),
        ]
    )
    status = setup.wait_phase("sites", "Error", "Stalled", "Completed")
    assert status["phase"] == "Error", setup.describe("sites")
    assert status["reason"] == "NoTimeAxis"
    assert "dates, months, quarters, weeks or years" in status["message"]
    assert "site, area_m2, floors" in status["message"], "the headers that were looked at"
    assert status["attempts"] == 2
    assert status["code"]["validation"]["passed"] is False
    assert status["code"]["validation"]["errors"]


def test_missing_secret_stalls_the_wrapper_naming_it(setup: Setup, api: FakeIndicatorApi) -> None:
    entry = "api-list-link"
    setup.kubectl.apply(setup.wrapper("keyless", entry, api_source(api, entry, "absent-key")))
    status = setup.wait_phase("keyless", "Stalled", "Error")
    assert status["phase"] == "Stalled"
    assert "absent-key" in status["message"]
    api_key_secret(setup, "absent-key")
    setup.wait(
        "keyless",
        lambda s: s.get("pointsCollected") == len(expected(entry)),
        "the Secret arrived but nothing was collected",
    )
