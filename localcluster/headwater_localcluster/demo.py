"""`make demo`: the local control plane, PostgreSQL and S3, the CRDs, the operator, and the examples.

Everything is idempotent, so the demo can run again on a cluster that is already up. The examples' Secrets
are pointed at the demo's PostgreSQL and S3. The ExportJob example runs against a demo table and the demo
waits until it is Ready with its file in S3; a sample meter export is dropped on the file Connector's
volume (a claim the cluster's provisioner binds) and the demo waits until its rows are loaded. The Wrapper
examples are generated and collected into the demo's PostgreSQL; the ComputeTask example profiles a CSV the
demo uploads to S3 first, and the demo waits until it is Ready with its output there; the Package example is
packaged into the demo's S3 and the demo waits until it is Ready, then prints its datapackage.json's URI.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.sql
import yaml

from . import binaries, storage
from .control_plane import LocalCluster, pid_alive
from .kubeapi import client_from_pki
from .operator import spawn_operator
from .services import PostgresServer, S3Server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO = binaries.GO_MODULE_DIR.parent
OPERATOR = "headwater-operator"
DEMO_BUCKET = "exports"
DEMO_ROWS = 1000
DEMO_CONNECTOR = "farm-energy-files"
# A day of hourly readings in the meter export format of the shipped `energy_hourly` mapping.
DEMO_METER_CSV = "Date and Time,Hourly\n" + "".join(
    f"2025-03-01 {hour:02d}:00,{10 + hour % 7}.25\n" for hour in range(24)
)


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


def _demo_documents(dsn: str, s3: S3Server) -> list[dict[str, Any]]:
    """Every example, with its database Secrets pointed at the demo's PostgreSQL and the S3 export at the
    demo's S3."""
    documents = [
        document
        for example in sorted((REPO / "examples").glob("*.yaml"))
        for document in yaml.safe_load_all(example.read_text())
        if document
    ]
    for document in documents:
        name = document["metadata"]["name"]
        if document["kind"] == "Secret" and "dsn" in document.get("stringData", {}):
            document["stringData"]["dsn"] = dsn
        elif document["kind"] == "Secret" and name in ("export-s3", "compute-s3", "package-s3"):
            document["stringData"] = {
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            }
        elif document["kind"] == "ExportJob" and "s3" in document["spec"]["destination"]:
            document["spec"]["destination"]["s3"].update(bucket=DEMO_BUCKET, endpoint=s3.endpoint_url)
        elif document["kind"] == "ComputeTask":
            document["spec"]["s3"].update(bucket=DEMO_BUCKET, endpoint=s3.endpoint_url)
        elif document["kind"] == "Package" and "s3" in document["spec"]["storage"]:
            storage = document["spec"]["storage"]["s3"]
            storage.update(bucket=DEMO_BUCKET, endpoint=s3.endpoint_url)
            # The demo's S3 serves the package too: its links lead to the stored files.
            document["spec"]["packageHostUrl"] = (
                f"{s3.endpoint_url}/{DEMO_BUCKET}/{storage['prefix']}".rstrip("/")
            )
    return documents


def _upload_task_inputs(client: S3Client, documents: list[dict[str, Any]]) -> None:
    """A small CSV for each input of the example ComputeTasks, so that they have something to work on."""
    readings = "station,reading,taken_at\n" + "".join(
        f"s{i % 3},{20 + (i * 7) % 11 / 2},2025-01-{i + 1:02d}T12:00:00\n" for i in range(28)
    )
    for document in documents:
        if document["kind"] == "ComputeTask":
            for key in document["spec"]["dataIn"]:
                client.put_object(Bucket=DEMO_BUCKET, Key=key, Body=readings.encode())


def _wait(cluster: LocalCluster, resource: str, condition: str, deadline: float) -> bool:
    while True:
        try:
            _kubectl(cluster, "wait", resource, f"--for={condition}", "--timeout=10s")
            return True
        except RuntimeError:
            if time.monotonic() > deadline:
                print(_kubectl(cluster, "get", resource, "-o", "yaml"))
                print(f"{resource} did not reach {condition}; operator log: {cluster.logs}/operator.log")
                return False


def _bind_claims(cluster: LocalCluster, documents: list[dict[str, Any]]) -> dict[str, Path]:
    """Every example claim bound, each to its folder on the node. A claim waits for its first pod, and the
    nightly export's first pod runs at night: binding them now shows the provisioner at work."""
    state = cluster.state
    assert state is not None
    client = client_from_pki(state.server, cluster.root / "pki")
    return {
        name: storage.claim_folder(client, cluster.root, "default", name)
        for name in (d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim")
    }


def _drop_meter_file(folder: Path) -> Path:
    """The sample export, written beside `incoming/` and renamed into it, so the watcher never sees half a
    file."""
    (folder / "incoming").mkdir(mode=0o777, exist_ok=True)
    staged = folder / ".meter-2025-03-01.csv"
    staged.write_text(DEMO_METER_CSV, encoding="utf-8")
    target = folder / "incoming" / "meter-2025-03-01.csv"
    os.replace(staged, target)
    return target


def _rows_loaded(cluster: LocalCluster, deadline: float) -> int | None:
    expected = DEMO_METER_CSV.count("\n") - 1
    while time.monotonic() < deadline:
        raw = _kubectl(cluster, "get", "connector", DEMO_CONNECTOR, "-o", "jsonpath={.status}")
        status = json.loads(raw or "{}")
        if int(status.get("rowsLoaded") or 0) >= expected:
            return int(status["rowsLoaded"])
        time.sleep(1)
    print(_kubectl(cluster, "get", "connector", DEMO_CONNECTOR, "-o", "yaml"))
    print(f"connector/{DEMO_CONNECTOR} did not load the sample; operator log: {cluster.logs}/operator.log")
    return None


def _points_stored(dsn: str, wrapper: dict[str, Any], uid: str) -> int:
    table = wrapper["spec"]["output"]["database"].get("table", "indicator_points")
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} WHERE resource_id = %s").format(
                psycopg.sql.Identifier(*table.split("."))
            ),
            (uid,),
        ).fetchone()
    return int(row[0]) if row else 0


def _collected(cluster: LocalCluster, dsn: str, documents: list[dict[str, Any]], deadline: float) -> bool:
    """Every example Wrapper writing to a database: generated, run, Completed, its points in the table."""
    for wrapper in documents:
        if wrapper["kind"] != "Wrapper" or "database" not in wrapper["spec"].get("output", {}):
            continue
        name = wrapper["metadata"]["name"]
        _step(f"waiting for wrapper/{name} to generate its collector and collect")
        if not _wait(cluster, f"wrapper/{name}", "jsonpath={.status.phase}=Completed", deadline):
            return False
        uid = _kubectl(cluster, "get", "wrapper", name, "-o", "jsonpath={.metadata.uid}")
        print(f"  {_points_stored(dsn, wrapper, uid)} points of wrapper/{name} in the table")
    return True


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
    documents = _demo_documents(dsn, s3)
    _upload_task_inputs(client, documents)
    print(_kubectl(cluster, "apply", "-f", "-", input=yaml.safe_dump_all(documents)), end="")
    export_name = next(
        d["metadata"]["name"]
        for d in documents
        if d["kind"] == "ExportJob" and "s3" in d["spec"]["destination"]
    )

    deadline = time.monotonic() + timeout
    _step(f"waiting for exportjob/{export_name} to be Ready")
    if not _wait(cluster, f"exportjob/{export_name}", "condition=Ready", deadline):
        return 1
    _step("volumes of the example claims, from the cluster's provisioner")
    folders = _bind_claims(cluster, documents)
    for name, folder in folders.items():
        print(f"  {name}: {folder}")
    _step(f"a meter export dropped for connector/{DEMO_CONNECTOR}")
    print(f"  {_drop_meter_file(folders[DEMO_CONNECTOR]).name}")
    loaded = _rows_loaded(cluster, deadline)
    if loaded is None or not _wait(cluster, f"connector/{DEMO_CONNECTOR}", "condition=Ready", deadline):
        return 1
    print(f"  {loaded} rows loaded")
    if not _collected(cluster, dsn, documents, deadline):
        return 1
    for task in (d["metadata"]["name"] for d in documents if d["kind"] == "ComputeTask"):
        _step(f"waiting for computetask/{task} to be Ready")
        if not _wait(cluster, f"computetask/{task}", "condition=Ready", deadline):
            return 1
    for package in (d["metadata"]["name"] for d in documents if d["kind"] == "Package"):
        _step(f"waiting for package/{package} to be Ready")
        if not _wait(cluster, f"package/{package}", "condition=Ready", deadline):
            return 1
        uri = _kubectl(cluster, "get", "package", package, "-o", "jsonpath={.status.datapackageUri}")
        print(f"  datapackage.json of package/{package}: {uri}")
    print(_kubectl(cluster, "get", "headwater"))
    print(_kubectl(cluster, "get", "persistentvolumeclaims"))
    print(_kubectl(cluster, "get", "exportjob", export_name, "-o", "jsonpath={.status.tasks}"))
    _step(f"files in s3://{DEMO_BUCKET}")
    for item in client.list_objects_v2(Bucket=DEMO_BUCKET).get("Contents", []):
        print(f"  {item['Key']}  {item['Size']} bytes")
    print(f"\nexport KUBECONFIG={cluster.kubeconfig}   # then: kubectl get headwater; make down when done")
    return 0
