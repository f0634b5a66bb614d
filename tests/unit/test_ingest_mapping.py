"""Mappings: every shipped one loads; an invalid one is refused with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from headwater_worker.ingest.mapping import Mapping, MappingError, mappings_dir, shipped
from headwater_worker.ingest.schema.models import FINAL_TABLES, STAGING_TABLES
from headwater_worker.ingest.statements import conflict_key

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
SHIPPED = sorted(p.stem for p in MAPPINGS.glob("*.yaml"))


def test_the_seed_datasets_are_shipped() -> None:
    assert SHIPPED == [
        "api_energy_daily",
        "api_energy_hourly",
        "api_environmental_metrics",
        "api_solar_daily",
        "api_solar_hourly",
        "api_solar_monthly",
        "dairy_production",
        "energy_daily",
        "energy_hourly",
        "environmental_metrics",
    ]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mappings_match_their_tables(name: str) -> None:
    mapping = shipped(name, {"HEADWATER_MAPPINGS_DIR": str(MAPPINGS)})
    assert mapping.dataset == name
    final = FINAL_TABLES[mapping.target_table]
    staging = STAGING_TABLES[mapping.staging_table]
    assert set(mapping.db_columns) <= set(final.columns.keys())
    assert set(mapping.db_columns) <= set(staging.columns.keys())
    # The final table's primary key is the mapping's on_columns, with the device when they leave it out.
    key = [c.name for c in final.primary_key.columns]
    assert conflict_key(mapping.conflict_resolution.on_columns, key) == tuple(key)


def test_the_development_default_is_the_repository_folder() -> None:
    assert mappings_dir({}) == MAPPINGS or mappings_dir({}) == Path("/opt/headwater/mappings")
    assert mappings_dir({"HEADWATER_MAPPINGS_DIR": "/somewhere"}) == Path("/somewhere")


def test_an_unknown_mapping_name_lists_the_available_ones() -> None:
    with pytest.raises(MappingError, match=r"no mapping named 'nope'.*energy_hourly"):
        shipped("nope", {"HEADWATER_MAPPINGS_DIR": str(MAPPINGS)})


def base() -> dict[str, object]:
    return yaml.safe_load((MAPPINGS / "energy_hourly.yaml").read_text())  # type: ignore[no-any-return]


def refused(changes: dict[str, object]) -> str:
    data = base()
    for dotted, value in changes.items():
        target: dict[str, object] = data
        *parents, last = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})  # type: ignore[assignment]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    with pytest.raises(MappingError) as refusal:
        Mapping.parse(yaml.safe_dump(data), origin="custom.yaml")
    return str(refusal.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"coercions.ts": "datetimez"}, "coercions.ts.type: Input should be 'datetime'"),
        ({"conflict_resolution.strategy": "merge"}, "conflict_resolution.strategy"),
        ({"conflict_resolution.update_columns": ["power"]}, "conflict_resolution.update_columns: not among"),
        ({"conflict_resolution.on_columns": ["nope"]}, "conflict_resolution.on_columns: not among"),
        ({"conflict_resolution.on_columns": []}, "conflict_resolution.on_columns: required by strategy"),
        ({"validation_rules.schema.required": ["kwh"]}, "validation_rules.schema.required: not among"),
        (
            {"validation_rules.constraints.energy_kwh": {"min": 5, "max": 1}},
            "min 5.0 is greater than max 1.0",
        ),
        ({"validation_rules.constraints.ts": {"min": 0}}, "validation_rules.constraints.ts: min/max need"),
        ({"target_table": None}, "target_table: required key missing"),
        ({"target_table": "Fact-Energy"}, "target_table: String should match pattern"),
        ({"staging_table": "fact_energy_hourly"}, "staging_table: must differ"),
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
        ({"colums": {"a": "b"}}, "colums: unknown key"),
        ({"columns": {"Date and Time": "ts", "Other": "ts"}}, "columns: database column mapped twice: ts"),
        (
            {"columns": {"Date and Time": "device_id"}},
            "columns: 'device_id' is filled by the pipeline",
        ),
        ({"csv.delimiter": ";;"}, "csv.delimiter"),
    ],
)
def test_an_invalid_mapping_is_refused_naming_the_key(changes: dict[str, object], expected: str) -> None:
    message = refused(changes)
    assert message.startswith("custom.yaml: ")
    assert expected in message


def test_not_yaml_and_not_an_object_are_refused() -> None:
    with pytest.raises(MappingError, match="not valid YAML"):
        Mapping.parse("a: [b", origin="broken.yaml")
    with pytest.raises(MappingError, match="a mapping is a YAML object"):
        Mapping.parse("- a\n- b\n", origin="list.yaml")
