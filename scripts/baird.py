"""Baird's counterexample: off-policy divergence and its fixes (semi-gradient TD/DP, TDC, GTD2, emphatic TD).

One method from the book's w_0 for N steps (sampled) or sweeps (expected), at the book's step sizes unless
--alpha/--beta say otherwise: a table of ‖w‖, √VE and √PBE, or with --json one object whose "w" holds
the weights after each step or sweep (N lists; the mean over --runs for sampled methods) and "rmsve",
"rmspbe" their errors (N numbers; null where w diverged to inf/nan). --figure draws Sutton & Barto's
Figure 11.2, 11.5 or 11.6 at the book's step sizes. The work is approximators.baird_figures.

    qapprox baird --method semi-gradient-dp --steps 1000 --json
    qapprox baird --figure 11.5 --png tdc.png
"""

from __future__ import annotations

import json

import numpy as np

from qapprox.approximators.baird_figures import FIGURES, METHODS, baird_run, book_figure, check_run, figure
from qapprox.approximators.td_prediction import finite_or_none
from qapprox.scripts._cli import ArgumentParser, figure_path, finite_float, run


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=METHODS, help="the algorithm to run")
    parser.add_argument("--figure", choices=tuple(FIGURES), help="draw this figure of the book to --png")
    parser.add_argument("--steps", type=int, default=1000, help="steps (sampled) or sweeps (expected)")
    parser.add_argument("--alpha", type=finite_float, help="step size α of w (default: the book's)")
    parser.add_argument("--beta", type=finite_float, help="step size β of v, TDC and GTD2 only (default: the book's)")
    parser.add_argument("--runs", type=int, help="independent sampled runs, averaged (default 1)")
    parser.add_argument("--seed", type=int, help="seed of the sampled runs (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--png", help="where to draw the run or the figure (default baird_figure_11_N.png)")
    args = parser.parse_args(argv)
    if (args.method is None) == (args.figure is None):
        raise ValueError("give one of --method METHOD or --figure 11.2|11.5|11.6")
    if args.figure is not None:
        for flag in ("alpha", "beta", "json"):
            if getattr(args, flag) not in (None, False):
                raise ValueError(f"--figure draws the book's figure at its step sizes; --{flag} is for --method")
        png = figure_path("--png", args.png or f"baird_figure_{args.figure.replace('.', '_')}.png")
        book_figure(args.figure, args.steps, args.runs, args.seed).savefig(png, dpi=110)
        print(f"figure: {png}")
        return 0

    check_run(args.method, args.steps, args.alpha, args.beta, args.runs, args.seed)  # before the output path
    png = figure_path("--png", args.png) if args.png else None
    result = baird_run(args.method, args.steps, alpha=args.alpha, beta=args.beta, runs=args.runs, seed=args.seed)
    if png is not None:
        figure([result]).savefig(png, dpi=110)
    if args.json:
        print(json.dumps({
            "method": result.method, "unit": result.unit, "steps": args.steps, "alpha": result.alpha,
            "beta": result.beta, "runs": result.runs, "seed": result.seed, "w0": result.w[0].tolist(),
            "w": finite_or_none(result.w[1:]), "rmsve": finite_or_none(result.rmsve[1:]),
            "rmspbe": finite_or_none(result.rmspbe[1:]), "png": None if png is None else str(png),
        }, allow_nan=False))
        return 0
    sampling = "" if result.runs is None else (f", one run (seed {result.seed})" if result.runs == 1
                                            else f", {result.runs} runs from seed {result.seed}, w their mean")
    print(f"{result.method}: α = {result.alpha:g}" + ("" if result.beta is None else f", β = {result.beta:g}")
          + f", {args.steps} {result.unit}s{sampling}")
    print(f"{result.unit:>8}{'‖w‖':>12}{'√VE':>12}{'√PBE':>12}")
    with np.errstate(over="ignore", invalid="ignore"):  # ‖w‖ of what diverged is inf
        for k in sorted({round(args.steps * f) for f in np.linspace(0, 1, 6)}):
            print(f"{k:>8}{np.linalg.norm(result.w[k]):>12.4g}{result.rmsve[k]:>12.4g}{result.rmspbe[k]:>12.4g}")
    print(f"w after {args.steps} {result.unit}s: " + " ".join(f"{x:.4g}" for x in result.w[-1]))
    if png is not None:
        print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    run(main)
