"""Benchmark: Figures 9.1–9.10 and 10.1–12.10 at the book's protocols against a plain per-run Python loop.
Writes benchmarks/figures.json.

    OMP_NUM_THREADS=1 qapprox benchmark-figures [--figures 9.1 10.2 ...] [--quick]

Each figure is timed as its script makes it (the batched runs); the loop (semi_gradient.n_step_td_loop on the
walk, a one-run SARSA loop on gymnasium's MountainCar-v0) is timed on --loop-runs runs, checked against the
batched learner on the same episodes or seeds, and extrapolated by time steps. --quick uses the figures'
minute-long defaults instead. The machinery is qapprox.dqn.benchmark.figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qapprox.dqn.benchmark.figures import FIGURES, figures_benchmark
from qapprox.scripts._cli import ArgumentParser, check_output_path, recorded_command, run


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES), help="a subset of the figures")
    parser.add_argument("--loop-runs", type=int, default=4, help="runs (rows) the loop baseline is timed on")
    parser.add_argument("--quick", action="store_true", help="the figures' default protocols (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/figures.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.loop_runs < 1:
        parser.error(f"--loop-runs must be ≥ 1, got {args.loop_runs}")
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # as report.write would, but before the work
    except OSError as exc:
        raise ValueError(f"--out {args.out}: cannot make its folder ({exc.strerror or exc})") from None
    out = check_output_path("--out", args.out)
    result = figures_benchmark(out, recorded_command(parser.prog, "bench_figures", argv), args.figures,
                               args.loop_runs, args.quick, args.seed)
    for figure, r in result["figures"].items():
        print(f"Figure {figure} ({r['protocol_name']} protocol): batched {r['batched_seconds']} s; per-run loop "
              f"{r['loop_seconds_measured']} s measured → {r['loop_seconds_extrapolated']} s extrapolated, "
              f"speed-up ×{r['speedup']}"
              + (f" (learning alone ×{r['learning_speedup']})" if "learning_speedup" in r else "")
              + f"; results agree: {r['results_agree']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
