"""Acceptance of the local control plane: real API server and controllers, the local node running pods."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from headwater_localcluster.control_plane import free_port

from tests.fixtures.cluster import Cluster, Kubectl, KubectlError, poll

Json = dict[str, Any]

pytestmark = pytest.mark.cluster

IMAGE = "headwater:dev"


def python(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code).strip()]


def container(name: str, code: str, **extra: Any) -> Json:
    return {"name": name, "image": IMAGE, "command": python(code), **extra}


def pod(name: str, *containers: Json, **spec: Any) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": list(containers),
            **spec,
        },
    }


def job(name: str, code: str, *, backoff_limit: int = 0, **pod_spec: Any) -> Json:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container("main", code)],
                    **pod_spec,
                }
            },
        },
    }


def pods_of(kubectl: Kubectl, selector: str) -> list[Json]:
    items: list[Json] = kubectl.get_json("pods", "-l", selector)["items"]
    return items


def terminated(pod_json: Json, index: int = 0) -> Json:
    state: Json = pod_json["status"]["containerStatuses"][index]["state"]
    assert "terminated" in state, state
    result: Json = state["terminated"]
    return result


# -- 1. Jobs ----------------------------------------------------------------------------------------


def test_job_completes(kubectl: Kubectl) -> None:
    kubectl.apply(job("ok", "print('the job ran')"))
    kubectl.wait("job/ok", "condition=Complete", timeout=60)
    [finished] = pods_of(kubectl, "job-name=ok")
    assert finished["status"]["phase"] == "Succeeded"
    assert terminated(finished)["exitCode"] == 0
    assert terminated(finished)["reason"] == "Completed"


def test_failing_job_respects_backoff_limit(kubectl: Kubectl) -> None:
    kubectl.apply(job("bad", "import sys; print('failing'); sys.exit(3)", backoff_limit=1))
    kubectl.wait("job/bad", "condition=Failed", timeout=90)
    failed = pods_of(kubectl, "job-name=bad")
    assert len(failed) == 2  # backoffLimit + 1
    for item in failed:
        assert item["status"]["phase"] == "Failed"
        assert terminated(item)["exitCode"] == 3
        assert terminated(item)["reason"] == "Error"
    conditions = {c["type"]: c for c in kubectl.get_json("job", "bad")["status"]["conditions"]}
    assert conditions["Failed"]["reason"] == "BackoffLimitExceeded"


# -- 2. Deployments -----------------------------------------------------------------------------------


def test_deployment_replaces_a_deleted_pod(kubectl: Kubectl) -> None:
    labels = {"app": "sleeper"}
    kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sleeper"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [container("main", "import time; time.sleep(3600)")],
                    },
                },
            },
        }
    )
    kubectl.wait("deployment/sleeper", "condition=Available", timeout=60)
    [first] = pods_of(kubectl, "app=sleeper")
    assert first["status"]["phase"] == "Running"
    assert first["spec"]["nodeName"] == "localnode"
    first_name = first["metadata"]["name"]

    kubectl.delete("pod", first_name)

    def replacement() -> Json | None:
        running = [
            p
            for p in pods_of(kubectl, "app=sleeper")
            if p["metadata"]["name"] != first_name and p["status"].get("phase") == "Running"
        ]
        return running[0] if running else None

    poll(replacement, timeout=60, message="the ReplicaSet started no new Running pod")
    poll(
        lambda: kubectl.get_or_none("pod", first_name) is None,
        timeout=30,
        message=f"deleted pod {first_name} is still there",
    )


def test_restart_policy_always_backs_off(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    spec = pod("crasher", container("main", "print('crashing'); raise SystemExit(1)"), restartPolicy="Always")
    kubectl.apply(spec)

    def restarted_twice() -> Json | None:
        item = cluster.pod(namespace, "crasher")
        statuses = (item or {}).get("status", {}).get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 2 else None

    status = poll(restarted_twice, timeout=60, message="the container was not restarted twice")
    assert status["lastState"]["terminated"]["exitCode"] == 1
    item = cluster.pod(namespace, "crasher")
    assert item is not None
    assert item["status"]["phase"] == "Running"
    poll(
        lambda: "CrashLoopBackOff" in json.dumps(cluster.pod(namespace, "crasher")),
        timeout=30,
        message="never reported CrashLoopBackOff",
    )
    assert "crashing" in cluster.logs(namespace, "crasher", previous=True)


def test_readiness_probe_gates_ready(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    port = free_port()
    server = container(
        "web",
        f"""
        import http.server, time
        time.sleep(5)
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler).serve_forever()
        """,
        readinessProbe={"httpGet": {"path": "/", "port": port}, "periodSeconds": 1},
    )
    kubectl.apply(pod("web", server, restartPolicy="Always"))
    running = cluster.wait_for_phase(namespace, "web", "Running")
    assert running["status"]["containerStatuses"][0]["ready"] is False
    kubectl.wait("pod/web", "condition=Ready", timeout=30)


# -- 3. Garbage collection ------------------------------------------------------------------------------


def test_deleting_an_owner_deletes_its_dependents(kubectl: Kubectl) -> None:
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "parent"}, "data": {"a": "1"}}
    )
    parent_uid = kubectl.get_json("configmap", "parent")["metadata"]["uid"]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent_uid}
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "ownerReferences": [owner]}}
    )
    kubectl.apply(job("sleeper", "import time; print('up', flush=True); time.sleep(3600)"))
    poll(
        lambda: any(p["status"].get("phase") == "Running" for p in pods_of(kubectl, "job-name=sleeper")),
        timeout=60,
        message="the job's pod never ran",
    )

    kubectl.delete("configmap", "parent")
    kubectl.delete("job", "sleeper", "--cascade=background")

    poll(
        lambda: kubectl.get_or_none("configmap", "child") is None,
        timeout=60,
        message="child ConfigMap remains",
    )
    poll(lambda: not pods_of(kubectl, "job-name=sleeper"), timeout=60, message="the job's pods remain")


# -- 4. CronJobs ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cronjob_creates_a_job(kubectl: Kubectl) -> None:
    template = job("unused", "print('scheduled')")["spec"]
    kubectl.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "every-minute"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": template}},
        }
    )

    def scheduled_job() -> str | None:
        for item in kubectl.get_json("jobs")["items"]:
            owners = item["metadata"].get("ownerReferences") or []
            if any(o["kind"] == "CronJob" and o["name"] == "every-minute" for o in owners):
                return str(item["metadata"]["name"])
        return None

    name = poll(scheduled_job, timeout=90, interval=1.0, message="the CronJob created no Job")
    kubectl.wait(f"job/{name}", "condition=Complete", timeout=60)


# -- 5. Logs --------------------------------------------------------------------------------------------


def test_kubectl_logs_shows_what_the_container_printed(
    cluster: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    code = """
    import sys
    for i in range(3):
        print(f"line {i}")
    print("to stderr", file=sys.stderr)
    """
    kubectl.apply(pod("printer", container("main", code), restartPolicy="Never"))
    cluster.wait_for_phase(namespace, "printer", "Succeeded")

    printed = kubectl("logs", "printer")
    lines = printed.splitlines()
    # stdout and stderr are separate pipes: their lines interleave in the order the node read them.
    assert [line for line in lines if line.startswith("line")] == ["line 0", "line 1", "line 2"]
    assert sorted(lines) == ["line 0", "line 1", "line 2", "to stderr"]
    assert kubectl("logs", "printer", "--tail=1") == lines[-1] + "\n"
    stamped = kubectl("logs", "printer", "--timestamps").splitlines()
    assert all(line[:4].isdigit() and "Z " in line for line in stamped)
    assert cluster.logs(namespace, "printer") == printed


def test_logs_follow_previous_and_containers(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    # The first run fails, the second succeeds: `--previous` shows the first.
    flaky = """
    import os, sys
    first = not os.path.exists("/flaky/ran")
    open("/flaky/ran", "w").close()
    print("first run" if first else "second run")
    sys.exit(1 if first else 0)
    """
    slow = """
    import time
    print("a")
    time.sleep(2)
    print("b")
    """
    spec = pod(
        "multi",
        container("flaky", flaky, volumeMounts=[{"name": "work", "mountPath": "/flaky"}]),
        container("slow", slow),
        restartPolicy="OnFailure",
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    kubectl.apply(spec)
    cluster.wait_for_logs(namespace, "multi", "a", container="slow")
    followed = kubectl("logs", "multi", "-c", "slow", "--follow", timeout=30)
    assert followed == "a\nb\n"
    cluster.wait_for_phase(namespace, "multi", "Succeeded")
    assert kubectl("logs", "multi", "-c", "flaky") == "second run\n"
    assert kubectl("logs", "multi", "-c", "flaky", "--previous") == "first run\n"
    assert cluster.logs(namespace, "multi", "flaky", previous=True) == "first run\n"


# -- 6. What pods get from the node --------------------------------------------------------------------

CONFIG_DIR = "/opt/headwater-test/config"
SCRATCH_DIR = "/opt/headwater-test/scratch"


def test_env_volumes_and_termination_message(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds"},
                "stringData": {"password": "s3cret"},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings"},
                "data": {"mode": "fast", "app.yaml": "key: value\n"},
            },
        ]
    )
    main = f"""
    import json, os, sys
    result = {{
        "password": os.environ["PASSWORD"],
        "mode": os.environ["MODE"],
        "prefixed": os.environ["CFG_mode"],
        "pod": os.environ["POD_NAME"],
        "label": os.environ["TEAM"],
        "optional_missing": "MISSING" in os.environ,
        "argv": sys.argv[1:],
        "config": open("{CONFIG_DIR}/app.yaml").read(),
        "scratch": open("{SCRATCH_DIR}/init.txt").read(),
        "cwd": os.getcwd(),
    }}
    try:
        open("{CONFIG_DIR}/new", "w")
        result["config_writable"] = True
    except OSError:
        result["config_writable"] = False
    open("/dev/termination-log", "w").write(json.dumps(result))
    """
    spec = pod(
        "configured",
        {
            "name": "main",
            "image": IMAGE,
            "command": [*python(main), "$(MODE)", "$$(MODE)", "$(UNDEFINED)"],
            "workingDir": SCRATCH_DIR,
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {
                    "name": "MISSING",
                    "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}},
                },
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            ],
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR},
                {"name": "scratch", "mountPath": SCRATCH_DIR},
            ],
        },
        initContainers=[
            container(
                "prepare",
                f"open('{SCRATCH_DIR}/init.txt', 'w').write('from init')",
                volumeMounts=[{"name": "scratch", "mountPath": SCRATCH_DIR}],
            )
        ],
        volumes=[
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    spec["metadata"]["labels"] = {"team": "data"}
    kubectl.apply(spec)
    done = cluster.wait_for_phase(namespace, "configured", "Succeeded", "Failed")
    state = terminated(done)
    assert done["status"]["phase"] == "Succeeded", state
    result = json.loads(state["message"])
    assert result == {
        "password": "s3cret",
        "mode": "fast",
        "prefixed": "fast",
        "pod": "configured",
        "label": "data",
        "optional_missing": False,
        "argv": ["fast", "$(MODE)", "$(UNDEFINED)"],
        "config": "key: value\n",
        "scratch": "from init",
        "cwd": SCRATCH_DIR,
        "config_writable": False,
    }
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions["Initialized"] == "True"
    # Each container had its own mount namespace: nothing was mounted on the machine itself.
    assert not Path(CONFIG_DIR, "app.yaml").exists()


def test_termination_message_falls_back_to_logs(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    failing = container(
        "main",
        "import sys; print('something broke'); sys.exit(2)",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    kubectl.apply(pod("broken", failing))
    done = cluster.wait_for_phase(namespace, "broken", "Failed")
    state = terminated(done)
    assert state["exitCode"] == 2
    assert state["reason"] == "Error"
    assert state["message"] == "something broke\n"


def test_missing_secret_keeps_the_pod_waiting(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    kubectl.apply(pod("patient", container("main", "import os; print(os.environ['TOKEN'])", env=env)))

    def waiting_reason() -> str | None:
        item = cluster.pod(namespace, "patient") or {}
        statuses = item.get("status", {}).get("containerStatuses") or [{}]
        reason = statuses[0].get("state", {}).get("waiting", {}).get("reason")
        return reason if reason == "CreateContainerConfigError" else None

    poll(waiting_reason, timeout=30, message="no CreateContainerConfigError")
    kubectl.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}, "stringData": {"token": "t0k"}}
    )
    cluster.wait_for_phase(namespace, "patient", "Succeeded")
    assert cluster.logs(namespace, "patient") == "t0k\n"


def test_active_deadline_fails_the_pod(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(pod("overdue", container("main", "import time; time.sleep(600)"), activeDeadlineSeconds=2))
    failed = cluster.wait_for_phase(namespace, "overdue", "Failed", timeout=30)
    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert terminated(failed)["exitCode"] in (137, 143)


def test_graceful_deletion(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    trapping = """
    import signal, sys, time
    def stop(signum, frame):
        open("/data/stopped", "w").write(f"signal {signum}")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
    """
    ignoring = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(600)
    """
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}
    shared = cluster.claim_folder(namespace, "shared")
    kubectl.apply(
        [
            pod(
                "trapper",
                container("main", trapping, volumeMounts=[{"name": "data", "mountPath": "/data"}]),
                volumes=[claim],
                terminationGracePeriodSeconds=30,
            ),
            pod("stubborn", container("main", ignoring), terminationGracePeriodSeconds=2),
        ]
    )
    cluster.wait_for_logs(namespace, "trapper", "ready")
    cluster.wait_for_logs(namespace, "stubborn", "ready")

    started = time.monotonic()
    kubectl.delete("pod", "trapper", "stubborn")
    poll(lambda: cluster.pod(namespace, "trapper") is None, timeout=25, message="trapper not deleted")
    # It stopped on SIGTERM, long before its 30 s grace period ran out.
    assert time.monotonic() - started < 20
    assert (shared / "stopped").read_text() == "signal 15"
    # SIGKILL after the 2 s grace period.
    poll(lambda: cluster.pod(namespace, "stubborn") is None, timeout=25, message="stubborn not deleted")


def test_in_cluster_config_uses_the_service_account(
    cluster: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-configmaps"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "read-configmaps"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
            },
        ]
    )
    code = """
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_incluster_config()
    namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
    api = client.CoreV1Api()
    print("configmaps:", sorted(c.metadata.name for c in api.list_namespaced_config_map(namespace).items))
    try:
        api.list_namespaced_secret(namespace)
        print("secrets: allowed")
    except ApiException as error:
        print("secrets:", error.status)
    """
    kubectl.apply(pod("client", container("main", code)))
    cluster.wait_for_phase(namespace, "client", "Succeeded", "Failed")
    printed = cluster.logs(namespace, "client")
    assert "configmaps: ['kube-root-ca.crt']" in printed
    assert "secrets: 403" in printed


def test_restricted_namespace_enforces_pod_security(cluster: Cluster, restricted_namespace: str) -> None:
    kubectl = cluster.kubectl.in_namespace(restricted_namespace)
    with pytest.raises(KubectlError, match="violates PodSecurity"):
        kubectl.apply(pod("lax", container("main", "print('hi')")))
    secure = container(
        "main",
        "print('hi')",
        securityContext={
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    )
    kubectl.apply(pod("strict", secure))
    cluster.wait_for_phase(restricted_namespace, "strict", "Succeeded")


def test_kubectl_and_kubeconfig_are_exported_to_subprocesses(cluster: Cluster) -> None:
    nodes = subprocess.run(
        ["kubectl", "get", "nodes", "-o", "name"], capture_output=True, text=True, check=True
    )
    assert nodes.stdout.strip() == "node/localnode"


def test_a_volume_over_the_folder_holding_the_image_does_not_hide_it(
    cluster: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    """The project and its virtual environment stand in for the image: an emptyDir mounted over the folder
    that holds them (a checkout under /tmp, with an emptyDir at /tmp) leaves them in place, and the rest of
    the emptyDir writable."""
    repo = Path(__file__).resolve().parents[2]
    shadowed = str(repo.parent)
    code = f"""
        import pathlib, headwater_worker
        probe = pathlib.Path({shadowed!r}) / "probe"
        probe.write_text("written")
        print("image intact:", pathlib.Path(headwater_worker.__file__).is_file(), probe.read_text())
    """
    manifest = pod(
        "shadow",
        container("main", code, volumeMounts=[{"name": "scratch", "mountPath": shadowed}]),
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    kubectl.apply(manifest)
    cluster.wait_for_phase(namespace, "shadow", "Succeeded", "Failed", timeout=60)
    assert "image intact: True written" in cluster.logs(namespace, "shadow")
    assert not (repo.parent / "probe").exists(), "the emptyDir stays private to the pod"


def test_up_on_a_running_cluster_changes_nothing(cluster: Cluster) -> None:
    """`make up` is idempotent: a cluster that runs and answers is left exactly as it is."""
    before = dict(cluster.state.pids)
    state = cluster.local.up()
    assert state.pids == before
    assert state.api_port == cluster.state.api_port
    assert cluster.local.is_running()


def test_a_claim_binds_to_a_provisioned_volume_and_deleting_it_removes_the_folder(
    cluster: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    storage_class = kubectl.get_json("storageclass", "standard")
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "results"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    # It waits for its first consumer, as on kind clusters: nothing is provisioned for an unused claim.
    assert kubectl.get_json("pvc", "results")["status"]["phase"] == "Pending"
    write = "open('/results/answer', 'w').write('42')"
    mounts = [{"name": "results", "mountPath": "/results"}]
    kubectl.apply(
        pod(
            "writer",
            container("main", write, volumeMounts=mounts),
            volumes=[{"name": "results", "persistentVolumeClaim": {"claimName": "results"}}],
        )
    )
    cluster.wait_for_phase(namespace, "writer", "Succeeded", timeout=90)
    claim = kubectl.get_json("pvc", "results")
    assert claim["status"]["phase"] == "Bound"
    volume = kubectl.get_json("pv", claim["spec"]["volumeName"])
    assert volume["spec"]["storageClassName"] == "standard"
    folder = cluster.claim_folder(namespace, "results")
    assert (folder / "answer").read_text() == "42"

    kubectl.delete("pod", "writer", wait=True)
    kubectl.delete("pvc", "results", wait=True)
    poll(
        lambda: not folder.exists(), timeout=60, message=f"{folder} still exists after its claim was deleted"
    )
    poll(
        lambda: kubectl.get_or_none("pv", claim["spec"]["volumeName"]) is None,
        timeout=60,
        message="the volume outlived its claim",
    )


def test_a_pod_waits_for_a_claim_created_after_it(cluster: Cluster, kubectl: Kubectl, namespace: str) -> None:
    mounts = [{"name": "late", "mountPath": "/late"}]
    kubectl.apply(
        pod(
            "early",
            container("main", "open('/late/ok', 'w').write('yes')", volumeMounts=mounts),
            volumes=[{"name": "late", "persistentVolumeClaim": {"claimName": "late"}}],
        )
    )
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "late"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    # Nothing else consumes the claim: only the waiting pod can have had it provisioned.
    cluster.wait_for_phase(namespace, "early", "Succeeded", timeout=90)
    assert (cluster.claim_folder(namespace, "late") / "ok").read_text() == "yes"
