"""TD(λ) prediction on a finite MDP, scored like S&B Figure 12.3: RMS error against the DP-exact v_π.

    qapprox td-lambda --env random-walk-19 --trace accumulating --lam 0.8 --alpha 0.4 \\
        --episodes 10 --runs 100 --seed 0 --json
    qapprox td-lambda --sweep --trace true-online        # all λ × α in one batch, and a PNG

Weights start at 0, episodes follow the uniform random policy, γ is the environment's (1 for the
random walks). After each episode the RMS error over the non-terminal states is logged to
TensorBoard (tag `rms_error`, mean over runs); `rms_error` in the JSON is that error averaged over
the episodes and the runs. Every run sees its own episodes; in a sweep every (λ, α) sees the same ones.
The work and the log are approximators.td_prediction.td_prediction; this front checks the flags and paths, and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from qapprox.approximators.td_prediction import ALPHAS, LAMS, check_settings, finite_or_none, td_prediction
from qapprox.envs import make_mdp
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, add_output_flags, check_run_dir, figure_path, finite_float, run, set_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="random-walk-19", help="random-walk-N, random-walk-1000 or quiz9")
    parser.add_argument("--trace", default="accumulating",
                        help="accumulating | replacing | dutch | true-online | offline-lambda-return")
    parser.add_argument("--offline", action="store_true",
                        help="offline TD(λ): sum each episode's increments, apply them at its end")
    parser.add_argument("--lam", type=finite_float, default=0.8, help="trace decay λ ∈ [0, 1]")
    parser.add_argument("--alpha", type=finite_float, default=0.4, help="step size α > 0, finite")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="0 ≤ seed < 2**32")
    parser.add_argument("--sweep", action="store_true", help="every λ in --lams with every α in --alphas")
    parser.add_argument("--lams", type=finite_float, nargs="+", default=list(LAMS))
    parser.add_argument("--alphas", type=finite_float, nargs="+", default=list(ALPHAS))
    parser.add_argument("--png", default=None,
                        help="sweep figure (default: sweep.png in the run directory; no suffix: .png is added)")
    add_output_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lams, alphas = (args.lams, args.alphas) if args.sweep else ([args.lam], [args.alpha])
    check_settings(args.trace, lams, alphas, args.runs, args.episodes, args.seed, args.offline)
    mdp = make_mdp(args.env)
    name = f"{args.trace}{'-offline' if args.offline else ''}"
    threads = set_threads(args.threads)                       # torch is used only for TensorBoard here
    png = figure_path("--png", args.png) if args.sweep and args.png else None
    log_dir = check_run_dir("--logdir", make_run_dir(
        args.logdir, args.env, f"td_lambda-{name}{'-sweep' if args.sweep else ''}", args.seed))
    if args.sweep:
        png = png or log_dir / "sweep.png"                    # the sweep's figure, beside its log by default
    start = time.perf_counter()

    def progress(e: int, w: np.ndarray) -> None:
        if args.sweep:
            print(f"episode {e + 1}/{args.episodes}: {len(lams) * len(alphas)} (λ, α) × {args.runs} runs, "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr)

    if not args.json:
        print(f"threads: {threads}")
    title = f"{name} TD(λ), {args.env}: {args.runs} runs × {args.episodes} episodes"
    result = td_prediction(mdp, args.trace, lams, alphas, args.runs, args.episodes, args.seed, args.offline, progress,
                           log_dir=log_dir, png=png, title=title)
    per_episode, average = result.per_episode, result.average

    common = {"env": args.env, "trace": args.trace, "offline": args.offline, "gamma": mdp.gamma,
              "episodes": args.episodes, "runs": args.runs, "seed": args.seed, "seconds": round(result.seconds, 3)}
    if args.json:
        if args.sweep:
            print(json.dumps({**common, "lams": lams, "alphas": alphas, "rms_error": finite_or_none(average)}))
        else:
            print(json.dumps({**common, "lam": args.lam, "alpha": args.alpha, "rms_error": finite_or_none(average)[0][0],
                              "rms_error_per_episode": finite_or_none(per_episode[:, 0])}))
        return 0
    print(f"{name} TD(λ) on {args.env} (γ={mdp.gamma:g}): {args.runs} runs × {args.episodes} episodes, "
          f"{len(lams) * len(alphas)} (λ, α) in {result.seconds:.2f} s")
    if args.sweep:
        print("average RMS error (rows λ, columns α; >10: diverging):")
        print("   λ \\ α " + "".join(f"{a:>8g}" for a in alphas))
        for lam, row in zip(lams, average):
            print(f"{lam:>8g} " + "".join(f"{r:8.3f}" if r < 10 else f"{'>10':>8}" for r in row))
        print(f"figure: {png}")
    else:
        print("RMS error after each episode (mean over runs): " + " ".join(f"{r:.3f}" for r in per_episode[:, 0]))
        diverged = "" if np.isfinite(average[0, 0]) else f" (diverged: α={args.alpha:g} is too large)"
        print(f"average RMS error over episodes and runs: {average[0, 0]:.4f}{diverged}")
    print(f"TensorBoard: tensorboard --logdir {args.logdir}   ({log_dir})")
    return 0


if __name__ == "__main__":
    run(main)
