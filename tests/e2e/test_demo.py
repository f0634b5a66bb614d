"""`make demo` from nothing: control plane, PostgreSQL, S3, CRDs, operator, examples; the ExportJob example
reaches Ready with its files in S3, the file Connector loads the sample dropped on its provisioned volume,
the Wrapper example collects its CSV into the demo's PostgreSQL, the Package example is packaged into S3,
and `down` leaves no process behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from headwater_localcluster.control_plane import ClusterState

from tests.fixtures.cluster import cluster_processes

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def localcluster(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater_localcluster", f"--root={root}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_demo_runs_every_implemented_example_and_down_stops_everything(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    try:
        demo = localcluster(root, "demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "exportjob.headwater.dev/knowledge-base-export   Succeeded   True" in demo.stdout
        assert "knowledge-base/agency-" in demo.stdout
        assert "24 rows loaded" in demo.stdout
        assert re.search(r"connector\.headwater\.dev/farm-energy-files\s+file\s+\S+\s+True", demo.stdout), (
            demo.stdout
        )
        assert re.search(r"farm-energy-files\s+Bound\s+pvc-", demo.stdout), demo.stdout
        assert re.search(r"exported-data\s+Bound\s+pvc-", demo.stdout), demo.stdout
        assert "3 points of wrapper/site-electricity in the table" in demo.stdout
        assert re.search(
            r"wrapper\.headwater\.dev/site-electricity\s+CSV\s+once\s+Completed\s", demo.stdout
        ), demo.stdout
        assert re.search(
            r"computetask\.headwater\.dev/profile-readings\s+csv-profile\s+Succeeded\s+finished\s+True",
            demo.stdout,
        ), demo.stdout
        assert "outputs/readings-profile.json" in demo.stdout
        assert re.search(
            r"package\.headwater\.dev/gambia\s+gambia\s+Succeeded\s+True\s+100\s", demo.stdout
        ), demo.stdout
        assert re.search(
            r"datapackage\.json of package/gambia: http://127\.0\.0\.1:\d+/exports/packages/gambia/datapackage\.json",
            demo.stdout,
        ), demo.stdout
        assert "packages/gambia/datasets/test_processor/version_1/data/" in demo.stdout
        assert "DatabaseUnavailable" not in demo.stdout
        state = ClusterState.load(root)
        assert state is not None
        assert "headwater-operator" in state.pids
        again = localcluster(root, "demo")
        assert again.returncode == 0, "the demo is idempotent: " + again.stdout + again.stderr
    finally:
        pids = dict((ClusterState.load(root) or ClusterState(str(root), 0, 0, 0, 0, 0)).pids)
        for command in (["down"], ["s3", "down"], ["postgres", "down"]):
            localcluster(root, *command)
    assert cluster_processes(root, pids) == []
