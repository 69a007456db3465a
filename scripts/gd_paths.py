"""GD vs SGD vs mini-batch GD on a two-weight model: their paths in the (w_1, w_2) plane.

    y = w_1 x_1 + w_2 x_2 + noise  (a fixed synthetic data set, correlated x_1, x_2)
    J(w) = (1/m) Σ_i (w_1 x_1^(i) + w_2 x_2^(i) − y^(i))²
    w := w − α ∇ (1/s) Σ_{i in batch} L^(i)(w)      s = m (GD), 1 (SGD), 1 < s < m (mini-batch)

Writes the paths over the contours of J and J per epoch as a PNG (default <logdir>/gd_paths.png)
and logs J(w) on the whole set after each epoch to TensorBoard: cost/gd, cost/sgd, cost/minibatch.

    python -m scripts.gd_paths
    python -m scripts.gd_paths --alpha 0.05 --epochs 40 --batch-size 20 --logdir runs
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.approximators.linear import check_seed
from qapprox.approximators.optim import GDConfig, Path as GDPath, gradient_descent, linear_squared_error
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, check_run_dir, figure_path, finite_float, run, set_threads

W_TRUE = (1.0, 2.0)
W_START = (-1.5, 3.5)
CORRELATION = 0.6  # between x_1 and x_2: the contours of J are tilted ellipses
DRAWN = 1e100  # the largest noise, and weights drawn: y ≈ noise, J ≈ noise², float64 ends at 1.8e308
DATA_BYTES = 96  # per observation: x (16 B), y (8 B) and multivariate_normal's temporaries
PLOT_BYTES = 64  # per update drawn: the stacked paths and matplotlib's copy of each line


def synthetic_data(m: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x^(i) ~ N(0, [[1, ρ], [ρ, 1]]), y^(i) = w_true · x^(i) + N(0, noise²); y of shape (m, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0.0, 0.0], [[1.0, CORRELATION], [CORRELATION, 1.0]], size=m)
    y = x @ np.array(W_TRUE)[:, None] + noise * rng.normal(size=(m, 1))
    return x, y


def batch_sizes(m: int, batch_size: int) -> dict[str, int]:
    """s for each method: the whole set, one observation, a mini-batch 1 < s < m."""
    if not 1 < batch_size < m:
        raise ValueError(f"batch_size={batch_size} is not a mini-batch; allowed: 2..{m - 1} (1 is SGD, m={m} is GD)")
    return {"gd": m, "sgd": 1, "minibatch": batch_size}


def memory_bytes(sizes: dict[str, int], m: int, epochs: int) -> float:
    """Peak memory of the data, the three paths (GDConfig.path_bytes) and their figure."""
    paths = [GDConfig(batch_size=s, epochs=epochs) for s in sizes.values()]
    return DATA_BYTES * float(m) + sum(c.path_bytes(m, len(W_START)) + PLOT_BYTES * float(c.updates(m)) for c in paths)


def compare(
    x: np.ndarray, y: np.ndarray, sizes: dict[str, int], alpha: float, epochs: int, seed: int
) -> dict[str, GDPath]:
    """The paths from W_START, one per batch size, with the same α and number of epochs (a path that
    diverges becomes inf/nan without warnings; main reports it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            name: gradient_descent(linear_squared_error, np.array(W_START), x, y, GDConfig(alpha, s, epochs, seed=seed))
            for name, s in sizes.items()
        }


def plot(paths: dict[str, GDPath], x: np.ndarray, y: np.ndarray, w_star: np.ndarray, png: Path) -> None:
    """Left: the paths over the contours of J(w_1, w_2). Right: J on the whole set per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = np.vstack([p.w for p in paths.values()] + [w_star[None]])
    every = every[(np.abs(every) < DRAWN).all(axis=1)]  # not what diverged: J of that overflows
    low, high = every.min(0), every.max(0)
    margin = 0.15 * (high - low)
    w1 = np.linspace(low[0] - margin[0], high[0] + margin[0], 120)
    w2 = np.linspace(low[1] - margin[1], high[1] + margin[1], 120)
    J = np.array([[linear_squared_error(np.array([a, b]), x, y)[0] for a in w1] for b in w2])
    J_star = linear_squared_error(w_star, x, y)[0]
    span = J.max() - J_star  # contours at J* + geometric steps, if they are distinct numbers at J*'s size
    levels = np.unique(J_star + np.geomspace(min(1e-3, span / 1e3), span, 16)) if span > 0 else []

    styles = {  # label, colour, line width (wider lines drawn on top)
        "gd": ("GD", "tab:blue", 2.0),
        "sgd": ("SGD", "tab:red", 0.6),
        "minibatch": ("mini-batch GD", "tab:green", 1.2),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    left.contour(w1, w2, J, levels=levels if len(levels) > 1 else None, cmap="Greys_r", linewidths=0.7)
    for name, path in paths.items():
        label, color, width = styles[name]
        w = np.where(np.abs(path.w) < DRAWN, path.w, np.nan)  # a diverged path is drawn until it leaves
        left.plot(w[:, 0], w[:, 1], color=color, lw=width, alpha=0.85, zorder=width,
                  label=f"{label} ({len(path.w) - 1} updates)")
        right.plot(np.where(path.cost < DRAWN**2, path.cost, np.nan), color=color, lw=1.5, label=label)
    left.plot(*W_START, "ko", label="start")
    left.plot(*w_star, "k*", markersize=14, label="least squares w*")
    left.set(xlabel="$w_1$", ylabel="$w_2$", title="paths in the $(w_1, w_2)$ plane over the contours of $J(w)$")
    left.legend(loc="best", fontsize=8)
    right.set(xlabel="epoch", ylabel="$J(w)$ on the whole set", yscale="log", title="cost per epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


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
    if args.m < 3:
        raise ValueError(f"m={args.m} is too small; allowed: m ≥ 3 (mini-batches need 1 < s < m)")
    if not args.noise >= 0:
        raise ValueError(f"noise={args.noise} is negative; allowed: noise ≥ 0")
    if args.noise > DRAWN:
        raise ValueError(f"noise={args.noise:g} is too large: J(w) = (1/m) Σ (ŷ − y)² overflows float64; "
                         f"allowed: 0 ≤ noise ≤ {DRAWN:g}")
    sizes = batch_sizes(args.m, args.batch_size)
    GDConfig(args.alpha, args.batch_size, args.epochs, seed=check_seed("seed", args.seed))  # α and epochs, before any work
    threads = set_threads(args.threads)
    logdir = check_run_dir("--logdir", make_run_dir(args.logdir, "linear2d", "gd_paths", args.seed))
    png = figure_path("--png", args.png) if args.png else Path(args.logdir, "gd_paths.png")  # beside the run, checked above
    check_memory(f"gradient descent on m={args.m:,} observations for {args.epochs:,} epochs "
                 f"(s = {', '.join(map(str, sizes.values()))})", memory_bytes(sizes, args.m, args.epochs))
    print(f"threads: {threads}")

    x, y = synthetic_data(args.m, args.noise, args.seed)
    paths = compare(x, y, sizes, args.alpha, args.epochs, args.seed)
    w_star = np.linalg.lstsq(x, y, rcond=None)[0][:, 0]
    J_star = linear_squared_error(w_star, x, y)[0]
    print(f"data: m={args.m}, y = {W_TRUE[0]:g} x_1 + {W_TRUE[1]:g} x_2 + N(0, {args.noise:g}²), "
          f"corr(x_1, x_2) = {CORRELATION}")
    print(f"least squares: w* = ({w_star[0]:.4f}, {w_star[1]:.4f}), J(w*) = {J_star:.4f}")
    print(f"start w = ({W_START[0]:g}, {W_START[1]:g}), α = {args.alpha:g}, {args.epochs} epochs")
    print(f"{'method':<10}{'s':>6}{'updates':>9}   {'w after':<20}{'J(w)':>8}")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    for name, path in paths.items():
        for epoch, J in enumerate(path.cost):
            writer.add_scalar(f"cost/{name}", J, epoch)
        w = f"({number(path.w[-1, 0])}, {number(path.w[-1, 1])})"
        grew = not path.cost[-1] <= path.cost[0]  # nan included
        end = f"{number(path.cost[-1]):>8}" + ("  diverged: α too large for this s" if grew else "")
        print(f"{name:<10}{sizes[name]:>6}{len(path.w) - 1:>9}   {w:<20}{end}")
    writer.close()

    plot(paths, x, y, w_star, png)
    print(f"TensorBoard: {logdir} (tags cost/gd, cost/sgd, cost/minibatch)")
    print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    run(main)
