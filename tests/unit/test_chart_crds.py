"""The chart ships the project's CRDs unchanged (`make chart-crds`) and kopf's two peering CRDs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECT_CRDS = ROOT / "crds"
CHART = ROOT / "charts" / "headwater"
CHART_CRDS = CHART / "crds"
PEERING_FILES = {"clusterkopfpeerings.kopf.dev.yaml", "kopfpeerings.kopf.dev.yaml"}


def load(path: Path) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(documents) == 1, f"{path.name}: one CRD per file"
    return dict(documents[0])


def project_crds() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(PROJECT_CRDS.glob("*.yaml"))}


def chart_copies() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(CHART_CRDS.glob("*.yaml")) if p.name not in PEERING_FILES}


def test_chart_crds_are_the_project_crds() -> None:
    """Fails when crds/ changed without `make chart-crds`, or the chart keeps a CRD the project dropped."""
    project, chart = project_crds(), chart_copies()
    missing = sorted(set(project) - set(chart))
    stale = sorted(set(chart) - set(project))
    differing = sorted(name for name in set(project) & set(chart) if project[name] != chart[name])
    assert (missing, stale, differing) == ([], [], []), "run `make chart-crds`"


def test_the_chart_has_nothing_but_crds_in_crds() -> None:
    for path in CHART_CRDS.iterdir():
        assert path.suffix == ".yaml", path.name
        crd = load(path)
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        assert path.name == f"{crd['metadata']['name']}.yaml"


@pytest.mark.parametrize(
    ("filename", "kind", "plural", "scope"),
    [
        ("clusterkopfpeerings.kopf.dev.yaml", "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        ("kopfpeerings.kopf.dev.yaml", "KopfPeering", "kopfpeerings", "Namespaced"),
    ],
)
def test_peering_crds_are_the_minimal_structural_ones_kopf_uses(
    filename: str, kind: str, plural: str, scope: str
) -> None:
    crd = load(CHART_CRDS / filename)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{plural}.kopf.dev"
    assert spec["group"] == "kopf.dev"
    assert spec["scope"] == scope
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["type"] == "object"
    assert schema["properties"]["status"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_makefile_syncs_the_chart_crds() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(
        r"^chart-crds:.*## Copy crds/ into the Helm chart\n((?:\t.*\n)+)", makefile, re.MULTILINE
    )
    assert target, "the chart-crds target is missing"
    assert "cp crds/*.yaml charts/headwater/crds/" in target.group(1)


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert (chart["name"], chart["version"], chart["appVersion"]) == ("headwater", "0.1.0", "0.1.0")
    assert chart["kubeVersion"] == ">=1.30.0-0"
