"""`python -m headwater_localcluster build|up|down|status|node|postgres|s3|demo`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import binaries, services
from .control_plane import LocalCluster

REPO_ROOT = binaries.GO_MODULE_DIR.parent


def default_root() -> Path:
    return Path(os.environ.get("HEADWATER_CLUSTER_ROOT", REPO_ROOT / ".localcluster"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="headwater_localcluster", description=__doc__)
    parser.add_argument("--root", type=Path, default=default_root(), help="state folder of the cluster")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the control plane binaries (cached)")
    up = commands.add_parser("up", help="start the control plane and the local node (idempotent)")
    up.add_argument("--no-node", action="store_true", help="start only etcd, API server and controllers")
    commands.add_parser("down", help="stop everything the cluster started")
    commands.add_parser("status", help="say whether the cluster runs, and where its kubeconfig is")
    commands.add_parser("node", help="run the local node in the foreground (started by `up`)")
    commands.add_parser("demo", help="start everything, run the operator and apply the examples")
    services.add_service_commands(commands)
    args = parser.parse_args(argv)

    if args.command == "build":
        print(binaries.build())
        return 0
    if args.command == "node":
        from .node import run_node

        return run_node(args.root)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.root)
    if args.command in services.SERVICE_COMMANDS:
        return services.run_service_command(args.command, args.action, args.root)
    cluster = LocalCluster(args.root)
    if args.command == "up":
        state = cluster.up(with_node=not args.no_node)
        print(f"local control plane at {state.server}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"export PATH={binaries.bin_dir()}:$PATH")
        return 0
    if args.command == "down":
        cluster.down()
        print("local control plane stopped")
        return 0
    running = cluster.is_running()
    print(f"{'running' if running else 'stopped'}; kubeconfig {cluster.kubeconfig}")
    return 0 if running else 1


if __name__ == "__main__":
    sys.exit(main())
