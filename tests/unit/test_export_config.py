"""ExportConfig: the JSON the operator writes and the worker reads; task resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from headwater_worker.export.command import _narrow, load_config
from headwater_worker.export.config import ExportConfig, FailureReason, delete_key, select_key
from headwater_worker.export.errors import ConfigurationError, ExportError
from headwater_worker.export.tasks import ExportTask, copy_statement, resolve_tasks
from pydantic import HttpUrl, ValidationError

S3 = {"s3": {"bucket": "exports", "prefix": "daily", "region": "eu-west-1"}}


def config(**values: Any) -> ExportConfig:
    return ExportConfig.model_validate({"destination": S3, **values})


def test_full_config_round_trips_through_the_environment() -> None:
    raw = {
        "tasks": [{"name": "agency", "select": "SELECT * FROM agency", "delete": "DELETE FROM agency"}],
        "tasksDir": "/etc/headwater/tasks",
        "only": ["agency"],
        "destination": {
            "s3": {
                "bucket": "exports",
                "prefix": "ckb/",
                "endpoint": "http://minio:9000",
                "region": "eu-west-1",
                "forcePathStyle": True,
                "partSizeMiB": 16,
            }
        },
        "gzipLevel": 9,
        "retention": {"keepLast": 7},
        "exportJob": "data/nightly",
    }
    parsed = ExportConfig.from_env(json.dumps(raw))
    assert parsed.tasks[0].delete == "DELETE FROM agency"
    assert parsed.tasks_dir == "/etc/headwater/tasks"
    assert parsed.destination.s3 is not None
    assert parsed.destination.s3.part_size_mib == 16
    assert parsed.destination.s3.folder == "ckb/"
    assert parsed.retention is not None
    assert parsed.retention.keep_last == 7
    assert json.loads(parsed.to_env()) == raw
    assert ExportConfig.from_env(parsed.to_env()) == parsed


def test_defaults() -> None:
    parsed = config(tasks=[{"name": "t", "select": "SELECT 1"}])
    assert parsed.gzip_level == 6
    assert parsed.retention is None
    assert parsed.destination.s3 is not None
    assert parsed.destination.s3.part_size_mib == 8
    assert json.loads(parsed.to_env()) == {
        "tasks": [{"name": "t", "select": "SELECT 1"}],
        "destination": {
            "s3": {
                "bucket": "exports",
                "prefix": "daily",
                "region": "eu-west-1",
                "forcePathStyle": False,
                "partSizeMiB": 8,
            }
        },
        "gzipLevel": 6,
    }


def test_endpoint_accepts_url_objects() -> None:
    parsed = config(
        tasks=[{"name": "t", "select": "SELECT 1"}],
        destination={"s3": {"bucket": "exports", "endpoint": HttpUrl("http://minio.storage:9000")}},
    )
    assert parsed.destination.s3 is not None
    assert parsed.destination.s3.endpoint == "http://minio.storage:9000"


def test_volume_destination() -> None:
    parsed = ExportConfig.model_validate(
        {"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": {"volume": {"path": "/exports"}}}
    )
    assert parsed.destination.volume is not None
    assert parsed.destination.volume.path == "/exports"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": {}}, "exactly one"),
        (
            {"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": {**S3, "volume": {"path": "/x"}}},
            "exactly one",
        ),
        ({"destination": S3}, "tasksDir"),
        ({"tasks": [{"name": "Bad Name", "select": "SELECT 1"}], "destination": S3}, "pattern"),
        ({"tasks": [{"name": "t", "select": "   "}], "destination": S3}, "at least 1"),
        (
            {
                "tasks": [{"name": "t", "select": "SELECT 1"}, {"name": "t", "select": "SELECT 2"}],
                "destination": S3,
            },
            "unique",
        ),
        ({"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": S3, "gzipLevel": 10}, "less than"),
        (
            {"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": S3, "retention": {"keepLast": 0}},
            "greater",
        ),
        ({"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": S3, "surprise": 1}, "Extra inputs"),
        (
            {"tasks": [{"name": "t", "select": "SELECT 1"}], "destination": {"volume": {"path": "relative"}}},
            "pattern",
        ),
        (
            {
                "tasks": [{"name": "t", "select": "SELECT 1"}],
                "destination": {"s3": {"bucket": "b", "region": "x"}},
            },
            "pattern",
        ),
    ],
)
def test_invalid_configs_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        ExportConfig.model_validate(values)


def test_load_config_reports_configuration_errors_with_the_field() -> None:
    with pytest.raises(ConfigurationError, match="not set"):
        load_config({})
    with pytest.raises(ConfigurationError, match=r"destination: Field required"):
        load_config({"HEADWATER_EXPORT_CONFIG": json.dumps({"tasks": [{"name": "t", "select": "SELECT 1"}]})})
    with pytest.raises(ConfigurationError, match="Invalid JSON"):
        load_config({"HEADWATER_EXPORT_CONFIG": "{not json"})


def write_tasks_dir(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def configmap_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder laid out as Kubernetes mounts a ConfigMap: keys are symlinks into a hidden `..data`."""
    folder = tmp_path / "tasks"
    data = folder / "..2025_01_01_00_00_00.000000000"
    write_tasks_dir(data, files)
    (folder / "..data").symlink_to(data.name)
    for name in files:
        (folder / name).symlink_to(Path("..data") / name)
    return folder


def test_tasks_dir_as_a_mounted_configmap(tmp_path: Path) -> None:
    folder = configmap_dir(
        tmp_path,
        {
            select_key("agency"): "COPY (SELECT * FROM agency) TO STDOUT WITH CSV HEADER;\n",
            delete_key("agency"): "DELETE FROM agency;\n",
            select_key("source"): "SELECT * FROM source",
            delete_key("source"): "\n  \n",  # an empty delete means: do not delete
        },
    )
    tasks = resolve_tasks(config(tasksDir=str(folder)))
    assert tasks == [
        ExportTask("agency", "COPY (SELECT * FROM agency) TO STDOUT WITH CSV HEADER;", "DELETE FROM agency;"),
        ExportTask("source", "SELECT * FROM source", None),
    ]


def test_tasks_dir_in_the_seeds_folder_layout(tmp_path: Path) -> None:
    folder = write_tasks_dir(
        tmp_path / "Export",
        {"source_file/select.sql": "SELECT 1", "source_file/delete.sql": "DELETE FROM f", "README": "x"},
    )
    assert resolve_tasks(config(tasksDir=str(folder))) == [
        ExportTask("source_file", "SELECT 1", "DELETE FROM f")
    ]


def test_inline_tasks_come_first_then_the_folder(tmp_path: Path) -> None:
    folder = write_tasks_dir(tmp_path / "d", {select_key("b"): "SELECT 2", select_key("a"): "SELECT 1"})
    tasks = resolve_tasks(config(tasks=[{"name": "z", "select": "SELECT 0"}], tasksDir=str(folder)))
    assert [task.name for task in tasks] == ["z", "a", "b"]


def test_a_task_declared_twice_is_refused(tmp_path: Path) -> None:
    folder = write_tasks_dir(tmp_path / "d", {select_key("a"): "SELECT 1"})
    with pytest.raises(ConfigurationError, match=r"declared twice.*: a"):
        resolve_tasks(config(tasks=[{"name": "a", "select": "SELECT 0"}], tasksDir=str(folder)))


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        ({delete_key("a"): "DELETE FROM a"}, "without a select query in tasksDir: a"),
        ({select_key("Bad"): "SELECT 1"}, "invalid task names in tasksDir: Bad"),
        ({select_key("a"): "  "}, "task a in tasksDir is empty"),
    ],
)
def test_broken_tasks_dirs_are_configuration_errors(
    tmp_path: Path, files: dict[str, str], complaint: str
) -> None:
    folder = write_tasks_dir(tmp_path / "d", files)
    with pytest.raises(ConfigurationError, match=complaint):
        resolve_tasks(config(tasksDir=str(folder)))


def test_missing_tasks_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a folder"):
        resolve_tasks(config(tasksDir=str(tmp_path / "absent")))


def test_only_selects_tasks_in_declaration_order() -> None:
    tasks = [{"name": n, "select": "SELECT 1"} for n in ("a", "b", "c")]
    assert [t.name for t in resolve_tasks(config(tasks=tasks, only=["c", "a"]))] == ["a", "c"]


def test_unknown_names_in_only_are_named() -> None:
    tasks = [{"name": "a", "select": "SELECT 1"}]
    with pytest.raises(ConfigurationError, match="unknown tasks in `only`: nope, zzz") as raised:
        resolve_tasks(config(tasks=tasks, only=["zzz", "a", "nope"]))
    assert raised.value.reason is FailureReason.CONFIGURATION_ERROR


def test_an_empty_selection_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ConfigurationError, match="no export tasks"):
        resolve_tasks(config(tasksDir=str(folder)))


def test_command_line_only_narrows_the_configured_only() -> None:
    tasks = [{"name": n, "select": "SELECT 1"} for n in ("a", "b", "c")]
    assert _narrow(config(tasks=tasks), ["b"]).only == ["b"]
    assert _narrow(config(tasks=tasks, only=["a", "b"]), ["b"]).only == ["b"]
    with pytest.raises(ConfigurationError, match="not selected by the configuration's `only`: c"):
        _narrow(config(tasks=tasks, only=["a", "b"]), ["c"])


@pytest.mark.parametrize(
    ("select", "statement"),
    [
        ("SELECT * FROM t", "COPY (\nSELECT * FROM t\n) TO STDOUT WITH CSV HEADER"),
        ("SELECT * FROM t;;\n", "COPY (\nSELECT * FROM t\n) TO STDOUT WITH CSV HEADER"),
        ("SELECT 1 -- trailing comment", "COPY (\nSELECT 1 -- trailing comment\n) TO STDOUT WITH CSV HEADER"),
        ("COPY (SELECT 1) TO STDOUT WITH CSV HEADER;", "COPY (SELECT 1) TO STDOUT WITH CSV HEADER"),
        (
            "-- agency\n/* all */ copy agency to stdout csv header",
            "-- agency\n/* all */ copy agency to stdout csv header",
        ),
    ],
)
def test_copy_statement(select: str, statement: str) -> None:
    assert copy_statement(select) == statement


def test_copy_to_a_server_file_is_refused_before_anything_runs() -> None:
    tasks = [{"name": "a", "select": "COPY (SELECT 1) TO '/tmp/steal.csv'"}]
    with pytest.raises(ExportError, match="TO STDOUT") as raised:
        resolve_tasks(config(tasks=tasks))
    assert raised.value.reason is FailureReason.INVALID_QUERY
