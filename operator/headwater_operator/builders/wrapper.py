"""The children of a Wrapper, as a function of its spec and of how far its status has come.

Always: a ServiceAccount for the collector and another for the generator, NetworkPolicies for its pods, the
ConfigMap the code goes into and the one Gemini's prompts and answers go into (created empty; the generator
fills them), with a Role that lets the generator's account patch those two ConfigMaps. Until code for this
spec generation is stored: the generator Job. Once it is, the collector: a Job (`once`), a CronJob
(`schedule`) or a Deployment (`continuous`, with a Role that lets it patch this one Wrapper's status).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from headwater_worker.wrapper.config import (
    API_KEY_ENV,
    CODE_KEY,
    CONFIG_ENV,
    DATABASE_URL_ENV,
    EXIT_TRY_LATER,
    GEMINI_API_KEY_ENV,
    WrapperConfig,
)

from .. import naming
from ..api.common import S3Bucket
from ..api.wrapper import KIND, GeneratedCode, WrapperSpec, WrapperStatus
from ..config import OperatorConfig
from .common import (
    Owner,
    role,
    role_binding,
    s3_credentials_env,
    s3_location,
    secret_env,
    service_account,
    status_writer_role,
    worker_pod_spec,
)

GENERATE = "generate"
COLLECT = "collect"
CODE_DIR = "/var/run/headwater/code"
SOURCE_DIR = "/var/run/headwater/source"
CRONJOB_NAME_LIMIT = 52  # the CronJob controller appends an 11-character suffix to its Jobs' names
COMPONENT_LABEL = "app.kubernetes.io/component"
POSTGRES_PORT = 5432
API_SERVER_PORTS = (443, 6443)  # the `kubernetes` Service, and the port its endpoints usually listen on
# On the CronJob and the Deployment: the digest of the spec they were built with. The same names carry new
# code after a regeneration or a spec change, and the handlers that start a stage apply only what is
# missing or out of date.
SPEC_DIGEST = "headwater.dev/spec-digest"
GENERATE_DEADLINE_SECONDS = 900
# Gemini answers slowly (and may call the fetch tool between answers), and a generator whose Gemini is out of
# reach or of quota exits EXIT_TRY_LATER: its Job starts another pod after the Job controller's backoff
# (10 s, 20 s, 40 s), within a longer deadline. Any other exit fails the Job at once.
GEMINI_GENERATE_DEADLINE_SECONDS = 1800
GEMINI_GENERATE_BACKOFF_LIMIT = 3
GEMINI_PORT = 443
RUN_DEADLINE_SECONDS = 4 * 3600
RUN_BACKOFF_LIMIT = 2
WORKER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


class InvalidSpecError(ValueError):
    """A spec the API server accepted but that cannot run as asked; `reason` goes into status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- names ------------------------------------------------------------------------------------------------


def code_config_map_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "code")


def prompts_config_map_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "prompts")


def generator_account_name(owner: Owner) -> str:
    """The generator's own ServiceAccount: the grant to write the code must not reach the collector."""
    return naming.child_name(owner.name, "generator")


def code_writer_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "code-writer")


def status_writer_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "status-writer")


def _attempt(owner: Owner, regeneration: int) -> list[str | int]:
    return [owner.generation, *([f"r{regeneration}"] if regeneration else [])]


def generator_job_name(owner: Owner, regeneration: int) -> str:
    return naming.child_name(owner.name, "gen", *_attempt(owner, regeneration))


def run_job_name(owner: Owner, regeneration: int) -> str:
    return naming.child_name(owner.name, "run", *_attempt(owner, regeneration))


def workload_name(owner: Owner) -> str:
    """The CronJob or Deployment of a scheduled or continuous wrapper."""
    return naming.child_name(owner.name, COLLECT, limit=CRONJOB_NAME_LIMIT)


def regeneration_of(owner: Owner, status: WrapperStatus | None) -> int:
    """The regenerations counted for this spec generation: those of an earlier one do not carry over, or a
    changed spec would start at its second generator and never get its own regeneration."""
    if status is None or not status.regenerations:
        return 0
    if status.code is not None and status.code.generation not in (None, owner.generation):
        return 0
    return status.regenerations


def current_code(owner: Owner, status: WrapperStatus | None) -> GeneratedCode | None:
    """The stored code, when it was written for this spec generation and this regeneration."""
    code = status.code if status is not None else None
    if code is None or code.sha256 is None or code.generation != owner.generation:
        return None
    if (code.regeneration or 0) != regeneration_of(owner, status):
        return None
    return code


# -- the worker's configuration ---------------------------------------------------------------------------


def _s3_credentials(spec: WrapperSpec) -> list[dict[str, Any]]:
    """The S3 key pair of the source file and of the output: one pair of `AWS_*` variables serves both,
    so they must come from the same Secret when both are in S3."""
    buckets: list[S3Bucket] = []
    if spec.source.file is not None and spec.source.file.s3 is not None:
        buckets.append(spec.source.file.s3)
    if spec.output is not None and spec.output.s3 is not None:
        buckets.append(spec.output.s3)
    secrets = {bucket.credentials_secret_ref.name for bucket in buckets if bucket.credentials_secret_ref}
    if len(secrets) > 1:
        raise InvalidSpecError(
            "ConflictingCredentials",
            "source.file.s3 and output.s3 use different credentialsSecretRef Secrets: use one for both",
        )
    with_credentials = [bucket for bucket in buckets if bucket.credentials_secret_ref]
    return s3_credentials_env(with_credentials[0]) if with_credentials else []


def worker_config(
    owner: Owner,
    spec: WrapperSpec,
    *,
    code: GeneratedCode | None = None,
    previous_error: str | None = None,
    gemini_base_url: str | None = None,
) -> WrapperConfig:
    source = spec.source
    body: dict[str, Any] = {
        "type": source.type,
        "url": source.url,
        "apiKeyHeader": source.api_key_header,
        "apiKeyQueryParameter": source.api_key_query_parameter,
        "notes": source.notes,
    }
    if source.file is not None and source.file.config_map_ref is not None:
        body["path"] = f"{SOURCE_DIR}/{source.file.config_map_ref.key}"
    if source.file is not None and source.file.s3 is not None:
        s3 = source.file.s3
        body["s3"] = {
            "bucket": s3.bucket,
            "key": s3.key,
            "endpoint": s3.endpoint,
            "region": s3.region,
            "forcePathStyle": s3.force_path_style,
        }
    output: dict[str, Any] | None = None
    if spec.output is not None and spec.output.database is not None:
        output = {"database": {"table": spec.output.database.table}}
    elif spec.output is not None and spec.output.s3 is not None:
        output = {"s3": s3_location(spec.output.s3)}
    indicator = spec.indicator
    config: dict[str, Any] = {
        "wrapper": f"{owner.namespace}/{owner.name}",
        "resourceId": owner.uid,
        "generation": owner.generation,
        "indicator": indicator.model_dump(by_alias=True, exclude_none=True),
        "source": {key: value for key, value in body.items() if value is not None},
        "generator": _generator_config(spec, gemini_base_url),
        "output": output,
        "mode": spec.effective_mode,
        "pollIntervalSeconds": spec.poll_interval_seconds,
    }
    if code is None:
        config["codeConfigMap"] = code_config_map_name(owner)
        config["promptsConfigMap"] = (
            prompts_config_map_name(owner) if spec.generator.type == "gemini" else None
        )
        config["previousError"] = previous_error
    else:
        config["codePath"] = f"{CODE_DIR}/{CODE_KEY}"
        config["codeSha256"] = code.sha256
    return WrapperConfig.model_validate({key: value for key, value in config.items() if value is not None})


def _generator_config(spec: WrapperSpec, gemini_base_url: str | None) -> dict[str, Any]:
    generator = spec.generator
    if generator.type != "gemini":
        return {"type": generator.type, "maxAttempts": generator.max_attempts}
    found = {
        "type": generator.type,
        "model": generator.model,
        "maxAttempts": generator.max_attempts,
        "baseUrl": gemini_base_url,
        "fallback": generator.fallback,
    }
    return {key: value for key, value in found.items() if value is not None}


def pod_spec(
    owner: Owner,
    spec: WrapperSpec,
    config: OperatorConfig,
    *,
    code: GeneratedCode | None,
    previous_error: str | None = None,
    restart_policy: str = "Never",
) -> dict[str, Any]:
    """The generator's pod (`code` None) or the collector's."""
    settings = worker_config(
        owner, spec, code=code, previous_error=previous_error, gemini_base_url=config.gemini_base_url
    )
    env: list[dict[str, Any]] = [{"name": CONFIG_ENV, "value": settings.to_env()}]
    api_key = spec.source.api_key_secret_ref
    if api_key is not None:
        env.append(secret_env(API_KEY_ENV, api_key.name, api_key.key))
    gemini_key = spec.generator.api_key_secret_ref
    if code is None and spec.generator.type == "gemini" and gemini_key is not None:
        env.append(secret_env(GEMINI_API_KEY_ENV, gemini_key.name, gemini_key.key))
    if code is not None and spec.output is not None and spec.output.database is not None:
        dsn = spec.output.database.secret_ref
        env.append(secret_env(DATABASE_URL_ENV, dsn.name, dsn.key))
    env.extend(_s3_credentials(spec))
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.source.file is not None and spec.source.file.config_map_ref is not None:
        file = spec.source.file.config_map_ref
        volumes.append(
            {
                "name": "source",
                "configMap": {"name": file.name, "items": [{"key": file.key, "path": file.key}]},
            }
        )
        mounts.append({"name": "source", "mountPath": SOURCE_DIR, "readOnly": True})
    if code is not None:
        items = [{"key": CODE_KEY, "path": CODE_KEY}]
        volumes.append({"name": "code", "configMap": {"name": code_config_map_name(owner), "items": items}})
        mounts.append({"name": "code", "mountPath": CODE_DIR, "readOnly": True})
    action = GENERATE if code is None else "run"
    # A token only for what must write through the API server: the generator stores the module, a
    # continuous collector its reports; a one-off run reports through its termination message.
    needs_token = code is None or spec.effective_mode == "continuous"
    pod = worker_pod_spec(
        owner,
        config,
        ["wrapper", action],
        env,
        volumes,
        mounts,
        restart_policy=restart_policy,
        automount_token=needs_token,
        account=generator_account_name(owner) if code is None else None,
    )
    pod["containers"][0]["resources"] = WORKER_RESOURCES
    return pod


def check(spec: WrapperSpec) -> None:
    """Raise InvalidSpecError for a spec that cannot run as asked."""
    _s3_credentials(spec)


# -- children ---------------------------------------------------------------------------------------------


def code_config_map(owner: Owner) -> dict[str, Any]:
    """Its data is the generator's to write; applying this never touches it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(code_config_map_name(owner), GENERATE),
    }


def prompts_config_map(owner: Owner) -> dict[str, Any]:
    """Gemini's prompts and answers, for the user to read; the generator replaces its data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(prompts_config_map_name(owner), GENERATE),
    }


def code_writer_role(owner: Owner) -> dict[str, Any]:
    rule = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [code_config_map_name(owner), prompts_config_map_name(owner)],
        "verbs": ["get", "patch"],
    }
    return role(owner, code_writer_name(owner), [rule])


def _port(url: str | None, default: int = 443) -> int | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme, default)


def egress_ports(spec: WrapperSpec) -> list[int]:
    """The TCP ports the wrapper's pods may reach: the source's, the S3 endpoints', PostgreSQL's, and those
    the spec adds."""
    ports: set[int] = set(spec.egress_ports)
    source_port = _port(spec.source.url)
    if source_port is not None:
        ports.add(source_port)
    for bucket in (
        spec.source.file.s3 if spec.source.file is not None else None,
        spec.output.s3 if spec.output is not None else None,
    ):
        if bucket is not None:
            ports.add(_port(bucket.endpoint) or 443)
    if spec.output is not None and spec.output.database is not None:
        ports.add(POSTGRES_PORT)
    return sorted(ports)


def _tcp(ports: Sequence[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def network_policy(owner: Owner, spec: WrapperSpec) -> dict[str, Any]:
    """No ingress; egress to DNS and to the ports of the source and the output only."""
    dns = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    ports = egress_ports(spec)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owner.metadata(naming.child_name(owner.name, "egress"), "worker"),
        "spec": {
            "podSelector": {"matchLabels": {naming.label_key(owner.kind): owner.name}},
            "policyTypes": ["Ingress", "Egress"],
            # A rule without ports would allow every port: none is written when there is nothing to reach.
            "egress": [{"ports": dns}, *([{"ports": _tcp(ports)}] if ports else [])],
        },
    }


def api_server_policy(owner: Owner, spec: WrapperSpec) -> dict[str, Any]:
    """Egress to the API server's ports, added (policies add up) for the pods that hold a token only: the
    generator, and a continuous collector."""
    components = [GENERATE, COLLECT] if spec.effective_mode == "continuous" else [GENERATE]
    selector = {
        "matchLabels": {naming.label_key(owner.kind): owner.name},
        "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": components}],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owner.metadata(naming.child_name(owner.name, "api-egress"), "worker"),
        "spec": {
            "podSelector": selector,
            "policyTypes": ["Egress"],
            "egress": [{"ports": _tcp(API_SERVER_PORTS)}],
        },
    }


def gemini_port(config: OperatorConfig) -> int:
    return _port(config.gemini_base_url) or GEMINI_PORT


def generator_policy(owner: Owner, spec: WrapperSpec, config: OperatorConfig) -> dict[str, Any]:
    """Egress to Gemini's port for the generator alone, when Gemini writes the code; no rule otherwise (the
    policy stays, allowing nothing, so that a spec turned back to `template` leaves no grant behind)."""
    selector = {
        "matchLabels": {naming.label_key(owner.kind): owner.name, COMPONENT_LABEL: GENERATE},
    }
    egress = [{"ports": _tcp([gemini_port(config)])}] if spec.generator.type == "gemini" else []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owner.metadata(naming.child_name(owner.name, "gemini-egress"), "worker"),
        "spec": {"podSelector": selector, "policyTypes": ["Egress"], "egress": egress},
    }


def _job(
    name: str,
    owner: Owner,
    component: str,
    pod: dict[str, Any],
    deadline: int,
    backoff: int,
    retried_exit_codes: Sequence[int] | None = None,
) -> dict[str, Any]:
    job_spec: dict[str, Any] = {"backoffLimit": backoff, "activeDeadlineSeconds": deadline}
    if retried_exit_codes is not None:
        job_spec["podFailurePolicy"] = {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"operator": "NotIn", "values": list(retried_exit_codes)},
                }
            ]
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(name, component),
        "spec": {
            **job_spec,
            "template": {
                "metadata": {"labels": naming.labels(owner.kind, owner.name, component)},
                "spec": pod,
            },
        },
    }


def generator_job(
    owner: Owner, spec: WrapperSpec, config: OperatorConfig, status: WrapperStatus | None
) -> dict[str, Any]:
    regeneration = regeneration_of(owner, status)
    previous_error = status.collector.message if regeneration and status and status.collector else None
    pod = pod_spec(owner, spec, config, code=None, previous_error=previous_error)
    name = generator_job_name(owner, regeneration)
    if spec.generator.type == "gemini":
        return _job(
            name,
            owner,
            GENERATE,
            pod,
            GEMINI_GENERATE_DEADLINE_SECONDS,
            GEMINI_GENERATE_BACKOFF_LIMIT,
            retried_exit_codes=[EXIT_TRY_LATER],
        )
    # The generator retries the source and its own attempts; a failed pod is an answer, not a hiccup.
    return _job(name, owner, GENERATE, pod, GENERATE_DEADLINE_SECONDS, 0)


def run_job(
    owner: Owner, spec: WrapperSpec, config: OperatorConfig, code: GeneratedCode, regeneration: int
) -> dict[str, Any]:
    pod = pod_spec(owner, spec, config, code=code)
    return _job(
        run_job_name(owner, regeneration), owner, COLLECT, pod, RUN_DEADLINE_SECONDS, RUN_BACKOFF_LIMIT
    )


def _with_digest(manifest: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(manifest["spec"], sort_keys=True).encode()).hexdigest()
    manifest["metadata"]["annotations"] = {SPEC_DIGEST: digest}
    return manifest


def up_to_date(wanted: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
    """Whether `existing` was built as `wanted` is, as far as its spec digest tells (none: by name)."""
    digest = (wanted["metadata"].get("annotations") or {}).get(SPEC_DIGEST)
    return (
        digest is None
        or ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_DIGEST) == digest
    )


def cronjob(owner: Owner, spec: WrapperSpec, config: OperatorConfig, code: GeneratedCode) -> dict[str, Any]:
    assert spec.schedule is not None
    labels = naming.labels(owner.kind, owner.name, COLLECT)
    return _with_digest(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": owner.metadata(workload_name(owner), COLLECT),
            "spec": {
                "schedule": spec.schedule,
                "suspend": spec.suspend,
                # Two runs at once would start from the same high water mark.
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "backoffLimit": RUN_BACKOFF_LIMIT,
                        "activeDeadlineSeconds": RUN_DEADLINE_SECONDS,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": pod_spec(owner, spec, config, code=code),
                        },
                    },
                },
            },
        }
    )


def deployment(
    owner: Owner, spec: WrapperSpec, config: OperatorConfig, code: GeneratedCode
) -> dict[str, Any]:
    labels = naming.labels(owner.kind, owner.name, COLLECT)
    selector = {naming.label_key(owner.kind): owner.name, COMPONENT_LABEL: COLLECT}
    return _with_digest(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": owner.metadata(workload_name(owner), COLLECT),
            "spec": {
                "replicas": 0 if spec.suspend else 1,
                # One collector at a time: two would start from the same high water mark.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec(owner, spec, config, code=code, restart_policy="Always"),
                },
            },
        }
    )


def collectors(
    owner: Owner, spec: WrapperSpec, config: OperatorConfig, status: WrapperStatus | None
) -> list[dict[str, Any]]:
    """What runs the stored code; nothing before it is stored."""
    code = current_code(owner, status)
    if code is None:
        return []
    mode = spec.effective_mode
    if mode == "once":
        return [] if spec.suspend else [run_job(owner, spec, config, code, regeneration_of(owner, status))]
    if mode == "schedule":
        return [cronjob(owner, spec, config, code)]
    return [
        status_writer_role(owner, KIND.plural, status_writer_name(owner)),
        role_binding(owner, status_writer_name(owner)),
        deployment(owner, spec, config, code),
    ]


def children(
    owner: Owner, spec: WrapperSpec, config: OperatorConfig, status: WrapperStatus | None
) -> list[dict[str, Any]]:
    """Everything the Wrapper should own now, in the order to apply it; raises InvalidSpecError."""
    check(spec)
    made = [
        service_account(owner),
        service_account(owner, generator_account_name(owner)),
        network_policy(owner, spec),
        api_server_policy(owner, spec),
        generator_policy(owner, spec, config),
        code_config_map(owner),
        prompts_config_map(owner),
        code_writer_role(owner),
        role_binding(owner, code_writer_name(owner), generator_account_name(owner)),
    ]
    if current_code(owner, status) is None:
        return [*made, generator_job(owner, spec, config, status)]
    return [*made, *collectors(owner, spec, config, status)]
