"""The compute protocol's wire models carry exactly the fields and values a Core engine exchanges."""

from __future__ import annotations

import json
import uuid

import pytest
from headwater_worker.compute.command import fit
from headwater_worker.compute.config import ComputeResult, ErrorInfo, Stage
from headwater_worker.compute.errors import TaskError
from headwater_worker.compute.protocol import (
    SERVICE_AVAILABLE,
    TASK_QUEUED,
    FieldDescription,
    ServiceTask,
    TaskUpdate,
)
from headwater_worker.compute.storage import input_types, mime_type_of, output_key
from headwater_worker.termination import TERMINATION_MESSAGE_LIMIT
from pydantic import ValidationError

TASK_ID = uuid.UUID("6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10")


def test_a_core_engines_service_task_parses_with_its_extra_fields_ignored() -> None:
    body = {
        "s3_access_key_id": "id",
        "s3_secret_access_key": "secret",
        "s3_region": "eu-central-2",
        "s3_host": "http://minio:9000",
        "s3_bucket": "engine",
        "task": {
            "id": str(TASK_ID),
            "data_in": ["a.png", "b.txt"],
            "data_out": None,
            "status": "pending",
            "service_id": str(uuid.uuid4()),
            "pipeline_execution_id": None,
            "pipeline_step_id": None,
            "error_message": None,
            "created_at": "2025-01-01T00:00:00",
            "updated_at": "2025-01-01T00:00:00",
        },
        "callback_url": f"http://core:8080/tasks/{TASK_ID}",
    }
    parsed = ServiceTask.model_validate(body)
    assert parsed.task.id == TASK_ID
    assert set(json.loads(parsed.model_dump_json())) == {
        "s3_access_key_id",
        "s3_secret_access_key",
        "s3_region",
        "s3_host",
        "s3_bucket",
        "task",
        "callback_url",
    }
    assert set(json.loads(parsed.model_dump_json())["task"]) == {
        "id",
        "data_in",
        "data_out",
        "status",
        "service_id",
        "pipeline_execution_id",
        "pipeline_step_id",
        "error_message",
    }


def test_a_task_update_has_the_three_fields_and_only_the_protocols_statuses() -> None:
    update = TaskUpdate(status="finished", data_out=["x.png"])
    assert json.loads(update.model_dump_json()) == {
        "data_out": ["x.png"],
        "status": "finished",
        "error_message": None,
    }
    with pytest.raises(ValidationError, match="status"):
        TaskUpdate.model_validate({"status": "Finished", "data_out": []})


def test_service_endpoint_answers_are_json_objects_with_a_status() -> None:
    assert SERVICE_AVAILABLE.model_dump() == {"status": "Service is available"}
    assert TASK_QUEUED.model_dump() == {"status": "Task added to the queue"}


@pytest.mark.parametrize(
    ("key", "mime_type"),
    [
        ("in/photo.PNG", "image/png"),
        ("in/photo.jpeg", "image/jpeg"),
        ("in/photo.jpg", "image/jpeg"),
        ("rotation.txt", "text/plain"),
        ("table.csv", "text/csv"),
        ("x.json", "application/json"),
        ("a.tar.gz", None),
        ("noextension", None),
    ],
)
def test_a_keys_type_comes_from_its_extension(key: str, mime_type: str | None) -> None:
    assert mime_type_of(key) == mime_type


IMAGE_AND_ROTATION = (
    FieldDescription(name="image", type=["image/png", "image/jpeg"]),
    FieldDescription(name="rotation", type=["text/plain"]),
)


def test_inputs_map_to_fields_by_position_and_type() -> None:
    assert input_types(["a.jpg", "r.txt"], IMAGE_AND_ROTATION) == ["image/jpeg", "text/plain"]
    with pytest.raises(TaskError, match=r"'r\.txt' is text/plain: field 'image' takes image/png, image/jpeg"):
        input_types(["r.txt", "a.jpg"], IMAGE_AND_ROTATION)
    with pytest.raises(TaskError, match=r"takes 2 inputs \(image, rotation\), the task gives 1"):
        input_types(["a.jpg"], IMAGE_AND_ROTATION)


def test_outputs_the_task_does_not_name_go_under_its_id() -> None:
    assert output_key(str(TASK_ID), "result", "image/png") == f"{TASK_ID}/result.png"
    assert output_key(str(TASK_ID), "profile", "application/json") == f"{TASK_ID}/profile.json"


def test_a_result_with_a_huge_error_still_fits_the_termination_message() -> None:
    message = "boom " * 5000
    result = ComputeResult(
        update=TaskUpdate(status="error", error_message=message),
        stages=[Stage(status="fetching", started_at="2025-01-01T00:00:00Z")] * 10,
        error=ErrorInfo(reason="ServiceFailed", message=message),
    )
    text = fit(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = ComputeResult.model_validate_json(text)
    assert parsed.update.status == "error"
    assert parsed.update.error_message is not None
    assert parsed.update.error_message.startswith("boom")
    assert parsed.error is not None
    assert parsed.error.reason == "ServiceFailed"
