"""The gateway's compute routes against the real control plane, with the chart's RBAC for the gateway and
a Core engine's ServiceAccount as the caller: what POST /compute creates, what the status route reports,
duplicates, and Kubernetes RBAC deciding (401 without a valid token, 403 where the caller has no rights).
The operator does not run here: the ComputeTasks stay as the gateway made them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from headwater_gateway.settings import GatewaySettings

from tests.fixtures.cluster import Cluster, Kubectl
from tests.fixtures.gateway import (
    Caller,
    GatewayAccount,
    chart_gateway_account,
    compute_caller,
    serve,
)

pytestmark = pytest.mark.cluster

PROBLEM = "application/problem+json"


def service_task(task_id: uuid.UUID, **task: Any) -> dict[str, Any]:
    return {
        "s3_access_key_id": "AKIDGATEWAYTEST",
        "s3_secret_access_key": "gateway-test-secret-key",
        "s3_region": "eu-central-2",
        "s3_host": "http://minio.storage:9000",
        "s3_bucket": "engine",
        "task": {
            "id": str(task_id),
            "data_in": ["uploads/photo.png", "uploads/rotation.txt"],
            "data_out": None,
            "status": "pending",
            "service_id": str(uuid.uuid4()),
            "pipeline_execution_id": None,
            "pipeline_step_id": None,
            "error_message": None,
            **task,
        },
        "callback_url": f"http://core.example:8080/tasks/{task_id}",
    }


@pytest.fixture
def caller(cluster: Cluster, namespace: str) -> Caller:
    return compute_caller(cluster, namespace)


@pytest.fixture
def gateway(gateway_account: GatewayAccount, namespace: str) -> Iterator[TestClient]:
    with serve(gateway_account, namespace=namespace, default_service="image-rotate") as client:
        yield client


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


def test_ready_once_the_api_server_answers(gateway: TestClient) -> None:
    assert gateway.get("/readyz").json() == {"status": "ready"}


def test_post_compute_creates_the_compute_task_and_its_secret(
    gateway: TestClient, caller: Caller, kubectl: Kubectl
) -> None:
    task_id = uuid.uuid4()
    body = service_task(task_id, data_out=["results/photo.png"])
    response = gateway.post("/services/image-rotate/compute", json=body, headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Task added to the queue"}

    task = kubectl.get_json("computetask", f"task-{task_id}")
    spec = task["spec"]
    assert spec["service"] == {"name": "image-rotate", "args": []}
    assert spec["dataIn"] == ["uploads/photo.png", "uploads/rotation.txt"]
    assert spec["dataOut"] == ["results/photo.png"]
    assert spec["taskId"] == str(task_id)
    assert spec["serviceId"] == body["task"]["service_id"]
    assert spec["callbackUrl"] == body["callback_url"]
    assert spec["s3"]["bucket"] == "engine"
    assert spec["s3"]["endpoint"] == "http://minio.storage:9000"
    assert spec["s3"]["region"] == "eu-central-2"
    assert spec["s3"]["credentialsSecretRef"]["name"] == f"task-{task_id}-s3"
    assert "gateway-test-secret-key" not in str(task)
    assert task["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "headwater-gateway"

    secret = kubectl.get_json("secret", f"task-{task_id}-s3")
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == {
        "AWS_ACCESS_KEY_ID": "AKIDGATEWAYTEST",
        "AWS_SECRET_ACCESS_KEY": "gateway-test-secret-key",
    }
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ComputeTask",
        f"task-{task_id}",
        task["metadata"]["uid"],
    )


def test_the_task_status_is_the_compute_tasks(gateway: TestClient, caller: Caller, kubectl: Kubectl) -> None:
    task_id = uuid.uuid4()
    assert gateway.post("/compute", json=service_task(task_id), headers=caller.headers).status_code == 200
    assert gateway.get(f"/tasks/{task_id}/status", headers=caller.headers).json() == {"status": "pending"}
    kubectl(
        "patch", "computetask", f"task-{task_id}", "--subresource=status", "--type=merge",
        "-p", '{"status": {"status": "processing"}}',
    )  # fmt: skip
    answer = gateway.get(f"/services/image-rotate/tasks/{task_id}/status", headers=caller.headers)
    assert answer.json() == {"status": "processing"}
    # A task is its service's: another service's base URL does not know it.
    problem = problem_of(
        gateway.get(f"/services/csv-profile/tasks/{task_id}/status", headers=caller.headers), 404
    )
    assert str(task_id) in problem["detail"]
    problem_of(gateway.get(f"/tasks/{uuid.uuid4()}/status", headers=caller.headers), 404)


def test_a_duplicate_task_is_accepted_when_the_same_and_refused_when_different(
    gateway: TestClient, caller: Caller, kubectl: Kubectl
) -> None:
    task_id = uuid.uuid4()
    body = service_task(task_id)
    for _ in range(2):
        response = gateway.post("/compute", json=body, headers=caller.headers)
        assert response.status_code == 200, response.text
    names = [item["metadata"]["name"] for item in kubectl.get_json("computetasks")["items"]]
    assert names == [f"task-{task_id}"]
    other = service_task(task_id, data_in=["uploads/another.png", "uploads/rotation.txt"])
    problem = problem_of(gateway.post("/compute", json=other, headers=caller.headers), 409)
    assert str(task_id) in problem["detail"]
    assert kubectl.get_json("computetask", f"task-{task_id}")["spec"]["dataIn"][0] == "uploads/photo.png"


def test_an_invalid_task_is_refused_naming_the_service_task_field(
    gateway: TestClient, caller: Caller
) -> None:
    body = service_task(uuid.uuid4(), data_in=[])
    problem = problem_of(gateway.post("/compute", json=body, headers=caller.headers), 422)
    assert [error["field"] for error in problem["errors"]] == ["task.data_in"]


def test_the_caller_gets_403_in_a_namespace_where_it_has_no_rights(
    gateway: TestClient, caller: Caller, cluster: Cluster, restricted_namespace: str
) -> None:
    task_id = uuid.uuid4()
    path = f"/namespaces/{restricted_namespace}/services/image-rotate/compute"
    problem = problem_of(gateway.post(path, json=service_task(task_id), headers=caller.headers), 403)
    assert problem["verb"] == "get"
    assert problem["resource"] == "computetasks.headwater.dev"
    assert problem["namespace"] == restricted_namespace
    assert f'User "system:serviceaccount:{caller.namespace}:{caller.name}"' in problem["detail"]
    assert 'cannot get resource "computetasks"' in problem["detail"]
    assert cluster.kubectl.in_namespace(restricted_namespace).get_json("computetasks")["items"] == []
    assert cluster.kubectl.in_namespace(restricted_namespace).get_json("secrets")["items"] == []
    status = gateway.get(f"/namespaces/{restricted_namespace}/tasks/{task_id}/status", headers=caller.headers)
    assert problem_of(status, 403)["verb"] == "get"


def test_a_caller_without_rights_to_create_leaves_no_secret_behind(
    gateway: TestClient, cluster: Cluster, namespace: str, kubectl: Kubectl
) -> None:
    reader = compute_caller(cluster, namespace, "reader")
    kubectl(
        "patch", "role", "reader", "--type=json",
        "-p", '[{"op": "replace", "path": "/rules/0/verbs", "value": ["get"]}]',
    )  # fmt: skip
    task_id = uuid.uuid4()
    problem = problem_of(gateway.post("/compute", json=service_task(task_id), headers=reader.headers), 403)
    assert problem["verb"] == "create"
    assert kubectl.get_or_none("secret", f"task-{task_id}-s3") is None


def test_no_token_and_a_forged_token_are_401(gateway: TestClient, caller: Caller) -> None:
    body = service_task(uuid.uuid4())
    problem_of(gateway.post("/compute", json=body), 401)
    header, payload, _ = caller.token.split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'not the signature').decode().rstrip('=')}"
    for token in (forged, "not-a-token"):
        response = gateway.post("/compute", json=body, headers={"Authorization": f"Bearer {token}"})
        problem = problem_of(response, 401)
        assert problem["detail"] == "the bearer token was not accepted"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_routes_of_other_seeds_answer_501(gateway: TestClient, caller: Caller) -> None:
    for path in ("/resources", "/v1/boundaries", "/exports/daily"):
        assert problem_of(gateway.get(path, headers=caller.headers), 501)["type"].endswith("/not-implemented")


def test_unauthenticated_mode_acts_as_its_one_service_account(
    cluster: Cluster,
    crds: list[str],
    namespace: str,
    restricted_namespace: str,
    tmp_path: Path,
    kubectl: Kubectl,
) -> None:
    engine = compute_caller(cluster, namespace, "engine")
    values = {"gateway.unauthenticated": True, "gateway.actAs": f"{namespace}:{engine.name}"}
    with (
        chart_gateway_account(cluster, tmp_path / "kubeconfig", values) as account,
        serve(
            account, namespace=namespace, unauthenticated=True, service_account=f"{namespace}:engine"
        ) as gateway,
    ):
        task_id = uuid.uuid4()
        response = gateway.post("/services/csv-profile/compute", json=service_task(task_id))
        assert response.status_code == 200, response.text
        assert kubectl.get_json("computetask", f"task-{task_id}")["spec"]["service"]["name"] == "csv-profile"
        elsewhere = f"/namespaces/{restricted_namespace}/services/csv-profile/compute"
        problem = problem_of(gateway.post(elsewhere, json=service_task(uuid.uuid4())), 403)
        assert f"system:serviceaccount:{namespace}:engine" in problem["detail"]


def test_service_account_tokens_carry_extras_the_gateway_forwards(cluster: Cluster, caller: Caller) -> None:
    """Why the chart names `userextras/...`: a caller's extras are impersonated too, or the call fails."""
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": caller.token},
    }
    answer = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review)))
    extras = set(answer["status"]["user"].get("extra", {}))
    assert extras
    assert extras <= set(GatewaySettings().impersonated_extras)
