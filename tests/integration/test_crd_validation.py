"""The CRDs on a real API server: valid manifests are accepted with the models' defaults, every CEL rule and
enum refuses a bad manifest naming the field, status written by the operator survives pruning, and
`kubectl explain` documents the fields."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from headwater_operator.api import API_VERSION, GROUP, KINDS, ApiModel, kind_info
from headwater_operator.api.common import nested_models

from tests.fixtures.cluster import Cluster, Kubectl, KubectlError, poll
from tests.unit.test_api_models import INVALID, Invalid, changed, example, example_documents

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
EXAMPLES = REPO / "examples"
NOW = "2025-01-01T12:00:00Z"


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    """The CRDs from crds/, installed and Established; server-side apply is idempotent and the CRDs stay
    installed for whichever test needs them next."""
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=headwater-tests", "-f", str(CRDS)
    )
    for info in KINDS:
        cluster.kubectl.wait(f"crd/{info.crd_name}", "condition=Established", timeout=60)
    # Discovery can lag the Established condition by a moment.
    poll(
        lambda: all(
            info.plural in cluster.kubectl("api-resources", f"--api-group={GROUP}") for info in KINDS
        ),
        timeout=30,
        message="the Headwater kinds never appeared in discovery",
    )


@pytest.fixture
def kube(cluster: Cluster, crds: None, namespace: str) -> Kubectl:
    return cluster.kubectl.in_namespace(namespace)


def headwater_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["apiVersion"] == API_VERSION]


def refusal(kube: Kubectl, manifest: dict[str, Any]) -> str:
    """What the API server says when refusing `manifest` (a server-side dry run: nothing is stored)."""
    with pytest.raises(KubectlError) as refused:
        kube("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest))
    return refused.value.stderr


def server_field(field: str) -> str:
    """`spec.tasks.1.name` as the API server writes it: `spec.tasks[1].name`."""
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", field)


# --------------------------------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------------------------------


def _assert_defaults_agree(server: Any, model: Any, path: str) -> None:
    """The server's copy equals the model's, defaults included; only empty collections may be absent."""
    if isinstance(model, dict) and isinstance(server, dict):
        for key in server.keys() | model.keys():
            if key not in server:
                assert model[key] in ([], {}), f"{path}.{key}: the model defaults it to {model[key]!r}"
            elif key not in model:
                pytest.fail(f"{path}.{key}: the API server set {server[key]!r}, the model did not")
            else:
                _assert_defaults_agree(server[key], model[key], f"{path}.{key}")
    elif isinstance(model, list) and isinstance(server, list):
        assert len(server) == len(model), path
        for index, (s, m) in enumerate(zip(server, model, strict=True)):
            _assert_defaults_agree(s, m, f"{path}[{index}]")
    else:
        assert server == model, f"{path}: API server {server!r}, model {model!r}"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_accepted_with_the_models_defaults(kube: Kubectl, path: Path) -> None:
    kube.apply(path.read_text())
    for document in headwater_documents(path):
        info = kind_info(document["kind"])
        stored = kube.get_json(f"{info.plural}.{GROUP}", document["metadata"]["name"])
        model = info.resource_model.model_validate(document)
        spec = getattr(model, "spec")  # noqa: B009
        assert isinstance(spec, ApiModel)
        _assert_defaults_agree(stored["spec"], spec.to_wire(), f"{document['kind']}.spec")


def test_every_kind_is_listed_in_the_headwater_category(kube: Kubectl) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        kube.apply(path.read_text())
    listed = kube("get", "headwater", "-o", "name")
    for info in KINDS:
        assert f"{info.plural}.{GROUP}/" in listed or f"{info.singular}.{GROUP}/" in listed, listed
    wide = kube("get", "exportjobs", "-o", "wide")
    header = wide.splitlines()[0].split()
    assert header[:3] == ["NAME", "PHASE", "READY"]
    assert "SCHEDULE" in header
    assert "AGE" in header


def _full_status(kind: str) -> dict[str, Any]:
    """A status with every field the operator may write, validated by the kind's status model."""
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Done",
        "message": "done",
        "lastTransitionTime": NOW,
        "observedGeneration": 1,
    }
    common = {"conditions": [condition], "observedGeneration": 1, "message": "all good"}
    by_kind: dict[str, dict[str, Any]] = {
        "ExportJob": {
            "phase": "Succeeded",
            "reason": "Exported",
            "jobName": "knowledge-base-export-export-1",
            "lastScheduleTime": NOW,
            "lastSuccessfulTime": NOW,
            "tasks": [
                {
                    "name": "agency",
                    "rows": 3,
                    "bytes": 120,
                    "uri": "s3://exports/knowledge-base/agency/agency-2025_01_01-12_00_00.csv.gz",
                    "durationSeconds": 0.25,
                    "finishedAt": NOW,
                    "deletedRows": 0,
                }
            ],
        },
        "Connector": {
            "phase": "Scheduled",
            "reason": "Scheduled",
            "workloadName": "farm-energy-files-ingest",
            "lastRunTime": NOW,
            "lastSuccessfulTime": NOW,
            "cursor": NOW,
            "batches": 2,
            "rowsLoaded": 48,
            "rowsRejected": 1,
            "qualityScore": 0.98,
            "lastBatchId": "5d0c9a52-3a0c-4d38-9a51-0d7a2e6f4b10",
        },
        "Wrapper": {
            "phase": "Completed",
            "health": "HEALTHY",
            "code": {
                "configMapName": "site-electricity-code",
                "sha256": "0" * 64,
                "generator": "template",
                "model": "gemini-2.5-flash",
                "promptVersion": "wrapper-collector/1",
                "promptsConfigMapName": "site-electricity-prompts",
                "tokens": {"requests": 2, "promptTokens": 2400, "outputTokens": 600, "totalTokens": 3000},
                "generatedAt": NOW,
                "validation": {"passed": False, "errors": ["line 1: syntax error"]},
            },
            "attempts": 1,
            "resourceId": "r-1",
            "generatorJobName": "site-electricity-generate-1",
            "workloadName": "site-electricity-run-1",
            "highWaterMark": NOW,
            "lowWaterMark": NOW,
            "startPeriod": NOW,
            "endPeriod": NOW,
            "pointsCollected": 3,
            "lastRunTime": NOW,
            "executionLog": [{"time": NOW, "event": "completed", "message": "3 points"}],
        },
        "ComputeTask": {
            "phase": "Succeeded",
            "status": "finished",
            "taskId": "6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10",
            "dataOut": ["outputs/readings.csv"],
            "errorMessage": "none",
            "jobName": "profile-readings-task",
            "startedAt": NOW,
            "finishedAt": NOW,
            "durationSeconds": 1.5,
            "callback": {
                "url": "http://headwater-gateway.headwater:8080/tasks/6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10",
                "attempts": 1,
                "lastStatusCode": 200,
                "delivered": True,
                "lastError": "none",
                "lastAttemptTime": NOW,
            },
        },
        "Package": {
            "phase": "Succeeded",
            "progress": 100,
            "setupJob": "gambia-setup-0a1b2c",
            "setupPhase": "Succeeded",
            "finaliseJob": "gambia-finalise-3d4e5f",
            "finalisePhase": "Succeeded",
            "datapackageUri": "s3://packages/gambia/datapackage.json",
            "processors": [
                {
                    "name": "test_processor.version_1",
                    "phase": "Succeeded",
                    "progress": 100,
                    "message": "generated",
                    "resultUris": [
                        "s3://packages/gambia/datasets/test_processor/version_1/data/"
                        "test_processor-version_1-gambia.tif"
                    ],
                    "jobName": "gambia-test-processor-version-1-6a7b8c",
                    "finishedAt": NOW,
                },
                {
                    "name": "natural_earth_raster.version_1",
                    "phase": "Failed",
                    "progress": 20,
                    "reason": "SourceUnavailable",
                    "message": "cannot reach https://example.org/relief.tif",
                    "jobName": "gambia-natural-earth-raster-version-1-9d0e1f",
                    "finishedAt": NOW,
                },
            ],
            "reports": {
                "natural_earth_raster.version_1": {
                    "jobName": "gambia-natural-earth-raster-version-1-9d0e1f",
                    "percent": 20,
                    "message": "cropping the source",
                    "time": NOW,
                }
            },
        },
    }
    status = {**common, **by_kind[kind]}
    kind_info(kind).status_model.model_validate(status)
    return status


@pytest.mark.parametrize(
    ("kind", "example_file", "name"),
    [
        ("ExportJob", "exportjob.yaml", "knowledge-base-export"),
        ("Connector", "connector.yaml", "farm-energy-files"),
        ("Wrapper", "wrapper.yaml", "site-electricity"),
        ("ComputeTask", "computetask.yaml", "profile-readings"),
        ("Package", "package.yaml", "gambia"),
    ],
)
def test_status_the_operator_writes_is_kept(kube: Kubectl, kind: str, example_file: str, name: str) -> None:
    info = kind_info(kind)
    kube.apply((EXAMPLES / example_file).read_text())
    status = _full_status(kind)
    kube(
        "patch",
        f"{info.plural}.{GROUP}",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump({"status": status}),
    )
    stored = kube.get_json(f"{info.plural}.{GROUP}", name)["status"]
    assert stored == status, "the API server pruned or changed status fields"


@pytest.mark.parametrize(
    ("example_file", "resource", "status", "field"),
    [
        ("exportjob.yaml", "exportjobs/knowledge-base-export", {"phase": "Done"}, "status.phase"),
        ("connector.yaml", "connectors/farm-energy-files", {"phase": "Succeeded"}, "status.phase"),
        ("wrapper.yaml", "wrappers/site-electricity", {"phase": "executing"}, "status.phase"),
        ("wrapper.yaml", "wrappers/site-electricity", {"health": "healthy"}, "status.health"),
        ("computetask.yaml", "computetasks/profile-readings", {"status": "Finished"}, "status.status"),
        ("package.yaml", "packages/gambia", {"phase": "Complete"}, "status.phase"),
        (
            "exportjob.yaml",
            "exportjobs/knowledge-base-export",
            {"conditions": [{"type": "Ready", "status": "Yes", "reason": "R", "lastTransitionTime": NOW}]},
            "status.conditions[0].status",
        ),
    ],
)
def test_status_refuses_values_outside_the_vocabulary(
    kube: Kubectl, example_file: str, resource: str, status: dict[str, Any], field: str
) -> None:
    kube.apply((EXAMPLES / example_file).read_text())
    plural, name = resource.split("/")
    with pytest.raises(KubectlError) as refused:
        kube("patch", f"{plural}.{GROUP}", name, "--subresource=status", "--type=merge", "-p",
             yaml.safe_dump({"status": status}))  # fmt: skip
    assert field in refused.value.stderr, refused.value.stderr


# --------------------------------------------------------------------------------------------------
# Refused
# --------------------------------------------------------------------------------------------------


def _models(model: type[ApiModel]) -> list[type[ApiModel]]:
    return [m for m in nested_models(model) if issubclass(m, ApiModel)]


CEL_MESSAGES = {rule.message for info in KINDS for m in _models(info.spec_model) for rule in m.cel_rules}
IMMUTABLE = "spec is immutable: create a new ComputeTask instead"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in INVALID])
def test_invalid_manifest_is_refused_naming_the_field(kube: Kubectl, case: Invalid) -> None:
    """The unit tests' refusal cases, each refused by the API server too, naming the same field."""
    message = refusal(kube, changed(example(case.base), case.changes))
    assert server_field(case.field) in message, message
    if case.message in CEL_MESSAGES:
        assert case.message in message, message


def test_every_cel_rule_is_exercised_against_the_api_server() -> None:
    exercised = {case.message for case in INVALID} | {IMMUTABLE}
    assert exercised >= CEL_MESSAGES, f"never exercised: {sorted(CEL_MESSAGES - exercised)}"


def test_compute_task_spec_is_immutable(kube: Kubectl) -> None:
    kube.apply((EXAMPLES / "computetask.yaml").read_text())
    task = example("profile-readings")
    with pytest.raises(KubectlError) as refused:
        kube.apply(changed(task, {"spec.dataIn": ["inputs/other.csv"]}))
    assert IMMUTABLE in refused.value.stderr
    kube.apply(changed(task, {"metadata.labels": {"team": "data"}}))  # metadata may still change


def test_unknown_fields_are_refused_not_dropped(kube: Kubectl) -> None:
    message = refusal(
        kube, changed(example("knowledge-base-export"), {"spec.destination.s3.bucketName": "x"})
    )
    assert 'unknown field "spec.destination.s3.bucketName"' in message


# --------------------------------------------------------------------------------------------------
# Documented
# --------------------------------------------------------------------------------------------------


def test_kubectl_explain_documents_the_fields(cluster: Cluster, crds: None) -> None:
    explained = poll(
        lambda: _explain(cluster, "exportjob.spec.tasks"),
        timeout=30,
        message="kubectl explain never found exportjob.spec.tasks",
    )
    assert "COPY (<select>) TO STDOUT WITH CSV HEADER" in explained
    for field in ("name", "select", "delete"):
        assert re.search(rf"^\s+{field}\s+<string>", explained, re.MULTILINE), explained
    destination = _explain(cluster, "ej.spec.destination")
    assert destination is not None
    assert "exactly one of `s3` or `volume`" in destination


def _explain(cluster: Cluster, what: str) -> str | None:
    try:
        return cluster.kubectl("explain", what)
    except (KubectlError, subprocess.TimeoutExpired):
        return None


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.kind)
def test_names_longer_than_a_label_value_are_refused(kube: Kubectl, info: Any) -> None:
    manifest = next(
        copy.deepcopy(d)
        for _, d in example_documents()
        if d["apiVersion"] == API_VERSION and d["kind"] == info.kind
    )
    manifest["metadata"] = {"name": "n" * 64}
    assert "metadata.name must be at most 63 characters" in refusal(kube, manifest)
    manifest["metadata"] = {"name": "n" * 63}
    kube("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest))
