"""GD vs SGD vs mini-batch GD on the lecture's two-weight model: their paths in the (w_1, w_2) plane.

    y = w_1 x_1 + w_2 x_2 + noise  (a fixed synthetic data set, correlated x_1, x_2)
    J(w) = (1/m) Σ_i (w_1 x_1^(i) + w_2 x_2^(i) − y^(i))²
    w := w − α ∇ (1/s) Σ_{i in batch} L^(i)(w)      s = m (GD), 1 (SGD), 1 < s < m (mini-batch)

    result = gd_paths(m=100, noise=0.3, alpha=0.05, epochs=100, batch_size=10, seed=0)
    result.paths["sgd"].cost          # J(w) on the whole set before training and after each epoch
    figure(result).savefig("gd_paths.png")
    gd_paths(log_dir=pathlib.Path("runs/gd"))   # and TensorBoard: J(w) per epoch of each method

All three start from W_START with the same α and the same number of epochs; the one routine is
approximators.optim.gradient_descent, its batch size the only difference. A path that diverges
becomes inf/nan without warnings; `diverged` says which.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.approximators.optim import GDConfig, Path, gradient_descent, linear_squared_error
from qapprox.envs.validation import check_seed

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
) -> dict[str, Path]:
    """The paths from W_START, one per batch size, with the same α and number of epochs (a path that
    diverges becomes inf/nan without warnings)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            name: gradient_descent(linear_squared_error, np.array(W_START), x, y, GDConfig(alpha, s, epochs, seed=seed))
            for name, s in sizes.items()
        }


def check_settings(m: int, noise: float, alpha: float, epochs: int, batch_size: int, seed: int) -> dict[str, int]:
    """The batch sizes of gd_paths(...) with these settings; a one-line ValueError, before any work, for
    m < 3, a noise outside [0, DRAWN] (beyond it J overflows float64), a batch that is not a mini-batch,
    α, epochs or a seed that GDConfig refuses, and sizes beyond free memory."""
    if m < 3:
        raise ValueError(f"m={m} is too small; allowed: m ≥ 3 (mini-batches need 1 < s < m)")
    if not noise >= 0:
        raise ValueError(f"noise={noise} is negative; allowed: noise ≥ 0")
    if noise > DRAWN:
        raise ValueError(f"noise={noise:g} is too large: J(w) = (1/m) Σ (ŷ − y)² overflows float64; "
                         f"allowed: 0 ≤ noise ≤ {DRAWN:g}")
    sizes = batch_sizes(m, batch_size)
    GDConfig(alpha, batch_size, epochs, seed=check_seed("seed", seed))
    return sizes


@dataclass(frozen=True)
class Comparison:
    """The data (x, y), the batch size s of each method, its path, and the least-squares optimum
    w* = argmin_w J(w) with J(w*)."""

    x: np.ndarray
    y: np.ndarray
    sizes: dict[str, int]
    paths: dict[str, Path]
    w_star: np.ndarray
    J_star: float

    def diverged(self, name: str) -> bool:
        """J grew over the run (nan included): α is too large for this batch size."""
        cost = self.paths[name].cost
        return not cost[-1] <= cost[0]


def gd_paths(m: int = 100, noise: float = 0.3, alpha: float = 0.05, epochs: int = 100, batch_size: int = 10,
             seed: int = 0, *, log_dir: pathlib.Path | None = None) -> Comparison:
    """GD, SGD and mini-batch GD (s = batch_size) on synthetic_data(m, noise, seed), from W_START with the
    same α and epochs; settings are checked first (check_settings), then the memory of the run. With
    log_dir, TensorBoard gets there (None: no logging) J(w) on the whole set before training and after
    each epoch, tags cost/gd, cost/sgd, cost/minibatch (step: the epoch)."""
    sizes = check_settings(m, noise, alpha, epochs, batch_size, seed)
    check_memory(f"gradient descent on m={m:,} observations for {epochs:,} epochs "
                 f"(s = {', '.join(map(str, sizes.values()))})", memory_bytes(sizes, m, epochs))
    x, y = synthetic_data(m, noise, seed)
    paths = compare(x, y, sizes, alpha, epochs, seed)
    w_star = np.linalg.lstsq(x, y, rcond=None)[0][:, 0]
    if log_dir is not None:
        _log(paths, log_dir)
    return Comparison(x, y, sizes, paths, w_star, linear_squared_error(w_star, x, y)[0])


def _log(paths: dict[str, Path], log_dir: pathlib.Path) -> None:
    """gd_paths' TensorBoard log (its docstring)."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for name, path in paths.items():
            for epoch, J in enumerate(path.cost):
                writer.add_scalar(f"cost/{name}", J, epoch)


def figure(result: Comparison):
    """Left: the paths over the contours of J(w_1, w_2). Right: J on the whole set per epoch.
    A matplotlib Figure outside pyplot (nothing to close): figure(result).savefig(path)."""
    from matplotlib.figure import Figure

    paths, x, y, w_star = result.paths, result.x, result.y, result.w_star
    every = np.vstack([p.w for p in paths.values()] + [w_star[None]])
    every = every[(np.abs(every) < DRAWN).all(axis=1)]  # not what diverged: J of that overflows
    low, high = every.min(0), every.max(0)
    margin = 0.15 * (high - low)
    w1 = np.linspace(low[0] - margin[0], high[0] + margin[0], 120)
    w2 = np.linspace(low[1] - margin[1], high[1] + margin[1], 120)
    J = np.array([[linear_squared_error(np.array([a, b]), x, y)[0] for a in w1] for b in w2])
    span = J.max() - result.J_star  # contours at J* + geometric steps, if they are distinct numbers at J*'s size
    levels = np.unique(result.J_star + np.geomspace(min(1e-3, span / 1e3), span, 16)) if span > 0 else []

    styles = {  # label, colour, line width (wider lines drawn on top)
        "gd": ("GD", "tab:blue", 2.0),
        "sgd": ("SGD", "tab:red", 0.6),
        "minibatch": ("mini-batch GD", "tab:green", 1.2),
    }
    fig = Figure(figsize=(12, 5.2))
    left, right = fig.subplots(1, 2)
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
    return fig
