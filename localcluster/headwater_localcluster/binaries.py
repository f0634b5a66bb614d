"""Build the control plane binaries from Go modules, once per machine, into a cache keyed by version."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm"
HELM_VERSION = "v3.21.4"  # the Helm release built against client-go v0.36
GO_MODULE_DIR = Path(__file__).resolve().parent.parent
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
# The dynamic provisioner kind clusters use: PersistentVolumeClaims bind as in a real cluster.
PROVISIONER = "local-path-provisioner"
PROVISIONER_MODULE = "github.com/rancher/local-path-provisioner"
PROVISIONER_VERSION = "v0.0.30"


def cache_root() -> Path:
    configured = os.environ.get("HEADWATER_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "headwater"
    return base


def bin_dir() -> Path:
    """The cache folder for this exact build: other module versions or build flags build anew."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((GO_MODULE_DIR / name).read_bytes())
    digest.update(HELM_VERSION.encode())
    digest.update(_kubernetes_ldflags().encode())
    digest.update(_helm_ldflags().encode())
    return cache_root() / f"kubernetes-{KUBERNETES_VERSION}-{digest.hexdigest()[:12]}" / "bin"


def provisioner_dir() -> Path:
    """Built apart from the control plane, against its own go.mod: a new provisioner version rebuilds only
    itself."""
    return cache_root() / f"{PROVISIONER}-{PROVISIONER_VERSION}" / "bin"


def missing_binaries() -> list[str]:
    directory = bin_dir()
    return [name for name in BINARIES if not (directory / name).is_file()]


def binary(name: str) -> Path:
    path = (provisioner_dir() if name == PROVISIONER else bin_dir()) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make cluster-bin` first")
    return path


def _ldflags(stamps: dict[str, str]) -> str:
    return " ".join(["-s", "-w", *(f"-X {key}={value}" for key, value in stamps.items())])


def _kubernetes_ldflags() -> str:
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    return _ldflags(
        {
            "k8s.io/component-base/version.gitVersion": KUBERNETES_VERSION,
            "k8s.io/component-base/version.gitMajor": major,
            "k8s.io/component-base/version.gitMinor": minor,
            "k8s.io/component-base/version.gitTreeState": "clean",
            "k8s.io/client-go/pkg/version.gitVersion": KUBERNETES_VERSION,
        }
    )


def _helm_ldflags() -> str:
    """Helm's own version, and the Kubernetes version `helm template` and `helm lint` assume offline."""
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    return _ldflags(
        {
            "helm.sh/helm/v3/internal/version.version": HELM_VERSION,
            "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor": major,
            "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor": minor,
            "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor": major,
            "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor": minor,
        }
    )


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is required to build the local control plane (go not on PATH)")
    return go


def build() -> Path:
    """Build whatever is missing; a warm cache returns at once."""
    build_provisioner()
    target = bin_dir()
    if not missing_binaries():
        return target
    go = _go()
    staging = target.with_name("bin.partial")
    staging.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0"}
    packages = [
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kubectl",
        "./cmd/etcd",
    ]
    print(f"building Kubernetes {KUBERNETES_VERSION} control plane into {target}", file=sys.stderr)
    subprocess.run(
        [go, "build", "-trimpath", "-ldflags", _kubernetes_ldflags(), "-o", f"{staging}/", *packages],
        cwd=GO_MODULE_DIR,
        env=env,
        check=True,
    )
    # `go install pkg@version` builds Helm against its own go.mod, untouched by ours.
    subprocess.run(
        [
            go,
            "install",
            "-trimpath",
            "-ldflags",
            _helm_ldflags(),
            f"{HELM_MODULE}@{HELM_VERSION}",
        ],
        env={**env, "GOBIN": str(staging)},
        check=True,
    )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    print(f"built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target


def build_provisioner() -> Path:
    target = provisioner_dir()
    if (target / PROVISIONER).is_file():
        return target
    staging = target.with_name("bin.partial")
    staging.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"building {PROVISIONER} {PROVISIONER_VERSION} into {target}", file=sys.stderr)
    subprocess.run(
        [_go(), "install", "-trimpath", "-ldflags", "-s -w", f"{PROVISIONER_MODULE}@{PROVISIONER_VERSION}"],
        env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(staging)},
        check=True,
    )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    print(f"built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target
