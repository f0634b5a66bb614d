"""The file connector's sources, their pure parts: the configuration of a volume or S3 source, which names
are read, and the names files take when moved."""

from __future__ import annotations

import re
from typing import Any

import pytest
from headwater_worker.ingest.config import FileConfig
from headwater_worker.ingest.stores import free_name, included
from pydantic import ValidationError

VOLUME = {"path": "/data/in", "processedPath": "/data/done", "rejectedPath": "/data/bad"}
S3 = {"s3": {"bucket": "landing", "prefix": "in/", "processedPrefix": "done", "rejectedPrefix": "bad"}}


def test_an_s3_source_round_trips_and_names_its_folders() -> None:
    config = FileConfig.model_validate(S3)
    assert config.s3 is not None
    assert (config.s3.folder, config.s3.processed_folder, config.s3.rejected_folder) == (
        "in/",
        "done/",
        "bad/",
    )
    assert FileConfig.model_validate_json(config.model_dump_json(by_alias=True, exclude_none=True)) == config


@pytest.mark.parametrize(
    "body",
    [
        {**VOLUME, **S3},
        {**S3, "processedPath": "/data/done"},
        {"path": "/data/in"},
        {},
        {"s3": {"bucket": "landing", "processedPrefix": "", "rejectedPrefix": "bad"}},
    ],
)
def test_a_file_source_is_a_whole_volume_or_an_s3_prefix(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FileConfig.model_validate(body)


@pytest.mark.parametrize(
    ("name", "wanted"),
    [("a.csv", True), ("B.XLSX", True), (".a.csv.partial", False), (".hidden.csv", False), ("a.txt", False)],
)
def test_included_names(name: str, wanted: bool) -> None:
    assert included(name, ["*.csv", "*.xlsx"]) is wanted


def test_a_name_already_taken_gets_a_timestamp() -> None:
    assert free_name("meter.csv", lambda name: False) == "meter.csv"
    stamped = free_name("meter.csv", lambda name: name == "meter.csv")
    assert re.fullmatch(r"meter\.\d{8}T\d{12}Z\.csv", stamped)
