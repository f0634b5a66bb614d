"""The distribution the images install holds every subpackage and the data files the worker reads."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_package_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("headwater-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {
        str(path.parent.relative_to(root)) + "/__init__.py"
        for root in (REPO / "operator", REPO / "worker", REPO / "localcluster")
        for path in root.rglob("__init__.py")
    }
    assert packages <= names, sorted(packages - names)
    migrations = REPO / "worker" / "headwater_worker" / "ingest" / "schema" / "migrations"
    for path in migrations.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert str(path.relative_to(REPO / "worker")) in names
