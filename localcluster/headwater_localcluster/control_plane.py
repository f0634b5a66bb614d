"""Start and stop etcd, kube-apiserver, kube-controller-manager and the local node as local processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from . import binaries, pki, storage
from .kubeapi import client_from_pki

NODE_NAME = "localnode"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
STOP_GRACE_SECONDS = 10.0
KEEP_ON_RESTART = "services"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ClusterState:
    """What `up` started, so that `down` (or another process) can find it again."""

    root: str
    api_port: int
    etcd_port: int
    etcd_peer_port: int
    controller_manager_port: int
    kubelet_port: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def save(self) -> None:
        Path(self.root, "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, root: Path) -> ClusterState | None:
        path = root / "state.json"
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def write_kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "headwater-local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
        ],
        "contexts": [{"name": "headwater-local", "context": {"cluster": "headwater-local", "user": user}}],
        "current-context": "headwater-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class LocalCluster:
    """One control plane rooted in a folder: PKI, etcd data, logs, kubeconfig and state."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.kubeconfig = self.root / "kubeconfig"
        self.logs = self.root / "logs"
        self.state: ClusterState | None = ClusterState.load(self.root)

    # -- lifecycle -------------------------------------------------------------------------------

    def is_running(self) -> bool:
        state = self.state
        if state is None or not state.pids:
            return False
        if not all(pid_alive(pid) for pid in state.pids.values()):
            return False
        return self._ready(state)

    def up(self, *, with_node: bool = True, timeout: float = 120.0) -> ClusterState:
        """Start everything; a cluster already running is left as it is."""
        if self.is_running():
            assert self.state is not None
            return self.state
        self.down()
        self._clear()
        self.logs.mkdir()
        certs = pki.create(self.root / "pki")
        state = ClusterState(
            root=str(self.root),
            api_port=free_port(),
            etcd_port=free_port(),
            etcd_peer_port=free_port(),
            controller_manager_port=free_port(),
            kubelet_port=free_port(),
        )
        self.state = state
        try:
            self._start_etcd(state)
            self._start_apiserver(state, certs)
            self._wait_ready(state, timeout)
            write_kubeconfig(self.kubeconfig, state.server, certs.ca.cert, certs.admin, "admin")
            cm_kubeconfig = self.root / "controller-manager.kubeconfig"
            write_kubeconfig(
                cm_kubeconfig, state.server, certs.ca.cert, certs.controller_manager, "controller-manager"
            )
            self._start_controller_manager(state, certs, cm_kubeconfig)
            if with_node:
                self._start_node(state, certs)
                self._start_provisioner(state)
        except BaseException:
            self.down()
            raise
        return state

    def _clear(self) -> None:
        """Remove what an earlier cluster left, keeping the services (PostgreSQL, S3) that live beside it."""
        self.root.mkdir(parents=True, exist_ok=True)
        for entry in self.root.iterdir():
            if entry.name == KEEP_ON_RESTART:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def down(self) -> None:
        """Stop every process this cluster started; the node stops its pods first."""
        state = self.state
        if state is None:
            return
        # Reverse start order: the node takes its pods down while the API server can still record it.
        for name in reversed(list(state.pids)):
            _stop_process_group(state.pids[name])
        state.pids.clear()
        if self.root.exists():
            state.save()

    # -- processes --------------------------------------------------------------------------------

    def _spawn(
        self, state: ClusterState, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        state.pids[name] = process.pid
        state.save()

    def _start_etcd(self, state: ClusterState) -> None:
        client = f"http://127.0.0.1:{state.etcd_port}"
        peer = f"http://127.0.0.1:{state.etcd_peer_port}"
        self._spawn(
            state,
            "etcd",
            [
                str(binaries.binary("etcd")),
                "--name=local",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                # A throwaway cluster: durability of each write is not worth the fsync latency.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self, state: ClusterState, certs: pki.ClusterPKI) -> None:
        self._spawn(
            state,
            "kube-apiserver",
            [
                str(binaries.binary("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={state.api_port}",
                f"--cert-dir={self.root / 'pki' / 'apiserver-generated'}",
                f"--tls-cert-file={certs.apiserver.cert}",
                f"--tls-private-key-file={certs.apiserver.key}",
                f"--client-ca-file={certs.ca.cert}",
                f"--service-account-key-file={certs.service_account_pub}",
                f"--service-account-signing-key-file={certs.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                f"--kubelet-client-certificate={certs.kubelet_client.cert}",
                f"--kubelet-client-key={certs.kubelet_client.key}",
                f"--kubelet-certificate-authority={certs.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )

    def _start_controller_manager(self, state: ClusterState, certs: pki.ClusterPKI, kubeconfig: Path) -> None:
        self._spawn(
            state,
            "kube-controller-manager",
            [
                str(binaries.binary("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.controller_manager_port}",
                f"--service-account-private-key-file={certs.service_account_key}",
                f"--root-ca-file={certs.ca.cert}",
                f"--cluster-signing-cert-file={certs.ca.cert}",
                f"--cluster-signing-key-file={certs.ca.key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--leader-elect=false",
                # Nodes, routes and cloud load balancers have nothing to manage here.
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--v=1",
            ],
        )

    def _start_node(self, state: ClusterState, certs: pki.ClusterPKI) -> None:
        self._spawn(
            state,
            "localnode",
            [
                sys.executable,
                "-m",
                "headwater_localcluster",
                f"--root={self.root}",  # an option of the program, so before the command
                "node",
            ],
        )

    def _start_provisioner(self, state: ClusterState) -> None:
        """The default StorageClass and its provisioner, whose helper pods run on the node."""
        storage.install(client_from_pki(state.server, self.root / "pki"))
        argv = storage.provisioner_argv(
            binaries.binary(binaries.PROVISIONER), self.kubeconfig, self.root / "storage"
        )
        self._spawn(state, binaries.PROVISIONER, argv)

    # -- readiness --------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        certs = self.root / "pki"
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
        return context

    def _ready(self, state: ClusterState) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 - a fixed https URL on loopback
                f"{state.server}/readyz", context=self.ssl_context(), timeout=3
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _wait_ready(self, state: ClusterState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, pid in state.pids.items():
                if not pid_alive(pid):
                    raise RuntimeError(f"{name} exited during start-up; see {self.logs / (name + '.log')}")
            if self._ready(state):
                return
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout:.0f}s; see {self.logs}")


def _stop_process_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and _group_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
