"""The template generator on the corpus: sources nobody tuned it for, each sampled, generated, run.

Each source of `tests/data/wrapper/corpus.json` is sampled as generation samples it, a module is generated
from the sample and the indicator alone, and the module runs in this process against the whole source (a
`FileSource` for files, an `HttpSource` against a local HTTP server for APIs): its points must be the
source's points exactly, and a second run from the newest of them must collect nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from headwater_worker.wrapper.contract import Point
from headwater_worker.wrapper.generate import sample_api
from headwater_worker.wrapper.sample import Sample
from headwater_worker.wrapper.sampling import sample_file
from headwater_worker.wrapper.source import FileSource, HttpSource
from headwater_worker.wrapper.template import TemplateRequest, generate

from tests.fakes.apis import FakeIndicatorApi

DATA = Path(__file__).resolve().parents[1] / "data" / "wrapper"
CORPUS: list[dict[str, Any]] = json.loads((DATA / "corpus.json").read_text())


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    apis = {}
    for entry in CORPUS:
        if entry["type"] == "API":
            api = json.loads((DATA / entry["file"]).read_text())
            apis[api["path"]] = api
    server = FakeIndicatorApi(apis).start()
    yield server.url
    server.stop()


def request_of(entry: Mapping[str, Any]) -> TemplateRequest:
    indicator = entry["indicator"]
    return TemplateRequest(
        name=indicator["name"],
        description=indicator.get("description"),
        unit=indicator.get("unit"),
        notes=indicator.get("notes"),
    )


def source_of(entry: Mapping[str, Any], api_url: str) -> tuple[Sample, FileSource | HttpSource]:
    if entry["type"] == "API":
        path = json.loads((DATA / entry["file"]).read_text())["path"]
        http = HttpSource(api_url + path, max_retries=0)
        return sample_api(http), http
    data = (DATA / entry["file"]).read_bytes()
    return sample_file(data, entry["type"], entry["file"]), FileSource(data)


def collect(
    code: str, since: datetime | None, source: FileSource | HttpSource
) -> list[tuple[datetime, float, str | None]]:
    namespace: dict[str, Any] = {}
    exec(compile(code, "wrapper.py", "exec"), namespace)  # noqa: S102 - the module under test
    found = []
    for item in namespace["collect"](since, source):
        point = Point(*item)
        assert point.timestamp.utcoffset() is not None
        assert isinstance(point.value, float)
        found.append((point.timestamp, point.value, (point.attributes or {}).get("series")))
    return found


def expected_of(entry: Mapping[str, Any]) -> list[tuple[datetime, float, str | None]]:
    return [(datetime.fromisoformat(point["x"]), point["y"], point["series"]) for point in entry["expected"]]


def test_the_corpus_has_enough_different_sources() -> None:
    assert len(CORPUS) >= 12
    assert len({entry["file"] for entry in CORPUS}) == len(CORPUS)
    assert {entry["type"] for entry in CORPUS} == {"CSV", "XLSX", "API"}


# Sources the generator fails on, and why: they count against its score in docs/wrapper.md. Strict, so a
# change that makes one pass says so.
KNOWN_FAILURES = {
    "year-month-columns": "the year and the month sit in two numeric columns; a time is read from one column",
    "api-odata-periods": "periods coded 2021MM01 are no time format the helpers know",
}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(entry, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[entry["name"]]))
        if entry["name"] in KNOWN_FAILURES
        else entry
        for entry in CORPUS
    ],
    ids=[entry["name"] for entry in CORPUS],
)
def test_each_source_is_collected_exactly_and_once(entry: dict[str, Any], api_url: str) -> None:
    sample, source = source_of(entry, api_url)
    code = generate(request_of(entry), sample)
    points = collect(code, None, source)
    expected = expected_of(entry)
    assert sorted(points, key=lambda p: (p[0], p[2] or "")) == sorted(
        expected, key=lambda p: (p[0], p[2] or "")
    )
    assert len(points) == len(expected)
    newest = max(point[0] for point in points)
    assert newest.tzinfo is not None
    assert collect(code, newest, source) == []
    assert collect(code, newest.astimezone(UTC).replace(year=newest.year - 100), source) == points
