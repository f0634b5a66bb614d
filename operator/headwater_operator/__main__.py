"""`headwater-operator`: run the kopf operator with health, metrics and JSON logs."""

from __future__ import annotations

import argparse
import gc
import secrets
import sys

import kopf
from prometheus_client import start_http_server

from . import logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="headwater-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); all namespaces by default",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="act without peering: only when exactly one replica runs",
    )
    parser.add_argument("--peering", default="headwater", help="peering name shared by the replicas")
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; by default a random one, so that of several replicas exactly one (the "
        "highest) acts and the others stand by until its peering record expires",
    )
    parser.add_argument("--health-port", type=int, default=8080, help="liveness endpoint: /healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics: /metrics")
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logs.configure(args.verbose)
    from . import handlers  # noqa: F401 - registers the handlers

    tune_garbage_collection()

    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority if args.priority is not None else secrets.randbelow(2**31 - 1) + 1,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
    )
    return 0


# Python's default (a young-generation collection every 700 new objects) suits short scripts. Each watch
# event decodes into hundreds of objects, so at hundreds of events a second the collector ran constantly,
# and scanned kopf's indexes and caches with them: about a sixth of the operator's CPU. Reference counting
# frees everything but cycles at once, so collecting less often costs little memory.
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    # What start-up created (modules, kopf's registry) lives as long as the process: no collection scans it.
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
