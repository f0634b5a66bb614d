"""The ComputeTask's pure parts in the operator: children built from a spec, status derived from children."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from headwater_operator.api.computetask import ComputeTaskSpec, ComputeTaskStatus
from headwater_operator.builders import computetask as build
from headwater_operator.builders.common import Owner
from headwater_operator.conditions import status_patch
from headwater_operator.config import OperatorConfig
from headwater_operator.status import computetask as observe
from headwater_worker.compute.config import CallbackConfig, ComputeConfig
from headwater_worker.compute.protocol import ServiceTask
from headwater_worker.compute.urls import shown_url

from tests.unit.workloads import job

UID = "0b6c1f5e-0000-4000-8000-000000000001"
OWNER = Owner("ComputeTask", "rotate", "data", UID)
CONFIG = OperatorConfig(worker_image="registry.example/headwater-worker:1", callback_attempts=3)
SPEC: dict[str, Any] = {
    "service": {"name": "image-rotate"},
    "dataIn": ["in/photo.png", "in/rotation.txt"],
    "s3": {
        "bucket": "compute",
        "endpoint": "http://minio:9000",
        "forcePathStyle": True,
        "credentialsSecretRef": {"name": "s3"},
    },
    "callbackUrl": "https://user:pw@core.example/tasks/1?token=t0ken",
    "activeDeadlineSeconds": 120,
}


def spec(**changes: Any) -> ComputeTaskSpec:
    body = copy.deepcopy(SPEC)
    body.update(changes)
    return ComputeTaskSpec.model_validate(body)


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item for item in container["env"]}


def test_a_builtin_task_is_an_account_its_status_grant_and_one_job() -> None:
    account, role, binding, task_job = build.children(OWNER, spec(), CONFIG, None)
    assert [c["kind"] for c in (account, role, binding, task_job)] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Job",
    ]
    assert role["rules"] == [
        {
            "apiGroups": ["headwater.dev"],
            "resources": ["computetasks/status"],
            "resourceNames": ["rotate"],
            "verbs": ["patch"],
        }
    ]
    assert binding["subjects"][0]["name"] == account["metadata"]["name"]
    assert task_job["metadata"]["name"] == "rotate-task"
    for child in (account, role, binding, task_job):
        assert child["metadata"]["ownerReferences"] == [OWNER.reference()]
    pod = task_job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["containers"][0]["command"][-2:] == ["compute", "task"]
    assert task_job["spec"]["activeDeadlineSeconds"] == 120
    [rule] = task_job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [2]


def test_the_worker_gets_the_task_and_never_a_secret_value() -> None:
    [*_, task_job] = build.children(OWNER, spec(), CONFIG, None)
    variables = env(task_job)
    config = ComputeConfig.from_env(variables["HEADWATER_COMPUTE_CONFIG"]["value"])
    assert str(config.task.id) == UID  # no taskId: the resource's uid
    assert config.task.data_in == ["in/photo.png", "in/rotation.txt"]
    assert config.task.data_out is None
    assert config.service == "image-rotate"
    assert config.s3.bucket == "compute"
    assert config.s3.force_path_style
    assert config.callback.attempts == 3
    assert config.compute_task == "data/rotate"
    assert variables["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3"
    assert variables["HEADWATER_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert not [name for name, item in variables.items() if "secret" in json.dumps(item.get("value", ""))]


def test_service_id_is_stable_per_service_unless_given() -> None:
    first = build.service_id(spec())
    assert first == build.service_id(spec())
    assert first != build.service_id(spec(service={"name": "image-resize"}))
    given = str(uuid.uuid4())
    assert str(build.service_id(spec(serviceId=given))) == given


def test_an_image_task_runs_the_image_with_the_service_task_and_no_token() -> None:
    image = spec(service={"image": "registry.example/rotator:2", "args": ["--fast"]})
    children = build.children(OWNER, image, CONFIG, None)
    assert [c["kind"] for c in children] == ["ServiceAccount", "Job"]
    task_job = children[-1]
    pod = task_job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "registry.example/rotator:2"
    assert container["args"] == ["--fast"]
    assert "command" not in container
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["runAsNonRoot"] is True
    assert "podFailurePolicy" not in task_job["spec"]
    sent = ServiceTask.model_validate_json(env(task_job)["HEADWATER_SERVICE_TASK"]["value"])
    assert (sent.s3_access_key_id, sent.s3_secret_access_key) == ("", "")
    assert (sent.s3_host, sent.s3_bucket) == ("http://minio:9000", "compute")
    assert (str(sent.task.id), sent.task.status) == (UID, "pending")


def test_building_twice_gives_the_same_manifests() -> None:
    assert build.children(OWNER, spec(), CONFIG, None) == build.children(OWNER, spec(), CONFIG, None)


def ended_status(**callback: Any) -> ComputeTaskStatus:
    return ComputeTaskStatus.model_validate(
        {"status": "error", "errorMessage": "gone", "dataOut": [], "callback": callback}
    )


def test_a_callback_job_exists_only_once_the_status_names_it() -> None:
    assert [c["kind"] for c in build.children(OWNER, spec(), CONFIG, ended_status(url="x"))][-1] == "Job"
    assert len(build.children(OWNER, spec(), CONFIG, ended_status(url="x"))) == 4
    named = build.children(OWNER, spec(), CONFIG, ended_status(url="x", jobName="rotate-callback"))
    callback = named[-1]
    assert callback["metadata"]["name"] == "rotate-callback"
    delivery = CallbackConfig.model_validate_json(env(callback)["HEADWATER_COMPUTE_CALLBACK"]["value"])
    assert delivery.url == str(spec().callback_url)
    assert delivery.update.model_dump() == {"data_out": [], "status": "error", "error_message": "gone"}
    assert delivery.policy.attempts == 3
    assert callback["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def result(status: str = "finished", **fields: Any) -> dict[str, Any]:
    update = {"data_out": ["rotate/result.png"] if status == "finished" else [], "status": status}
    return {
        "kind": "compute",
        "update": update,
        "stages": [
            {"status": "fetching", "startedAt": "2025-01-02T00:00:00Z", "durationSeconds": 0.5},
            {"status": status, "startedAt": "2025-01-02T00:00:01Z"},
        ],
        **fields,
    }


DELIVERED = {"url": "https://core.example/tasks/1", "attempts": 1, "delivered": True, "lastStatusCode": 200}


def derive(
    jobs: list[tuple[dict[str, Any], dict[str, Any]]],
    status: dict[str, Any] | None = None,
    task: ComputeTaskSpec | None = None,
) -> tuple[Any, dict[str, Any]]:
    return observe.derive(OWNER, task or spec(), status, [j for j, _ in jobs], [p for _, p in jobs])


def test_no_job_yet_is_pending() -> None:
    outcome, extra = derive([])
    assert (outcome.phase, outcome.state) == ("Pending", "reconciling")
    assert extra["status"] == "pending"
    assert extra["taskId"] == UID


def test_while_running_the_workers_protocol_status_is_left_alone() -> None:
    outcome, extra = derive([job("rotate-task", "running")], {"status": "processing"})
    assert (outcome.phase, outcome.reason) == ("Running", "Processing")
    assert outcome.message == "Job rotate-task is running"
    assert "status" not in extra


def test_a_running_image_task_is_processing_as_the_operator_sees_it() -> None:
    image = spec(service={"image": "registry.example/rotator:2"})
    _, extra = derive([job("rotate-task", "running")], task=image)
    assert extra["status"] == "processing"


def test_finished_and_delivered_is_ready_with_outputs_stages_and_callback() -> None:
    outcome, extra = derive([job("rotate-task", "succeeded", result(callback=DELIVERED))])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Succeeded", "ready", "Finished")
    assert extra["status"] == "finished"
    assert extra["dataOut"] == ["rotate/result.png"]
    assert [s["status"] for s in extra["stages"]] == ["fetching", "finished"]
    assert extra["callback"]["delivered"] is True
    assert extra["callback"]["url"] == "https://core.example/tasks/1"
    [delivered] = outcome.extra_conditions
    assert (delivered.type, delivered.status) == ("CallbackDelivered", "True")
    patch = status_patch(None, outcome, 1, extra, now="2025-01-02T00:00:05Z")
    assert [c["type"] for c in patch["conditions"]] == [
        "Ready",
        "Reconciling",
        "Stalled",
        "CallbackDelivered",
    ]


def test_finished_but_undelivered_is_still_finished_with_a_failed_callback_condition() -> None:
    failed = {
        **DELIVERED,
        "attempts": 5,
        "delivered": False,
        "lastError": "timed out",
        "lastStatusCode": None,
    }
    outcome, extra = derive([job("rotate-task", "succeeded", result(callback=failed))])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Succeeded", "ready", "CallbackFailed")
    assert "after 5 attempts: timed out" in outcome.message
    assert extra["status"] == "finished"
    [condition] = outcome.extra_conditions
    assert (condition.status, condition.reason) == ("False", "CallbackFailed")


def test_a_refused_input_fails_with_the_workers_reason_and_message() -> None:
    refused = result("error", error={"reason": "InvalidInput", "message": "input 'x.png' does not exist"})
    refused["update"]["error_message"] = "input 'x.png' does not exist"
    outcome, extra = derive([job("rotate-task", "failed", {**refused, "callback": DELIVERED})])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Failed", "stalled", "InvalidInput")
    assert outcome.message == "input 'x.png' does not exist"
    assert extra["errorMessage"] == "input 'x.png' does not exist"


def test_a_pod_that_ran_out_of_time_gets_its_error_delivered_by_a_callback_job() -> None:
    expired, pod = job("rotate-task", "failed")
    expired["status"]["conditions"][0]["reason"] = "DeadlineExceeded"
    outcome, extra = derive([(expired, pod)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Failed", "reconciling", "DeliveringCallback")
    assert extra["errorMessage"] == "the task did not finish within its activeDeadlineSeconds of 120 s"
    assert extra["callback"] == {"url": "https://core.example/tasks/1", "jobName": "rotate-callback"}
    assert build.needs_callback_job(ComputeTaskStatus.model_validate(extra))
    delivered = {"kind": "compute", "update": {"status": "error"}, "callback": DELIVERED}
    outcome, extra = derive([(expired, pod), job("rotate-callback", "succeeded", delivered)], extra)
    assert (outcome.phase, outcome.state, outcome.reason) == ("Failed", "stalled", "DeadlineExceeded")
    assert extra["callback"]["delivered"] is True
    assert extra["callback"]["jobName"] == "rotate-callback"


def test_an_image_tasks_termination_message_is_its_task_update() -> None:
    image = spec(service={"image": "registry.example/rotator:2"})
    update = {"data_out": ["out/r.png"], "status": "finished", "error_message": None}
    outcome, extra = derive([job("rotate-task", "succeeded", update)], task=image)
    assert (outcome.phase, outcome.reason) == ("Succeeded", "DeliveringCallback")
    assert extra["dataOut"] == ["out/r.png"]
    garbage = {"result": "done"}
    outcome, extra = derive([job("rotate-task", "succeeded", garbage)], task=image)
    assert extra["status"] == "error"
    assert "not a TaskUpdate" in extra["errorMessage"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@core.example/tasks/1?token=t", "https://core.example/tasks/1"),
        ("http://[::1]:8080/tasks/2", "http://[::1]:8080/tasks/2"),
    ],
)
def test_urls_in_the_status_carry_no_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown
