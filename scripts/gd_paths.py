"""GD vs SGD vs mini-batch GD on a two-weight model: their paths in the (w_1, w_2) plane.

    y = w_1 x_1 + w_2 x_2 + noise  (a fixed synthetic data set, correlated x_1, x_2)
    J(w) = (1/m) Σ_i (w_1 x_1^(i) + w_2 x_2^(i) − y^(i))²
    w := w − α ∇ (1/s) Σ_{i in batch} L^(i)(w)      s = m (GD), 1 (SGD), 1 < s < m (mini-batch)

Writes the paths over the contours of J and J per epoch as a PNG (default <logdir>/gd_paths.png)
and logs J(w) on the whole set after each epoch to TensorBoard: cost/gd, cost/sgd, cost/minibatch.
The work and the log are approximators.gd_paths.gd_paths; this front checks the flags and paths, and prints.

    python -m scripts.gd_paths
    python -m scripts.gd_paths --alpha 0.05 --epochs 40 --batch-size 20 --logdir runs
"""

from __future__ import annotations

from pathlib import Path

from qapprox.approximators.gd_paths import CORRELATION, W_START, W_TRUE, check_settings, figure, gd_paths
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, check_run_dir, figure_path, finite_float, run, set_threads


def number(value: float) -> str:
    """4 decimals, or 3 significant digits for what has run away (1e+120, inf, nan)."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=100, help="observations in the data set")
    parser.add_argument("--noise", type=finite_float, default=0.3, help="standard deviation of the noise on y")
    parser.add_argument("--alpha", type=finite_float, default=0.05, help="learning rate α, the same for all three")
    parser.add_argument("--epochs", type=int, default=100, help="passes over the data, the same for all three")
    parser.add_argument("--batch-size", type=int, default=10, help="s of mini-batch GD, 1 < s < m")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data set and the shuffling, 0 ≤ seed < 2**32")
    parser.add_argument("--logdir", default="runs", help="TensorBoard runs go under here")
    parser.add_argument("--png", default=None,
                        help="where to write the figure (default <logdir>/gd_paths.png; no suffix: .png is added)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (TensorBoard writer only)")
    args = parser.parse_args(argv)
    settings = dict(m=args.m, noise=args.noise, alpha=args.alpha, epochs=args.epochs, batch_size=args.batch_size,
                    seed=args.seed)
    check_settings(**settings)  # before the output paths; gd_paths checks the memory, then works
    threads = set_threads(args.threads)
    logdir = check_run_dir("--logdir", make_run_dir(args.logdir, "linear2d", "gd_paths", args.seed))
    png = figure_path("--png", args.png) if args.png else Path(args.logdir, "gd_paths.png")  # beside the run, checked above
    result = gd_paths(**settings, log_dir=logdir)
    print(f"threads: {threads}")
    print(f"data: m={args.m}, y = {W_TRUE[0]:g} x_1 + {W_TRUE[1]:g} x_2 + N(0, {args.noise:g}²), "
          f"corr(x_1, x_2) = {CORRELATION}")
    print(f"least squares: w* = ({result.w_star[0]:.4f}, {result.w_star[1]:.4f}), J(w*) = {result.J_star:.4f}")
    print(f"start w = ({W_START[0]:g}, {W_START[1]:g}), α = {args.alpha:g}, {args.epochs} epochs")
    print(f"{'method':<10}{'s':>6}{'updates':>9}   {'w after':<20}{'J(w)':>8}")

    for name, path in result.paths.items():
        w = f"({number(path.w[-1, 0])}, {number(path.w[-1, 1])})"
        end = f"{number(path.cost[-1]):>8}" + ("  diverged: α too large for this s" if result.diverged(name) else "")
        print(f"{name:<10}{result.sizes[name]:>6}{len(path.w) - 1:>9}   {w:<20}{end}")

    figure(result).savefig(png, dpi=110)
    print(f"TensorBoard: {logdir} (tags cost/gd, cost/sgd, cost/minibatch)")
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    run(main)
