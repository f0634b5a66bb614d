"""`python -m bench export|ingest|reconcile|wrapper|computetask|package|all`: run benchmarks, write
docs/benchmarks.*."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        choices=("export", "ingest", "reconcile", "wrapper", "computetask", "package", "all"),
        help="the benchmark(s) to run",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, help="repetitions of each side (default 3; the median counts)"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="export: rows in the table; ingest, wrapper: rows in the CSV (default 1,000,000 for each)",
    )
    parser.add_argument(
        "--objects", type=int, default=None, help="reconcile: objects applied at once (default 200)"
    )
    parser.add_argument(
        "--tasks", type=int, default=None, help="computetask: tasks in each batch (default 50)"
    )
    parser.add_argument(
        "--profile-worker",
        type=Path,
        metavar="FILE",
        help="export, ingest: after the measured runs, run the worker once more under pyinstrument (which "
        "must be importable, e.g. through PYTHONPATH) and write its text report to FILE (with `all`, the "
        "ingest worker's to FILE.ingest)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the results instead of writing docs/benchmarks.*"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    done: list[results.Benchmark] = []
    if args.which in ("export", "all"):
        from . import export

        done.append(
            export.run(
                rows=args.rows or export.ROWS, repetitions=args.repetitions, profile=args.profile_worker
            )
        )
    if args.which in ("ingest", "all"):
        from . import ingest

        profile = args.profile_worker
        if profile is not None and args.which == "all":
            profile = profile.with_name(profile.name + ".ingest")
        done += ingest.run(rows=args.rows or ingest.ROWS, repetitions=args.repetitions, profile=profile)
    if args.which in ("reconcile", "all"):
        from . import reconcile

        done.append(reconcile.run(objects=args.objects or reconcile.OBJECTS, repetitions=args.repetitions))
    if args.which in ("wrapper", "all"):
        from . import wrapper

        done.append(wrapper.run(rows=args.rows or wrapper.ROWS, repetitions=args.repetitions))
    if args.which in ("computetask", "all"):
        from . import computetask

        done.append(computetask.run(tasks=args.tasks or computetask.TASKS, repetitions=args.repetitions))
    if args.which in ("package", "all"):
        from . import package

        done += package.run(repetitions=args.repetitions)

    for bench in done:
        verdict = "met" if bench.met else "NOT met"
        print(f"{bench.title}: ratio {bench.ratio:.2f}x, target {bench.target}: {verdict}")
    if args.no_write:
        import json

        print(json.dumps([results._plain(bench) for bench in done], indent=2, ensure_ascii=False))
    else:
        results.save(done)
        written = (path.relative_to(results.REPO) for path in (results.JSON_PATH, results.MARKDOWN_PATH))
        print("wrote", " and ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
