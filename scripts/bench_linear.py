"""Benchmark: the vectorised Figure-12.3 sweep against a plain per-run Python loop, and least
squares on 10⁶ transitions. Writes benchmarks/linear.json.

    OMP_NUM_THREADS=1 qapprox benchmark-linear

The sweep is td_lambda's grid (8 λ × 10 α) × --runs × --episodes on the 19-state random walk; the loop
is timed on --loop-runs runs of every (λ, α) and extrapolated. The machinery, and the check that both
give the same RMS errors, is qapprox.dqn.benchmark.linear.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qapprox.approximators.td_prediction import ALPHAS, LAMS
from qapprox.dqn.benchmark.linear import linear_benchmark
from qapprox.scripts._cli import ArgumentParser, recorded_command, run


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--loop-runs", type=int, default=4, help="runs per (λ, α) the loop baseline is timed on")
    parser.add_argument("--transitions", type=int, default=1_000_000, help="size of the regression data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/linear.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    result = linear_benchmark(Path(args.out), recorded_command(parser.prog, "bench_linear", argv), LAMS, ALPHAS,
                              args.runs, args.episodes, args.loop_runs, args.transitions, args.seed)
    s, r = result["sweep"], result["regression"]
    print(f"sweep {s['configs']} (λ, α) × {s['runs']} runs × {s['episodes']} episodes: vectorised {s['vectorised_seconds']} s; "
          f"per-run loop {s['loop_seconds_timed']} s on {s['loop_runs_timed']} runs → {s['loop_seconds_extrapolated']} s "
          f"for {s['runs']} (extrapolated by time steps), speed-up ×{s['speedup']}; RMS errors agree to "
          f"{s['max_relative_rms_difference_loop_vs_vectorised']:.1e}")
    print(f"best: λ={s['best']['lam']:g}, α={s['best']['alpha']:g}, RMS {s['best']['rms_error']:.3f}")
    print(f"least squares on {r['transitions']:,} transitions ({r['episodes']} episodes): data {r['build_data_seconds']} s, "
          f"fit {r['lstsq_seconds']} s, RMS vs v_π {r['rms_error_vs_v_pi']:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
