"""``python -m bench``: run the benchmark and write ``bench/results/results.{json,md,png}``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.options import BenchOptions, parse_options
from bench.report import render
from bench.results import BenchResults
from bench.runner import BenchError, run


def write_outputs(results: BenchResults, options: BenchOptions) -> str:
    """Write results.json, results.md and (unless disabled) results.png; return the markdown."""
    out = options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    results.write(out / "results.json")
    markdown = render(results)
    (out / "results.md").write_text(markdown)
    if options.plot:
        from bench.plot import plot

        plot(results, out / "results.png")
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        results = run(options)
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    markdown = write_outputs(results, options)
    if options.print_markdown:
        print("\n" + markdown)
    print(f"written to {options.output_dir}/ in {results.meta['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
