"""The gateway end to end, as a Core engine uses it: POST /compute of an image-rotate ServiceTask → a
ComputeTask the operator runs on the local node → the rotated image in S3 → the TaskUpdate PATCHed to the
engine's callback → GET /tasks/{id}/status says `finished`. The gateway holds only the chart's RBAC."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from headwater_localcluster.services import S3Server
from PIL import Image

from tests.e2e.test_computetask import png
from tests.fakes.compute import FakeCallbackReceiver
from tests.fixtures.cluster import Cluster, poll
from tests.fixtures.gateway import GatewayAccount, compute_caller, serve
from tests.fixtures.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def receiver() -> Iterator[FakeCallbackReceiver]:
    callbacks = FakeCallbackReceiver().start()
    try:
        yield callbacks
    finally:
        callbacks.stop()


def test_a_core_engines_task_runs_through_the_gateway_to_its_callback(
    operator: OperatorProcess,
    cluster: Cluster,
    gateway_account: GatewayAccount,
    restricted_namespace: str,
    s3: S3Server,
    bucket: str,
    receiver: FakeCallbackReceiver,
) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="in/photo.png", Body=png())
    client.put_object(Bucket=bucket, Key="in/rotation.txt", Body=b"90")
    engine = compute_caller(cluster, restricted_namespace)
    task_id = uuid.uuid4()
    service_task = {
        "s3_access_key_id": s3.access_key_id,
        "s3_secret_access_key": s3.secret_access_key,
        "s3_region": "us-east-1",
        "s3_host": s3.endpoint_url,
        "s3_bucket": bucket,
        "task": {
            "id": str(task_id),
            "data_in": ["in/photo.png", "in/rotation.txt"],
            "data_out": ["out/rotated.png"],
            "status": "pending",
            "service_id": str(uuid.uuid4()),
            "pipeline_execution_id": None,
            "pipeline_step_id": None,
            "error_message": None,
            "created_at": "2025-01-01T00:00:00",
            "updated_at": "2025-01-01T00:00:00",
        },
        "callback_url": receiver.url_for(task_id),
    }
    kubectl = cluster.kubectl.in_namespace(restricted_namespace)
    gateway: TestClient
    with serve(gateway_account, namespace=restricted_namespace) as gateway:
        answer = gateway.post("/services/image-rotate/compute", json=service_task, headers=engine.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "Task added to the queue"}

        def delivered() -> bool:
            return any(r.path == f"/tasks/{task_id}" for r in receiver.patches)

        poll(
            delivered,
            timeout=180,
            interval=0.5,
            message=lambda: json.dumps(
                kubectl.get_json("computetask", f"task-{task_id}").get("status"), indent=1
            ),
        )
        [update] = [json.loads(r.body) for r in receiver.patches]
        assert update == {"data_out": ["out/rotated.png"], "status": "finished", "error_message": None}
        status = gateway.get(f"/services/image-rotate/tasks/{task_id}/status", headers=engine.headers)
        assert status.json() == {"status": "finished"}

    rotated = client.get_object(Bucket=bucket, Key="out/rotated.png")["Body"].read()
    with Image.open(io.BytesIO(rotated)) as image:
        assert image.size == (40, 64)
    # The key pair's Secret belongs to the task: deleting the task deletes it.
    kubectl.delete("computetask", f"task-{task_id}")
    poll(
        lambda: kubectl.get_or_none("secret", f"task-{task_id}-s3") is None,
        timeout=60,
        message="the task's Secret outlived the task",
    )
