"""Mountain Car with tile coding: semi-gradient SARSA, n-step SARSA, SARSA(λ), and S&B Figures 10.1, 10.2, 10.4, 12.10.

    qapprox mountain-car --runs 10 --episodes 100 --alpha 0.5/8 --json          # §10.1's semi-gradient SARSA
    qapprox mountain-car --runs 10 --episodes 50 --alpha 0.3/8 --n 8            # n-step SARSA (§10.2)
    qapprox mountain-car --runs 10 --episodes 50 --lam 0.9 --trace replacing    # SARSA(λ) (§12.7)
    qapprox mountain-car --figure 10.2 --png figure_10_2.png --json
    qapprox mountain-car --figure 12.10 --runs 100     # the book's protocol (--episodes, --alphas as the book's too)

--alpha is the book's α, per tiling: each of the --tilings active weights moves by α times the error (α = 0.5/8
moves q̂(S, A) half way to its target); it takes a number or a fraction such as 0.5/8. The task has no time limit
(the book's); --time-limit T cuts episodes at T steps as gymnasium's MountainCar-v0 does (T = 200). ε = 0 and
w = 0: the optimistic start explores. With --json one object whose steps_per_episode is the list of the E means
over the runs. --figure runs the figure's defaults (DEFAULTS in approximators.mountain_car_figures: a minute or so
on two cores; --runs, --episodes, --alphas (the x axis, α·8 values) and --values (n or λ) override them, the book's
are BOOK there) and writes its PNG (--png, default figure_<number>.png); --json prints its numbers.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from qapprox.approximators.mountain_car_figures import BOOK, FIGURES, draw, figure_data
from qapprox.approximators.tile_control import control, mountain_car_coder
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, check_run_dir, figure_path, run
from qapprox.envs.validation import check_choice, check_float


def step_size(text: str) -> float:
    """argparse type: a finite number > 0, or a fraction a/b of two."""
    try:
        top, _, bottom = text.partition("/")
        return check_float("alpha", float(top) / float(bottom or 1), 0.0, low_open=True)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a step size > 0 (a number or a fraction like 0.5/8)") from None


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="independent runs (default 10; a figure's own)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default 100; a figure's own)")
    parser.add_argument("--alpha", type=step_size, default=0.5 / 8, help="the book's α per tiling (default 0.5/8)")
    parser.add_argument("--tilings", type=int, default=8, help="tilings of 8 × 8 tiles (default 8)")
    method = parser.add_mutually_exclusive_group()
    method.add_argument("--n", type=int, default=None, help="n-step SARSA (default n = 1, §10.1's SARSA)")
    method.add_argument("--lam", type=float, default=None, help="SARSA(λ) with this λ ∈ [0, 1]")
    parser.add_argument("--trace", default="replacing", help="SARSA(λ)'s trace: replacing | accumulating")
    parser.add_argument("--seed", type=int, default=0, help="run r is seeded with seed + r")
    parser.add_argument("--time-limit", type=int, default=None, help="cut episodes at T steps (default: none)")
    parser.add_argument("--logdir", default=None, help="TensorBoard root (default: no logging)")
    parser.add_argument("--figure", default=None, help=f"draw one of S&B's figures: {', '.join(FIGURES)}")
    parser.add_argument("--alphas", type=float, nargs="+", default=None, help="a figure's α·8 values (its x axis)")
    parser.add_argument("--values", type=float, nargs="+", default=None, help="Figure 10.4's n or 12.10's λ values")
    parser.add_argument("--png", default=None, help="the figure's file (default figure_<number>.png)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.figure is not None:
        return draw_figure(args)
    check_choice("trace", args.trace, ("replacing", "accumulating"))
    coder = mountain_car_coder(tilings=args.tilings)
    runs, episodes = 10 if args.runs is None else args.runs, 100 if args.episodes is None else args.episodes
    name = "sarsa" if args.lam is None else f"sarsa_lambda-{args.trace}"
    log_dir = None if args.logdir is None else check_run_dir(
        "--logdir", make_run_dir(args.logdir, "MountainCar-v0", name, args.seed))
    png = figure_path("--png", args.png) if args.png else None
    result = control(episodes, runs=runs, alpha=args.alpha, n=args.n, lam=args.lam, trace=args.trace, coder=coder,
                     seed=args.seed, max_episode_steps=args.time_limit, log_dir=log_dir)
    curve = result.mean_steps[0]
    if png is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        ax.plot(np.arange(1, episodes + 1), curve)
        ax.set(yscale="log", xlabel="Episode", ylabel=f"steps per episode (mean of {runs} runs)", title=name)
        fig.savefig(png)
    method = {"method": "sarsa", "n": args.n or 1} if args.lam is None else {
        "method": "sarsa-lambda", "lam": args.lam, "trace": args.trace}
    if args.json:
        print(json.dumps({**method, "alpha": args.alpha, "tilings": args.tilings, "runs": runs, "episodes": episodes,
                          "seed": args.seed, "time_limit": args.time_limit, "seconds": round(result.seconds, 3),
                          "steps_per_episode": curve.tolist()}))
        return 0
    print(f"{method} α = {args.alpha * args.tilings:g}/{args.tilings}, {args.tilings} tilings: "
          f"{runs} runs × {episodes} episodes in {result.seconds:.1f} s")
    print("episode   mean steps (over runs)")
    for e in sorted({0, 1, 2, 4, 9, 19, 49, 99, 199, 499, 999, episodes - 1}):
        if e < episodes:
            print(f"{e + 1:>7}   {curve[e]:10.1f}")
    for what, path in (("figure", png), ("TensorBoard", log_dir)):
        if path is not None:
            print(f"{what}: {path}")
    return 0


def draw_figure(args: argparse.Namespace) -> int:
    number = check_choice("figure", args.figure, FIGURES)
    png = figure_path("--png", args.png or f"figure_{number.replace('.', '_')}.png")
    data = figure_data(number, args.runs, args.episodes, args.seed, args.alphas, args.values)
    draw(data).savefig(png, dpi=110)
    if args.json:
        print(json.dumps({**data.to_json(), "png": str(png)}))
        return 0
    print(f"Figure {number}: {data.runs} runs × {data.episodes} episodes, α·8 ∈ {list(data.alphas8)}"
          + (f", {'n' if number == '10.4' else 'λ'} ∈ {list(data.second)}" if data.second else "")
          + f", seed {data.seed}: {data.seconds:.1f} s (the book's: {BOOK[number]['runs']} runs × "
          f"{BOOK[number]['episodes']} episodes)")
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    run(main)
