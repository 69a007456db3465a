"""Sutton & Barto's Figures 9.1, 9.2, 9.5 and 9.10: gradient MC and n-step TD on the 1000-state walk, as PNG + JSON.

9.1: gradient MC with 10 groups of 100 states, v̂ against v_π, v̂(w_MC) and μ. 9.2: semi-gradient TD(0) with the
same groups (left), and n-step TD with 20 groups, RMS error over the first 10 episodes against α for n = 1..512
(right). 9.5: gradient MC with polynomial and Fourier bases of order 5, 10, 20, √VE against episodes. 9.10:
gradient MC with 1 tiling and with 50 tilings of tiles 200 states wide (offset by 4 states), √VE. States sit at
positions 1..1000 on [0.5, 1000.5], as in `qapprox fixed-points`. The work is approximators.prediction_figures.

Defaults finish in about a minute on 2 cores; --book runs the book's protocol (each flag given still wins):
  9.1   default 20,000 episodes, α = 1e-4     book: 100,000 episodes, α = 2e-5 (one run)
  9.2   default left 20,000 episodes, α = 1e-3, right 100 runs   book: left 100,000 episodes, α = 2e-4
        (--episodes and --alpha are the left panel's; --runs the right panel's, 10 episodes each)
  9.5   default 10 runs of 5,000 episodes   book: 30 runs; α = 1e-4 (polynomial), 5e-5 (Fourier)
  9.10  default 10 runs of 5,000 episodes   book: 30 runs; α = 1e-4 / tilings

    qapprox walk-figures --figure 9.1 --png figure_9_1.png
    qapprox walk-figures --figure 9.10 --book --json
"""

from __future__ import annotations

import argparse
import json
import time

from qapprox.approximators import prediction_figures as pf
from qapprox.approximators.prediction_figures import BOOK, DEFAULT, FIGURES
from qapprox.envs.validation import check_float, check_int, check_seed
from qapprox.scripts._cli import ArgumentParser, figure_path, finite_float, run

def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figure", required=True, choices=FIGURES, help="which figure of the book")
    parser.add_argument("--book", action="store_true", help="the book's protocol (the table below)")
    parser.add_argument("--runs", type=int, help="independent runs (9.2: the right panel's; not for 9.1)")
    parser.add_argument("--episodes", type=int, help="episodes per run (9.2: the left panel's)")
    parser.add_argument("--alpha", type=finite_float, help="step size α, 9.1 and 9.2's left panel only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled episodes (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the plotted numbers")
    parser.add_argument("--png", help="where to draw the figure (default walk_figure_9_N.png)")
    args = parser.parse_args(argv)
    settings = {**(BOOK if args.book else DEFAULT)[args.figure],
                **{k: v for k in ("runs", "episodes", "alpha") if (v := getattr(args, k)) is not None}}
    if args.figure == "9.1" and "runs" in settings:
        raise ValueError("--runs is not for --figure 9.1: the book's Figure 9.1 is one run")
    if args.figure in ("9.5", "9.10") and "alpha" in settings:
        raise ValueError(f"--alpha is not for --figure {args.figure}: it uses the book's α of each basis")
    episodes = check_int("--episodes", settings["episodes"], 1)
    runs = check_int("--runs", settings["runs"], 1) if "runs" in settings else None
    alpha = check_float("--alpha", settings["alpha"], 0.0, low_open=True) if "alpha" in settings else None
    seed = check_seed("--seed", args.seed)
    png = figure_path("--png", args.png or f"walk_figure_{args.figure.replace('.', '_')}.png")
    if not args.json:
        print(f"Figure {args.figure} ({'the book' if args.book else 'default'} protocol): "
              + ", ".join(f"{k} = {v:,}" if isinstance(v, int) else f"{k} = {v:g}" for k, v in settings.items())
              + f", seed {seed}", flush=True)
    start = time.perf_counter()
    result = pf.figure_numbers(args.figure, runs=runs, episodes=episodes, alpha=alpha, seed=seed)
    seconds = time.perf_counter() - start
    pf.draw(args.figure, result).savefig(png, dpi=110)
    if args.json:
        print(json.dumps({"figure": args.figure, "protocol": "book" if args.book else "default", **settings,
                          "seed": seed, "seconds": seconds, "png": str(png), "numbers": result}, allow_nan=False))
        return 0
    print(f"done in {seconds:.1f} s; figure: {png}")
    return 0


if __name__ == "__main__":
    run(main)
