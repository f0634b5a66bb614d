"""`make demo`: the local control plane, PostgreSQL and S3, the CRDs, the operator, and the examples.

Everything is idempotent, so the demo can run again on a cluster that is already up. The ExportJob example
runs against a demo table and the demo waits until it is Ready with its file in S3.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

from . import binaries
from .control_plane import LocalCluster, pid_alive
from .operator import spawn_operator
from .services import PostgresServer, S3Server

REPO = binaries.GO_MODULE_DIR.parent
OPERATOR = "headwater-operator"
DEMO_BUCKET = "exports"
DEMO_ROWS = 1000


def _kubectl(cluster: LocalCluster, *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [str(binaries.binary("kubectl")), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _seed_database(dsn: str) -> None:
    """The tables the ExportJob example exports, filled once."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS agency (id integer PRIMARY KEY, name text NOT NULL)")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS source_run_page "
            "(id integer PRIMARY KEY, url text NOT NULL, finished_at timestamptz NOT NULL)"
        )
        connection.execute(
            "INSERT INTO agency SELECT i, 'Agency ' || i FROM generate_series(1, %s) AS i "
            "ON CONFLICT DO NOTHING",
            (DEMO_ROWS,),
        )
        connection.execute(
            "INSERT INTO source_run_page SELECT i, 'https://example.org/page/' || i, "
            "now() - (i %% 30) * interval '1 day' FROM generate_series(1, %s) AS i ON CONFLICT DO NOTHING",
            (DEMO_ROWS,),
        )


def _start_operator(cluster: LocalCluster) -> None:
    state = cluster.state
    assert state is not None
    pid = state.pids.get(OPERATOR)
    if pid is not None and pid_alive(pid):
        return
    process = spawn_operator(cluster.kubeconfig, cluster.logs / "operator.log")
    state.pids[OPERATOR] = process.pid
    state.save()


def _demo_documents(dsn: str, endpoint: str, s3: S3Server) -> list[dict[str, Any]]:
    """examples/exportjob.yaml with its Secrets pointed at the demo's PostgreSQL and S3."""
    documents = [d for d in yaml.safe_load_all((REPO / "examples" / "exportjob.yaml").read_text()) if d]
    for document in documents:
        if document["kind"] == "Secret" and "dsn" in document.get("stringData", {}):
            document["stringData"]["dsn"] = dsn
        elif document["kind"] == "Secret":
            document["stringData"] = {
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            }
        elif document["kind"] == "ExportJob":
            document["spec"]["destination"]["s3"].update(bucket=DEMO_BUCKET, endpoint=endpoint)
    return documents


def run_demo(root: Path, timeout: float = 180.0) -> int:
    _step("local control plane")
    cluster = LocalCluster(root)
    cluster.up()
    _step("PostgreSQL and S3 for the demo")
    postgres = PostgresServer(root / "services" / "postgres").start()
    s3 = S3Server(root / "services" / "s3").start()
    dsn = postgres.dsn()
    _seed_database(dsn)
    client = s3.client()
    if DEMO_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=DEMO_BUCKET)

    _step("CRDs")
    _kubectl(cluster, "apply", "--server-side", "-f", str(REPO / "crds"))
    _kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    _step("operator")
    _start_operator(cluster)

    _step("examples")
    for example in sorted((REPO / "examples").glob("*.yaml")):
        if example.name != "exportjob.yaml":
            print(_kubectl(cluster, "apply", "-f", str(example)), end="")
    # Last, so that its Secrets (pointing at the demo's PostgreSQL and S3) win over the placeholder ones
    # other examples share.
    documents = _demo_documents(dsn, s3.endpoint_url, s3)
    print(_kubectl(cluster, "apply", "-f", "-", input=yaml.safe_dump_all(documents)), end="")
    export_name = next(d["metadata"]["name"] for d in documents if d["kind"] == "ExportJob")

    _step(f"waiting for exportjob/{export_name} to be Ready")
    deadline = time.monotonic() + timeout
    while True:
        try:
            _kubectl(cluster, "wait", f"exportjob/{export_name}", "--for=condition=Ready", "--timeout=10s")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                print(_kubectl(cluster, "get", "exportjob", export_name, "-o", "yaml"))
                print(
                    f"exportjob/{export_name} did not become Ready; operator log: {cluster.logs}/operator.log"
                )
                return 1
    print(_kubectl(cluster, "get", "headwater"))
    print(_kubectl(cluster, "get", "exportjob", export_name, "-o", "jsonpath={.status.tasks}"))
    _step(f"files in s3://{DEMO_BUCKET}")
    for item in client.list_objects_v2(Bucket=DEMO_BUCKET).get("Contents", []):
        print(f"  {item['Key']}  {item['Size']} bytes")
    print(f"\nexport KUBECONFIG={cluster.kubeconfig}   # then: kubectl get headwater; make down when done")
    return 0
