"""A ServiceTask becomes a ComputeTask and a Secret: every protocol field lands where the operator reads it,
the key pair only in the Secret, and an invalid task is refused naming the ServiceTask's own fields."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from headwater_gateway.computetask import (
    credentials_name,
    owner_reference,
    same_task,
    task_name,
    task_objects,
)
from headwater_gateway.problems import InvalidFieldsError
from headwater_operator.api.computetask import ComputeTask
from headwater_worker.compute.protocol import ServiceTask

TASK_ID = uuid.UUID("6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10")
SERVICE_ID = uuid.UUID("0b6f1f1e-1d2c-4f5b-8a9e-3c4d5e6f7a8b")
PIPELINE_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")


def service_task(**changes: Any) -> ServiceTask:
    task: dict[str, Any] = {
        "id": str(TASK_ID),
        "data_in": ["uploads/photo.png", "uploads/rotation.txt"],
        "data_out": ["results/photo.png"],
        "status": "pending",
        "service_id": str(SERVICE_ID),
        "pipeline_execution_id": str(PIPELINE_ID),
        "pipeline_step_id": None,
        "error_message": None,
        "created_at": "2025-01-01T00:00:00",
        **changes.pop("task", {}),
    }
    body = {
        "s3_access_key_id": "AKIDEXAMPLE",
        "s3_secret_access_key": "wJalrXUtnFEMI-secret",
        "s3_region": "eu-central-2",
        "s3_host": "http://minio.storage:9000",
        "s3_bucket": "engine",
        "task": task,
        "callback_url": f"http://core.example:8080/tasks/{TASK_ID}",
        **changes,
    }
    return ServiceTask.model_validate(body)


def test_every_field_of_the_service_task_reaches_the_compute_task() -> None:
    objects = task_objects(service_task(), "image-rotate", "team-a", force_path_style=True)
    manifest = objects.compute_task
    assert manifest["metadata"] == {
        "name": f"task-{TASK_ID}",
        "namespace": "team-a",
        "labels": {"app.kubernetes.io/managed-by": "headwater-gateway"},
    }
    spec = manifest["spec"]
    assert spec["service"] == {"name": "image-rotate", "args": []}
    assert spec["dataIn"] == ["uploads/photo.png", "uploads/rotation.txt"]
    assert spec["dataOut"] == ["results/photo.png"]
    assert spec["s3"] == {
        "bucket": "engine",
        "endpoint": "http://minio.storage:9000",
        "region": "eu-central-2",
        "forcePathStyle": True,
        "credentialsSecretRef": {
            "name": f"task-{TASK_ID}-s3",
            "accessKeyIdKey": "AWS_ACCESS_KEY_ID",
            "secretAccessKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
    }
    assert spec["callbackUrl"] == f"http://core.example:8080/tasks/{TASK_ID}"
    assert spec["taskId"] == str(TASK_ID)
    assert spec["serviceId"] == str(SERVICE_ID)
    assert spec["pipelineExecutionId"] == str(PIPELINE_ID)
    assert "pipelineStepId" not in spec
    ComputeTask.model_validate(manifest)  # what the API server will be asked to store


def test_the_key_pair_is_only_in_the_secret() -> None:
    objects = task_objects(service_task(), "image-rotate", "team-a", force_path_style=True)
    assert "AKIDEXAMPLE" not in json.dumps(objects.compute_task)
    assert "wJalrXUtnFEMI-secret" not in json.dumps(objects.compute_task)
    assert objects.credentials == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": credentials_name(TASK_ID),
            "namespace": "team-a",
            "labels": {"app.kubernetes.io/managed-by": "headwater-gateway"},
        },
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret"},
    }


def test_without_a_key_pair_or_endpoint_the_task_uses_ambient_credentials_on_aws() -> None:
    task = service_task(s3_access_key_id="", s3_secret_access_key="", s3_host="", s3_region="")
    objects = task_objects(task, "csv-profile", "team-a", force_path_style=True)
    assert objects.credentials is None
    assert objects.compute_task["spec"]["s3"] == {
        "bucket": "engine",
        "region": "us-east-1",
        "forcePathStyle": False,
    }


def test_absent_data_out_lets_the_service_choose() -> None:
    objects = task_objects(service_task(task={"data_out": None}), "image-rotate", "a", force_path_style=False)
    assert "dataOut" not in objects.compute_task["spec"]
    assert objects.compute_task["spec"]["s3"]["forcePathStyle"] is False


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task": {"data_in": []}}, "task.data_in"),
        ({"task": {"data_in": ["ok", " leading-space"]}}, "task.data_in[1]"),
        ({"s3_bucket": "Not_A_Bucket"}, "s3_bucket"),
        ({"s3_host": "minio:9000"}, "s3_host"),
        ({"callback_url": "core/tasks/1"}, "callback_url"),
    ],
)
def test_an_invalid_task_is_refused_naming_the_service_tasks_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidFieldsError) as raised:
        task_objects(service_task(**changes), "image-rotate", "a", force_path_style=True)
    problem = raised.value.problem
    assert problem.status == 422
    assert [error.field for error in problem.errors or []] == [field]
    assert problem.detail is not None
    assert problem.detail.startswith(f"{field}: ")


def test_the_same_task_is_recognised_with_the_defaults_the_api_server_added() -> None:
    objects = task_objects(service_task(), "image-rotate", "a", force_path_style=True)
    stored = json.loads(json.dumps(objects.compute_task))
    stored["spec"]["backoffLimit"] = 0  # the CRD's default, written by the API server
    stored["metadata"]["uid"] = "d1e2"
    assert same_task(stored, objects)
    other = task_objects(
        service_task(task={"data_in": ["other.png", "r.txt"]}), "image-rotate", "a", force_path_style=True
    )
    assert not same_task(other.compute_task, objects)
    assert not same_task({"spec": {"nonsense": True}}, objects)


def test_names_derive_from_the_task_id_and_the_owner_is_the_compute_task() -> None:
    assert task_name(TASK_ID) == "task-6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10"
    assert len(task_name(TASK_ID) + "-callback") <= 63
    created = {"metadata": {"name": task_name(TASK_ID), "uid": "abc-123"}}
    assert owner_reference(created) == {
        "apiVersion": "headwater.dev/v1alpha1",
        "kind": "ComputeTask",
        "name": task_name(TASK_ID),
        "uid": "abc-123",
    }
