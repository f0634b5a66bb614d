"""ComputeTask end to end: kubectl apply → operator → Job on the local node → S3 (a real S3 protocol server)
→ the TaskUpdate PATCHed to a callback server of the test's own.

Issue 10's acceptance:
- `image-rotate`: the rotated PNG is pixel for pixel Pillow's, the callback got exactly the protocol's
  TaskUpdate, the stages are in the status (`test_image_rotate_*`);
- `csv-profile` on a real CSV (`test_csv_profile_*`); `image` mode with a script container
  (`test_image_mode_*`); `url` mode against a protocol service that PATCHes later, and one that never calls
  back (`test_url_mode_*`);
- bad input: a missing key, a wrong MIME type, unreachable S3, a callback answering 500s then 200, a
  callback that never answers, each with no partial outputs (`test_missing_input_*`, `test_wrong_type_*`,
  `test_unreachable_s3_*`, `test_callback_*`).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from headwater_localcluster.services import S3Server
from headwater_worker.compute.protocol import TaskUpdate
from PIL import Image

from tests.fakes.compute import HANG, FakeCallbackReceiver, FakeComputeService
from tests.fixtures.cluster import Cluster, Kubectl, poll
from tests.fixtures.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

ENDED = ("Succeeded", "Failed")


@dataclass
class Setup:
    kubectl: Kubectl
    s3: S3Server
    bucket: str
    callbacks: FakeCallbackReceiver

    def put(self, key: str, data: bytes) -> None:
        self.s3.client().put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return bytes(self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def object_keys(self) -> list[str]:
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def task(
        self, name: str, service: dict[str, Any], data_in: list[str], **spec: Any
    ) -> tuple[dict[str, Any], str]:
        """A ComputeTask on the test bucket whose callback goes to the test's receiver; and its task id."""
        task_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            "service": service,
            "dataIn": data_in,
            "s3": {
                "bucket": self.bucket,
                "endpoint": self.s3.endpoint_url,
                "forcePathStyle": True,
                "credentialsSecretRef": {"name": "s3"},
            },
            "callbackUrl": self.callbacks.url_for(task_id),
            "taskId": task_id,
            **spec,
        }
        manifest = {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "ComputeTask",
            "metadata": {"name": name},
            "spec": body,
        }
        return manifest, task_id

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.get_json("computetask", name).get("status") or {})

    def wait_settled(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """The status once the task ended and its callback's fate is known."""

        def settled() -> dict[str, Any] | None:
            status = self.status(name)
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or ()}
            done = status.get("phase") in ENDED and conditions.get("Reconciling") == "False"
            return status if done else None

        return dict(poll(settled, timeout=timeout, interval=0.5, message=lambda: self.describe(name)))

    def describe(self, name: str) -> str:
        pods = self.kubectl.get_json("pods", "-l", f"headwater.dev/computetask={name}")["items"]
        logs = [self.kubectl("logs", p["metadata"]["name"], "--all-containers") for p in pods]
        return f"computetask {name}: {json.dumps(self.status(name), indent=1)}\nlogs: {logs}"

    def updates(self, task_id: str) -> list[dict[str, Any]]:
        """Every TaskUpdate PATCHed for the task, as received."""
        return [json.loads(r.body) for r in self.callbacks.patches if r.path == f"/tasks/{task_id}"]

    def conditions(self, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in status.get("conditions") or ()}


@pytest.fixture
def setup(
    operator: OperatorProcess, cluster: Cluster, restricted_namespace: str, s3: S3Server, bucket: str
) -> Iterator[Setup]:
    kubectl = cluster.kubectl.in_namespace(restricted_namespace)
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            },
        }
    )
    receiver = FakeCallbackReceiver().start()
    try:
        yield Setup(kubectl, s3, bucket, receiver)
    finally:
        receiver.stop()


def png(width: int = 64, height: int = 40) -> bytes:
    """An asymmetric picture, so that any wrong turn or flip shows."""
    image = Image.new("RGB", (width, height), (10, 20, 30))
    for x in range(width):
        for y in range(height):
            if x < width // 3 or y < height // 4:
                image.putpixel((x, y), (x * 3 % 256, y * 5 % 256, (x + y) % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_image_rotate_gives_pillows_pixels_and_the_protocols_callback(setup: Setup) -> None:
    source = png()
    setup.put("in/photo.png", source)
    setup.put("in/rotation.txt", b"90")
    manifest, task_id = setup.task(
        "rotate", {"name": "image-rotate"}, ["in/photo.png", "in/rotation.txt"], dataOut=["out/rotated.png"]
    )
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("rotate")

    assert status["phase"] == "Succeeded", setup.describe("rotate")
    assert status["status"] == "finished"
    assert status["taskId"] == task_id
    assert status["dataOut"] == ["out/rotated.png"]
    assert [s["status"] for s in status["stages"]] == ["fetching", "processing", "saving", "finished"]
    assert all(s["durationSeconds"] >= 0 for s in status["stages"][:-1])
    assert status["durationSeconds"] >= 0
    with Image.open(io.BytesIO(setup.get("out/rotated.png"))) as rotated:
        assert rotated.format == "PNG"
        expected = Image.open(io.BytesIO(source)).transpose(Image.Transpose.ROTATE_270)
        assert rotated.size == expected.size == (40, 64)
        assert rotated.convert("RGB").tobytes() == expected.convert("RGB").tobytes()
    # Exactly one TaskUpdate, with the protocol's three fields and values.
    [update] = setup.updates(task_id)
    assert update == {"data_out": ["out/rotated.png"], "status": "finished", "error_message": None}
    TaskUpdate.model_validate(update)
    assert status["callback"]["delivered"] is True
    assert status["callback"]["attempts"] == 1
    assert setup.conditions(status)["CallbackDelivered"]["status"] == "True"
    assert setup.conditions(status)["Ready"]["status"] == "True"
    assert not [key for key in setup.object_keys() if key.startswith(".headwater-tmp")]


def test_csv_profile_describes_a_real_csv(setup: Setup) -> None:
    rows = ["station,reading,when", *(f"s{i % 3},{i * 1.5},2025-01-{i + 1:02d}" for i in range(20)), "s9,,"]
    setup.put("data/readings.csv", ("\n".join(rows) + "\n").encode())
    manifest, task_id = setup.task("profile", {"name": "csv-profile"}, ["data/readings.csv"])
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("profile")

    assert status["phase"] == "Succeeded", setup.describe("profile")
    [key] = status["dataOut"]
    assert key.startswith(f"{task_id}/")
    profile = json.loads(setup.get(key))
    assert profile["rows"] == 21
    reading = next(c for c in profile["columns"] if c["name"] == "reading")
    assert reading["null_count"] == 1
    assert reading["min"] == 0.0
    assert reading["max"] == 28.5
    assert reading["mean"] == pytest.approx(sum(i * 1.5 for i in range(20)) / 20)
    assert setup.updates(task_id) == [{"data_out": [key], "status": "finished", "error_message": None}]


# The "image" of an `image` task: on the local node a container's args are its command line.
UPPERCASE_SERVICE = """
import json, os, boto3
task = json.loads(os.environ["HEADWATER_SERVICE_TASK"])
s3 = boto3.client("s3", endpoint_url=task["s3_host"], region_name=task["s3_region"])
key_in, key_out = task["task"]["data_in"][0], task["task"]["data_out"][0]
body = s3.get_object(Bucket=task["s3_bucket"], Key=key_in)["Body"].read()
s3.put_object(Bucket=task["s3_bucket"], Key=key_out, Body=body.upper())
update = {"data_out": [key_out], "status": "finished", "error_message": None}
open("/dev/termination-log", "w").write(json.dumps(update))
"""


def test_image_mode_runs_the_users_container_and_delivers_its_update(setup: Setup) -> None:
    setup.put("in/words.txt", b"quiet words\n")
    manifest, task_id = setup.task(
        "shout",
        {"image": "registry.example/uppercase:1", "args": ["python", "-c", UPPERCASE_SERVICE]},
        ["in/words.txt"],
        dataOut=["out/words.txt"],
    )
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("shout")

    assert status["phase"] == "Succeeded", setup.describe("shout")
    assert setup.get("out/words.txt") == b"QUIET WORDS\n"
    assert status["dataOut"] == ["out/words.txt"]
    assert setup.updates(task_id) == [
        {"data_out": ["out/words.txt"], "status": "finished", "error_message": None}
    ]
    # The update went out from a callback Job, since the user's container has no way to.
    assert status["callback"]["jobName"] == "shout-callback"
    assert status["callback"]["delivered"] is True


def test_url_mode_hands_the_task_over_and_relays_its_update(setup: Setup) -> None:
    service = FakeComputeService(stages=("fetching", "processing", "saving"), delay=0.3).start()
    try:
        setup.put("in/a.txt", b"a")
        manifest, task_id = setup.task(
            "remote", {"url": service.url}, ["in/a.txt"], dataOut=["out/a.txt"], activeDeadlineSeconds=60
        )
        setup.kubectl.apply(manifest)
        status = setup.wait_settled("remote")
        service.join()
    finally:
        service.stop()

    assert status["phase"] == "Succeeded", setup.describe("remote")
    [received] = service.tasks
    assert str(received.task.id) == task_id
    assert received.task.data_in == ["in/a.txt"]
    assert received.s3_bucket == setup.bucket
    assert received.s3_access_key_id == setup.s3.access_key_id
    # The service called back to the Job, which relayed the update to the task's own callback URL.
    assert received.callback_url != manifest["spec"]["callbackUrl"]
    assert setup.updates(task_id) == [
        {"data_out": ["out/a.txt"], "status": "finished", "error_message": None}
    ]
    assert [s["status"] for s in status["stages"]][-1] == "finished"
    assert "processing" in [s["status"] for s in status["stages"]]


def test_url_mode_with_a_service_that_never_calls_back_ends_at_the_deadline(setup: Setup) -> None:
    service = FakeComputeService(calls_back=False, finishes=False).start()
    try:
        setup.put("in/a.txt", b"a")
        manifest, task_id = setup.task("silent", {"url": service.url}, ["in/a.txt"], activeDeadlineSeconds=20)
        setup.kubectl.apply(manifest)
        status = setup.wait_settled("silent")
    finally:
        service.stop()

    assert status["phase"] == "Failed", setup.describe("silent")
    assert status["status"] == "error"
    assert "did not finish within" in status["errorMessage"]
    [update] = setup.updates(task_id)
    assert update["status"] == "error"
    assert update["data_out"] == []
    assert status["callback"]["delivered"] is True


def test_missing_input_is_an_error_naming_the_key_with_no_outputs(setup: Setup) -> None:
    setup.put("in/rotation.txt", b"90")
    manifest, task_id = setup.task(
        "missing", {"name": "image-rotate"}, ["in/nowhere.png", "in/rotation.txt"], backoffLimit=3
    )
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("missing")

    assert (status["phase"], status["reason"]) == ("Failed", "InvalidInput"), setup.describe("missing")
    assert "'in/nowhere.png' does not exist" in status["errorMessage"]
    [update] = setup.updates(task_id)
    assert update["status"] == "error"
    assert "in/nowhere.png" in update["error_message"]
    assert setup.object_keys() == ["in/rotation.txt"]
    # A refused input is final: the Job did not retry it, although backoffLimit allows three more tries.
    pods = setup.kubectl.get_json("pods", "-l", "headwater.dev/computetask=missing")["items"]
    assert len([p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "task"]) == 1


def test_wrong_type_is_refused_before_anything_is_fetched(setup: Setup) -> None:
    setup.put("in/table.csv", b"a,b\n1,2\n")
    setup.put("in/rotation.txt", b"90")
    manifest, _ = setup.task("wrongtype", {"name": "image-rotate"}, ["in/table.csv", "in/rotation.txt"])
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("wrongtype")

    assert status["phase"] == "Failed"
    assert "'in/table.csv' is text/csv" in status["errorMessage"]
    assert "image/png" in status["errorMessage"]
    assert setup.object_keys() == ["in/rotation.txt", "in/table.csv"]


def test_unreachable_s3_fails_and_the_error_still_reaches_the_callback(setup: Setup) -> None:
    manifest, task_id = setup.task("nos3", {"name": "csv-profile"}, ["data/x.csv"])
    manifest["spec"]["s3"]["endpoint"] = "http://127.0.0.1:9"  # discard port: nothing listens
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("nos3", timeout=180)

    assert status["phase"] == "Failed", setup.describe("nos3")
    assert "S3" in status["errorMessage"]
    [update] = setup.updates(task_id)
    assert update["status"] == "error"
    assert "S3" in update["error_message"]
    assert status["callback"]["jobName"] == "nos3-callback"


def test_callback_answering_500s_then_200_is_delivered_on_the_third_attempt(setup: Setup) -> None:
    setup.callbacks.script(500, (503, "1"))
    setup.put("data/t.csv", b"x\n1\n2\n")
    manifest, task_id = setup.task("retried", {"name": "csv-profile"}, ["data/t.csv"])
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("retried")

    assert status["phase"] == "Succeeded"
    assert status["callback"]["attempts"] == 3
    assert status["callback"]["delivered"] is True
    assert status["callback"]["lastStatusCode"] == 200
    assert len(setup.updates(task_id)) == 3


def test_callback_that_never_answers_leaves_a_finished_task_with_a_failed_callback(setup: Setup) -> None:
    setup.callbacks.script(HANG, HANG, HANG)
    setup.put("data/t.csv", b"x\n1\n2\n")
    manifest, _ = setup.task("unheard", {"name": "csv-profile"}, ["data/t.csv"])
    setup.kubectl.apply(manifest)
    status = setup.wait_settled("unheard")

    assert (status["phase"], status["reason"]) == ("Succeeded", "CallbackFailed"), setup.describe("unheard")
    assert status["status"] == "finished"
    assert status["callback"]["delivered"] is False
    assert status["callback"]["attempts"] == 3
    callback = setup.conditions(status)["CallbackDelivered"]
    assert (callback["status"], callback["reason"]) == ("False", "CallbackFailed")
    events = setup.kubectl.get_json("events", "--field-selector=involvedObject.name=unheard")["items"]
    assert "CallbackFailed" in [e["reason"] for e in events]
