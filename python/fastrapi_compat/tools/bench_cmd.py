"""``fastrapi-compat bench``'s steps after its flags are parsed: what it needs checked before
the app is imported, then requests, the run, the table and the plot; one ``Error:`` line for
anything that stops it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fastrapi_compat.tools.bench import (
    BenchError,
    BenchOptions,
    operations_from_file,
    operations_from_schema,
    run_bench,
    uvicorn_description,
    with_tiers,
)
from fastrapi_compat.tools.bench_report import ProgressBar, missing_for_plot, plot, table


def _fail(message: str) -> int:
    print(f"Error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def check_args(args: argparse.Namespace, missing_for_check: str) -> str:
    """Why the run cannot start ("" when it can), before the app is imported;
    ``missing_for_check`` is why requests cannot be generated here ("" when they can)."""
    if not os.path.isdir(args.app_dir):
        return f"--app-dir {args.app_dir!r} is not a directory."
    if not args.no_plot:
        missing = missing_for_plot()
        if missing:
            return missing
        directory = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(directory):
            return f"--plot {args.plot!r}: directory {directory!r} does not exist."
        if not args.plot.lower().endswith(".png"):
            return f"--plot {args.plot!r}: the plot is a PNG, name it *.png."
    if args.requests is None:
        if missing_for_check:
            return missing_for_check.replace("check needs", "bench generates requests as check does; it needs") + (
                " Or give --requests FILE."
            )
    elif not os.path.isfile(args.requests):
        return f"--requests {args.requests!r} is not a file."
    try:
        uvicorn_description()
    except BenchError as exc:
        return str(exc)
    return ""


def run(args: argparse.Namespace, app: Any) -> int:
    options = BenchOptions(
        target=args.app,
        app_dir=os.path.abspath(args.app_dir),
        factory=args.factory,
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        client=args.client,
        requests_file=args.requests,
        max_examples=args.max_examples,
        seed=args.seed,
        tier=args.tier,
        pin=not args.no_pin,
    )
    try:
        skipped: list[str] = []
        if options.requests_file is not None:
            operations = operations_from_file(options.requests_file)
        else:
            operations, skipped = operations_from_schema(app, max_examples=options.max_examples, seed=options.seed)
        if not operations:
            raise BenchError("no operation to measure: the schema gave no request (see --requests).")
        operations = with_tiers(operations, app)
        report = run_bench(options, operations, skipped, ProgressBar(sys.stderr))
    except BenchError as exc:
        return _fail(str(exc))
    print(table(report))
    if not args.no_plot:
        plot(report, args.plot)
        print(f"\nplot: {args.plot}")
    return 0
