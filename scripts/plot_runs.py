"""Learning curves from TensorBoard runs: `qapprox plot RUN_DIRS… [--tag T …] [--out PNG]`.

Runs are grouped by their name without the seed and time (runs/<env>__<name>__<seed>__<time>);
each group is drawn as the mean over its seeds with a min–max band, on a common step grid: the steps
logged inside every run's range, at most --points of them (qapprox.dqn.analysis.align; runs that share
no step range are refused).
--tag may be given several times: one panel per tag. Prints, per group and tag, the number of
seeds and the final mean. Tags and run names are drawn as plain text (no $…$ mathtext).
The work is qapprox.dqn.analysis.plot_learning_curves.
"""

from __future__ import annotations

from qapprox.dqn.analysis import plot_learning_curves
from qapprox.scripts._cli import FIGURE_FORMATS, ArgumentParser, figure_path, run


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--tag", action="append", help="scalar tag (repeatable; default charts/episodic_return)")
    parser.add_argument("--out", default="learning_curves.png",
                        help=f"the figure; without a suffix .png is added (formats: {', '.join(FIGURE_FORMATS)})")
    parser.add_argument("--points", type=int, default=200, help="at most this many points of the common step grid (default 200)")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    out = figure_path("--out", args.out)  # before any run is read
    for line in plot_learning_curves(args.run_dirs, args.tag or ["charts/episodic_return"], out, args.points, args.title):
        print(line)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run(main)
