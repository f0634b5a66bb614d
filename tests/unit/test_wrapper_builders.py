"""Wrapper children as pure functions: spec and status in, manifests out, stage by stage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from headwater_operator import security
from headwater_operator.api.wrapper import WrapperSpec, WrapperStatus
from headwater_operator.builders import wrapper as build
from headwater_operator.builders.common import Owner
from headwater_operator.config import OperatorConfig
from headwater_operator.handlers.children import OwnedChildren
from headwater_operator.handlers.wrapper import _present as present
from headwater_worker.wrapper.config import (
    API_KEY_ENV,
    CODE_KEY,
    CONFIG_ENV,
    EXIT_TRY_LATER,
    GEMINI_API_KEY_ENV,
    WrapperConfig,
)

OWNER = Owner("Wrapper", "site", "team-a", "uid-1", 3)
CONFIG = OperatorConfig(worker_image="worker:test")
SHA = "ab" * 32
CSV_SOURCE = {"type": "CSV", "file": {"configMapRef": {"name": "electricity-csv", "key": "electricity.csv"}}}
API_SOURCE = {
    "type": "API",
    "url": "http://meters.example.org:8080/v1/readings",
    "apiKeySecretRef": {"name": "meter-api"},
}
DATABASE = {"database": {"secretRef": {"name": "points-db"}, "table": "indicator_points"}}


def spec(**fields: Any) -> WrapperSpec:
    body: dict[str, Any] = {
        "indicator": {"name": "Site electricity", "unit": "kWh"},
        "source": CSV_SOURCE,
        "generator": {"type": "template"},
        "output": DATABASE,
    }
    body.update(fields)
    return WrapperSpec.model_validate(body)


def stored(generation: int = 3, regeneration: int = 0, **fields: Any) -> WrapperStatus:
    """A status saying the code for `generation` (and `regeneration`) is stored."""
    code = {
        "generation": generation,
        "regeneration": regeneration,
        "configMapName": "site-code",
        "sha256": SHA,
        "generator": "template",
    }
    return WrapperStatus.model_validate({"code": code, "regenerations": regeneration, **fields})


def kinds(children: list[dict[str, Any]]) -> list[str]:
    return [child["kind"] for child in children]


def of_kind(children: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [child] = [c for c in children if c["kind"] == kind]
    return child


def named(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [child] = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    return child


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    spec_ = manifest["spec"]
    template = spec_["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec_ else spec_["template"]
    return dict(template["spec"])


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    [container] = pod_of(manifest)["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def config_of(manifest: dict[str, Any]) -> WrapperConfig:
    return WrapperConfig.model_validate_json(env_of(manifest)[CONFIG_ENV])


def workload(children: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [c for c in children if c["kind"] in ("Job", "CronJob", "Deployment")]
    return found


# -- stages and modes -------------------------------------------------------------------------------------


def test_before_code_is_stored_the_wrapper_gets_its_fixtures_and_a_generator_job() -> None:
    children = build.children(OWNER, spec(), CONFIG, None)
    assert kinds(children) == [
        "ServiceAccount",
        "ServiceAccount",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "ConfigMap",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "Job",
    ]
    job = of_kind(children, "Job")
    assert job["metadata"]["name"] == "site-gen-3"
    assert pod_of(job)["containers"][0]["command"] == [
        "python",
        "-m",
        "headwater_worker",
        "wrapper",
        "generate",
    ]
    config = config_of(job)
    assert config.code_config_map == "site-code"
    assert (config.code_path, config.code_sha256) == (None, None)
    assert config.wrapper == "team-a/site"
    assert config.resource_id == "uid-1"
    assert config.generation == 3
    for child in children:
        assert child["metadata"]["namespace"] == "team-a"
        assert child["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert child["metadata"]["labels"]["headwater.dev/wrapper"] == "site"


def test_code_stored_for_an_older_generation_or_without_a_digest_means_generating_again() -> None:
    for status in (stored(generation=2), WrapperStatus.model_validate({"code": {"generation": 3}})):
        children = build.children(OWNER, spec(), CONFIG, status)
        assert of_kind(children, "Job")["metadata"]["name"] == "site-gen-3"


@pytest.mark.parametrize(
    ("fields", "kind", "name"),
    [
        ({"source": CSV_SOURCE}, "Job", "site-run-3"),
        (
            {"source": {"type": "XLSX", "file": {"s3": {"bucket": "files", "key": "a.xlsx"}}}},
            "Job",
            "site-run-3",
        ),
        ({"source": API_SOURCE}, "Deployment", "site-collect"),
        ({"source": CSV_SOURCE, "mode": "continuous"}, "Deployment", "site-collect"),
        ({"source": API_SOURCE, "mode": "once"}, "Job", "site-run-3"),
        ({"source": API_SOURCE, "mode": "schedule", "schedule": "0 6 * * 1"}, "CronJob", "site-collect"),
    ],
    ids=["csv-once", "xlsx-once", "api-continuous", "csv-continuous", "api-once", "schedule"],
)
def test_the_mode_and_its_default_choose_the_workload(fields: dict[str, Any], kind: str, name: str) -> None:
    wrapper = spec(**fields)
    children = build.children(OWNER, wrapper, CONFIG, stored())
    assert "site-gen-3" not in [c["metadata"]["name"] for c in children], "stored code is not regenerated"
    found = workload(children)
    assert (found["kind"], found["metadata"]["name"]) == (kind, name)
    assert config_of(found).mode == wrapper.effective_mode
    assert pod_of(found)["containers"][0]["command"][-2:] == ["wrapper", "run"]


def test_a_scheduled_wrapper_runs_on_its_schedule_one_run_at_a_time() -> None:
    cronjob = workload(
        build.children(OWNER, spec(mode="schedule", schedule="*/30 * * * *"), CONFIG, stored())
    )
    assert cronjob["spec"]["schedule"] == "*/30 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["suspend"] is False
    suspended = workload(
        build.children(OWNER, spec(mode="schedule", schedule="@daily", suspend=True), CONFIG, stored())
    )
    assert suspended["spec"]["suspend"] is True


def test_a_cronjob_name_leaves_room_for_the_suffix_of_its_jobs() -> None:
    owner = Owner("Wrapper", "w" * 63, "team-a", "uid-1", 3)
    cronjob = workload(build.children(owner, spec(mode="schedule", schedule="@daily"), CONFIG, stored()))
    assert len(cronjob["metadata"]["name"]) <= 52


def test_a_continuous_wrapper_is_one_replica_at_a_time_polling_at_its_interval() -> None:
    deployment = workload(
        build.children(OWNER, spec(source=API_SOURCE, pollIntervalSeconds=60), CONFIG, stored())
    )
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod_of(deployment)["restartPolicy"] == "Always"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert config_of(deployment).poll_interval_seconds == 60
    stopped = build.children(OWNER, spec(source=API_SOURCE, suspend=True), CONFIG, stored())
    assert workload(stopped)["spec"]["replicas"] == 0


def test_a_suspended_once_wrapper_starts_no_run() -> None:
    children = build.children(OWNER, spec(suspend=True), CONFIG, stored())
    assert [c for c in children if c["kind"] in ("Job", "CronJob", "Deployment")] == []


# -- the generator Job's name ----------------------------------------------------------------------------


def test_the_generator_job_is_named_by_spec_generation_and_regeneration() -> None:
    same = build.children(OWNER, spec(), CONFIG, None)
    assert of_kind(same, "Job") == of_kind(build.children(OWNER, spec(), CONFIG, None), "Job")
    newer = Owner("Wrapper", "site", "team-a", "uid-1", 4)
    assert of_kind(build.children(newer, spec(), CONFIG, None), "Job")["metadata"]["name"] == "site-gen-4"
    # The source changed shape under code of this generation: one regeneration, under a new name.
    failure = {"outcome": "failed", "ranAt": "2025-01-02T00:00:00Z", "reason": "SourceChanged"}
    regenerating = stored(regeneration=0).model_copy(
        update={
            "regenerations": 1,
            "collector": WrapperStatus.model_validate(
                {"collector": {**failure, "message": "column 'consumption_kwh' is missing"}}
            ).collector,
        }
    )
    job = of_kind(build.children(OWNER, spec(), CONFIG, regenerating), "Job")
    assert job["metadata"]["name"] == "site-gen-3-r1"
    assert config_of(job).previous_error == "column 'consumption_kwh' is missing"
    assert config_of(of_kind(same, "Job")).previous_error is None


def test_the_regenerated_code_runs_under_a_new_run_job_name() -> None:
    first = workload(build.children(OWNER, spec(), CONFIG, stored()))
    again = workload(build.children(OWNER, spec(), CONFIG, stored(regeneration=1)))
    assert (first["metadata"]["name"], again["metadata"]["name"]) == ("site-run-3", "site-run-3-r1")


def test_children_are_deterministic() -> None:
    for status in (None, stored()):
        assert build.children(OWNER, spec(source=API_SOURCE), CONFIG, status) == build.children(
            OWNER, spec(source=API_SOURCE), CONFIG, status
        )


# -- the code ConfigMap and who may write it ---------------------------------------------------------


@pytest.mark.parametrize("name", ["site-code", "site-prompts"])
def test_the_code_and_prompts_config_maps_are_owned_by_the_wrapper_and_left_empty_for_the_generator(
    name: str,
) -> None:
    config_map = named(build.children(OWNER, spec(), CONFIG, None), "ConfigMap", name)
    assert config_map["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert config_map["metadata"]["ownerReferences"][0]["controller"] is True
    assert "data" not in config_map, "applying it must not overwrite what the generator wrote"


def test_the_generator_may_only_read_and_patch_its_own_code_and_prompts_config_maps() -> None:
    children = build.children(OWNER, spec(), CONFIG, None)
    role = named(children, "Role", "site-code-writer")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["site-code", "site-prompts"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = named(children, "RoleBinding", "site-code-writer")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "site-code-writer",
    }
    generator = pod_of(of_kind(children, "Job"))
    assert generator["serviceAccountName"] == "site-generator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "site-generator", "namespace": "team-a"}
    ]
    assert generator["automountServiceAccountToken"] is True
    accounts = [c for c in children if c["kind"] == "ServiceAccount"]
    assert [a["metadata"]["name"] for a in accounts] == ["site-worker", "site-generator"]
    assert all(account["automountServiceAccountToken"] is False for account in accounts)


@pytest.mark.parametrize("fields", [{}, {"source": API_SOURCE}], ids=["once", "continuous"])
def test_the_collector_runs_as_an_account_that_cannot_write_its_code(fields: dict[str, Any]) -> None:
    children = build.children(OWNER, spec(**fields), CONFIG, stored())
    collector = pod_of(workload(children))["serviceAccountName"]
    assert collector == "site-worker"
    writer = named(children, "RoleBinding", "site-code-writer")
    assert collector not in [subject["name"] for subject in writer["subjects"]]


def test_a_one_off_or_scheduled_run_has_no_api_token() -> None:
    for wrapper in (spec(), spec(mode="schedule", schedule="@daily")):
        children = build.children(OWNER, wrapper, CONFIG, stored())
        assert pod_of(workload(children))["automountServiceAccountToken"] is False
        assert "site-status-writer" not in [c["metadata"]["name"] for c in children]


def test_a_continuous_collector_may_patch_only_its_own_wrappers_status() -> None:
    children = build.children(OWNER, spec(source=API_SOURCE), CONFIG, stored())
    role = named(children, "Role", "site-status-writer")
    assert role["rules"] == [
        {
            "apiGroups": ["headwater.dev"],
            "resources": ["wrappers/status"],
            "resourceNames": ["site"],
            "verbs": ["patch"],
        }
    ]
    binding = named(children, "RoleBinding", "site-status-writer")
    assert binding["roleRef"]["name"] == "site-status-writer"
    pod = pod_of(workload(children))
    assert pod["automountServiceAccountToken"] is True
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "team-a"}
    ]


# -- every pod is restricted and bounded ---------------------------------------------------------------


# The generator (no code stored yet), then the run of each mode.
STAGES: list[tuple[dict[str, Any], bool]] = [
    ({"source": API_SOURCE}, False),
    ({}, True),
    ({"mode": "schedule", "schedule": "@daily"}, True),
    ({"source": API_SOURCE}, True),
]


def stage(index: int) -> list[dict[str, Any]]:
    fields, code_stored = STAGES[index]
    return build.children(OWNER, spec(**fields), CONFIG, stored() if code_stored else None)


def all_workloads() -> list[dict[str, Any]]:
    return [workload(stage(index)) for index in range(len(STAGES))]


@pytest.mark.parametrize("index", range(4), ids=["generator", "once", "schedule", "continuous"])
def test_every_pod_runs_restricted_with_cpu_and_memory_limits(index: int) -> None:
    pod = pod_of(all_workloads()[index])
    assert pod["securityContext"] == security.pod_security_context()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    [container] = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    limits = container["resources"]["limits"]
    assert limits["cpu"]
    assert limits["memory"]
    assert not any("hostPath" in volume for volume in pod["volumes"])


def test_every_job_has_an_active_deadline() -> None:
    generator, once, scheduled, _ = all_workloads()
    assert generator["spec"]["activeDeadlineSeconds"] == build.GENERATE_DEADLINE_SECONDS
    assert generator["spec"]["backoffLimit"] == 0, "a failed generator is an answer, not a hiccup"
    assert once["spec"]["activeDeadlineSeconds"] == build.RUN_DEADLINE_SECONDS
    assert scheduled["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == build.RUN_DEADLINE_SECONDS


# -- the run children and the code -------------------------------------------------------------------


@pytest.mark.parametrize("index", [1, 2, 3], ids=["once", "schedule", "continuous"])
def test_a_run_mounts_the_code_config_map_and_carries_the_digest_from_status(index: int) -> None:
    run = all_workloads()[index]
    pod = pod_of(run)
    [code] = [volume for volume in pod["volumes"] if volume["name"] == "code"]
    assert code["configMap"] == {"name": "site-code", "items": [{"key": CODE_KEY, "path": CODE_KEY}]}
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "code"]
    assert mount == {"name": "code", "mountPath": build.CODE_DIR, "readOnly": True}
    config = config_of(run)
    assert config.code_sha256 == SHA
    assert config.code_path == f"{build.CODE_DIR}/{CODE_KEY}"
    assert config.code_config_map is None


def test_the_generator_does_not_mount_the_code() -> None:
    generator = all_workloads()[0]
    assert "code" not in [volume["name"] for volume in pod_of(generator)["volumes"]]


def test_a_config_map_source_file_is_mounted_read_only_where_the_config_says() -> None:
    for status in (None, stored()):
        run = workload(build.children(OWNER, spec(), CONFIG, status))
        pod = pod_of(run)
        [source] = [volume for volume in pod["volumes"] if volume["name"] == "source"]
        assert source["configMap"] == {
            "name": "electricity-csv",
            "items": [{"key": "electricity.csv", "path": "electricity.csv"}],
        }
        assert config_of(run).source.path == f"{build.SOURCE_DIR}/electricity.csv"


# -- secrets only by reference ------------------------------------------------------------------------


def test_secrets_reach_the_pods_only_as_secret_key_refs() -> None:
    wrapper = spec(source=API_SOURCE, output=DATABASE)
    generator = of_kind(build.children(OWNER, wrapper, CONFIG, None), "Job")
    run = workload(build.children(OWNER, wrapper, CONFIG, stored()))
    for manifest in (generator, run):
        env = env_of(manifest)
        assert env[API_KEY_ENV] == {"secretKeyRef": {"name": "meter-api", "key": "apiKey"}}
        raw = env[CONFIG_ENV]
        assert "meter-api" not in raw
        assert "points-db" not in raw
        assert "apiKey" not in json.loads(raw)["source"]
    assert env_of(run)["DATABASE_URL"] == {"secretKeyRef": {"name": "points-db", "key": "dsn"}}
    assert "DATABASE_URL" not in env_of(generator), "the generator writes no points"
    for manifest in (generator, run):
        for item in pod_of(manifest)["containers"][0]["env"]:
            assert "value" in item if item["name"] == CONFIG_ENV else "valueFrom" in item, item


def test_s3_keys_come_from_the_one_secret_of_source_and_output() -> None:
    s3_source = {
        "type": "CSV",
        "file": {"s3": {"bucket": "files", "key": "a.csv", "credentialsSecretRef": {"name": "minio"}}},
    }
    s3_output = {"s3": {"bucket": "points", "credentialsSecretRef": {"name": "minio"}}}
    env = env_of(workload(build.children(OWNER, spec(source=s3_source, output=s3_output), CONFIG, stored())))
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "minio", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "minio", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert "minio" not in env[CONFIG_ENV]


def test_two_s3_secrets_are_refused_clearly() -> None:
    s3_source = {
        "type": "CSV",
        "file": {"s3": {"bucket": "files", "key": "a.csv", "credentialsSecretRef": {"name": "a"}}},
    }
    s3_output = {"s3": {"bucket": "points", "credentialsSecretRef": {"name": "b"}}}
    with pytest.raises(build.InvalidSpecError) as refused:
        build.children(OWNER, spec(source=s3_source, output=s3_output), CONFIG, None)
    assert refused.value.reason == "ConflictingCredentials"
    assert "credentialsSecretRef" in refused.value.message


# -- the NetworkPolicy ---------------------------------------------------------------------------------


def tcp_ports(policy: dict[str, Any]) -> set[int]:
    return {
        port["port"]
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
        if port["protocol"] == "TCP" and port["port"] != 53
    }


def test_the_network_policy_allows_no_ingress_and_egress_only_to_dns_and_known_ports() -> None:
    children = build.children(OWNER, spec(source=API_SOURCE, output=None), CONFIG, None)
    policy = named(children, "NetworkPolicy", "site-egress")
    assert policy["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"headwater.dev/wrapper": "site"}}
    dns, _ = policy["spec"]["egress"]
    assert dns == {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    assert all("to" not in rule for rule in policy["spec"]["egress"])
    assert tcp_ports(policy) == {8080}


def test_nothing_to_reach_but_dns_writes_no_rule_that_would_allow_every_port() -> None:
    policy = build.network_policy(OWNER, spec(output=None))
    assert policy["spec"]["egress"] == [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    ]
    assert all(rule.get("ports") for rule in policy["spec"]["egress"])


@pytest.mark.parametrize(
    ("fields", "ports"),
    [
        ({"source": {"type": "API", "url": "https://api.example.org/v1"}, "output": None}, {443}),
        ({"source": {"type": "CSV", "url": "http://files.example.org/a.csv"}, "output": None}, {80}),
        ({"source": CSV_SOURCE, "output": DATABASE}, {5432}),
        (
            {
                "source": {
                    "type": "XLSX",
                    "file": {
                        "s3": {"bucket": "files", "key": "a.xlsx", "endpoint": "http://minio.storage:9000"}
                    },
                },
                "output": {"s3": {"bucket": "points", "endpoint": "http://objects.storage:9100"}},
            },
            {9000, 9100},
        ),
        ({"source": CSV_SOURCE, "output": {"s3": {"bucket": "points"}}}, {443}),
        ({"source": CSV_SOURCE, "output": DATABASE, "egressPorts": [6432]}, {5432, 6432}),
    ],
    ids=["https", "http-file", "database", "s3-endpoints", "aws-s3", "extra-port"],
)
def test_egress_ports_are_those_of_the_source_and_the_output(fields: dict[str, Any], ports: set[int]) -> None:
    assert tcp_ports(build.network_policy(OWNER, spec(**fields))) == ports


def pod_labels(manifest: dict[str, Any]) -> dict[str, str]:
    spec_ = manifest["spec"]
    template = spec_["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec_ else spec_["template"]
    return dict(template["metadata"]["labels"])


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy's podSelector selects pods with these labels."""
    selector = policy["spec"]["podSelector"]
    if not selector["matchLabels"].items() <= labels.items():
        return False
    return all(
        labels.get(term["key"]) in term["values"]
        for term in selector.get("matchExpressions", ())
        if term["operator"] == "In"
    )


@pytest.mark.parametrize(
    ("index", "reaches_api"),
    [(0, True), (1, False), (2, False), (3, True)],
    ids=["generator", "once", "schedule", "continuous"],
)
def test_only_the_pods_with_a_token_may_reach_the_api_server(index: int, reaches_api: bool) -> None:
    children = stage(index)
    manifest = workload(children)
    labels = pod_labels(manifest)
    allowed = {
        port
        for policy in children
        if policy["kind"] == "NetworkPolicy" and selects(policy, labels)
        for port in tcp_ports(policy)
    }
    api = named(children, "NetworkPolicy", "site-api-egress")
    assert api["spec"]["policyTypes"] == ["Egress"]
    assert selects(named(children, "NetworkPolicy", "site-egress"), labels)
    assert (set(build.API_SERVER_PORTS) <= allowed) is reaches_api
    assert pod_of(manifest)["automountServiceAccountToken"] is reaches_api
    if not reaches_api:
        assert 6443 not in allowed


# -- a stage's workload follows new code ----------------------------------------------------------------


def with_sha(status: WrapperStatus, sha: str) -> WrapperStatus:
    assert status.code is not None
    return status.model_copy(update={"code": status.code.model_copy(update={"sha256": sha})})


@pytest.mark.parametrize(
    "fields",
    [{"source": API_SOURCE}, {"mode": "schedule", "schedule": "@daily"}],
    ids=["continuous", "schedule"],
)
def test_a_workload_built_for_other_code_or_another_spec_is_out_of_date(fields: dict[str, Any]) -> None:
    built = workload(build.children(OWNER, spec(**fields), CONFIG, stored()))
    assert build.up_to_date(built, workload(build.children(OWNER, spec(**fields), CONFIG, stored())))
    regenerated = workload(
        build.children(OWNER, spec(**fields), CONFIG, with_sha(stored(regeneration=1), "ef" * 32))
    )
    assert regenerated["metadata"]["name"] == built["metadata"]["name"]
    assert not build.up_to_date(regenerated, built)
    newer_spec = workload(build.children(OWNER, spec(**fields, pollIntervalSeconds=60), CONFIG, stored()))
    assert not build.up_to_date(newer_spec, built)
    assert not build.up_to_date(built, {"metadata": {"name": built["metadata"]["name"]}})


def test_the_stage_handler_reapplies_a_workload_built_for_other_code() -> None:
    old = workload(build.children(OWNER, spec(source=API_SOURCE), CONFIG, stored()))
    known = OwnedChildren(jobs=[], cronjobs=[], deployments=[old], pods=[])
    assert present(old, known)
    regenerated = workload(
        build.children(OWNER, spec(source=API_SOURCE), CONFIG, with_sha(stored(), "ef" * 32))
    )
    assert not present(regenerated, known)


# -- the Gemini generator ------------------------------------------------------------------------------

GEMINI = {"type": "gemini", "apiKeySecretRef": {"name": "gemini", "key": "token"}, "fallback": "template"}
GEMINI_CONFIG = OperatorConfig(
    worker_image="worker:test", gemini_base_url="https://gemini-proxy.internal:8443"
)


def test_the_gemini_generator_gets_its_key_by_reference_and_the_operator_s_base_url() -> None:
    generator = of_kind(build.children(OWNER, spec(generator=GEMINI), GEMINI_CONFIG, None), "Job")
    env = env_of(generator)
    assert env[GEMINI_API_KEY_ENV] == {"secretKeyRef": {"name": "gemini", "key": "token"}}
    config = config_of(generator)
    assert config.generator.type == "gemini"
    assert config.generator.model == "gemini-2.5-flash"
    assert config.generator.base_url == "https://gemini-proxy.internal:8443"
    assert config.generator.fallback == "template"
    assert config.prompts_config_map == "site-prompts"
    assert "apiKeySecretRef" not in env[CONFIG_ENV], "the config names no Secret"


def test_only_the_gemini_generator_holds_the_gemini_key() -> None:
    run = workload(build.children(OWNER, spec(generator=GEMINI), GEMINI_CONFIG, stored()))
    assert GEMINI_API_KEY_ENV not in env_of(run)
    template = of_kind(build.children(OWNER, spec(), GEMINI_CONFIG, None), "Job")
    assert GEMINI_API_KEY_ENV not in env_of(template)
    config = config_of(template)
    assert (config.generator.base_url, config.generator.model, config.prompts_config_map) == (
        None,
        None,
        None,
    )


def test_a_gemini_generator_is_tried_again_later_only_for_the_exit_that_asks_for_it() -> None:
    generator = of_kind(build.children(OWNER, spec(generator=GEMINI), CONFIG, None), "Job")
    assert generator["spec"]["backoffLimit"] == build.GEMINI_GENERATE_BACKOFF_LIMIT
    assert generator["spec"]["activeDeadlineSeconds"] == build.GEMINI_GENERATE_DEADLINE_SECONDS
    assert generator["spec"]["podFailurePolicy"] == {
        "rules": [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [EXIT_TRY_LATER]}}]
    }
    assert pod_of(generator)["restartPolicy"] == "Never", "a pod failure policy needs it"
    template = of_kind(build.children(OWNER, spec(), CONFIG, None), "Job")
    assert "podFailurePolicy" not in template["spec"]


@pytest.mark.parametrize(
    ("generator", "config", "egress"),
    [
        (GEMINI, GEMINI_CONFIG, [{"ports": [{"protocol": "TCP", "port": 8443}]}]),
        (GEMINI, CONFIG, [{"ports": [{"protocol": "TCP", "port": 443}]}]),
        ({"type": "template"}, GEMINI_CONFIG, []),
    ],
    ids=["base-url-port", "default-port", "template"],
)
def test_only_the_generator_may_reach_gemini_s_port(
    generator: dict[str, Any], config: OperatorConfig, egress: list[dict[str, Any]]
) -> None:
    policy = named(
        build.children(OWNER, spec(generator=generator), config, None), "NetworkPolicy", "site-gemini-egress"
    )
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "headwater.dev/wrapper": "site",
        "app.kubernetes.io/component": "generate",
    }
    assert policy["spec"]["egress"] == egress


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://gemini-proxy.internal:8443", "https://gemini-proxy.internal:8443"), ("", None)],
)
def test_the_gemini_base_url_is_an_operator_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    monkeypatch.setenv("HEADWATER_GEMINI_BASE_URL", value)
    assert OperatorConfig.from_env().gemini_base_url == expected
