"""Minimising a cost J(w) = (1/m) Σ_i L^(i)(w) by gradient descent, stochastic or on mini-batches.

One routine, one parameter — the batch size s:

    w := w − α ∇ (1/s) Σ_{i in batch} L^(i)(w)

    s = m       gradient descent (GD): the whole set each update
    s = 1       stochastic gradient descent (SGD): one observation, J(w) ≈ L^(i)(w)
    1 < s < m   mini-batch gradient descent

An epoch visits every observation once, in a fresh random order when `shuffle` is on; when s
does not divide m the last batch of an epoch is smaller. The weights after every update and the
costs are returned as a Path, for plotting (approximators/gd_paths.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qapprox.approximators import losses
from qapprox.envs.validation import check_float, check_int, check_seed, is_int

Objective = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray]]
"""(w, x, y) → (J, ∇J) on the rows of x, y given, e.g. partial(MLP(...).cost_and_gradient, loss=...)."""


@dataclass(frozen=True)
class GDConfig:
    """alpha: learning rate α > 0; batch_size: s (None = the whole set, GD); epochs: passes over the data."""

    alpha: float = 0.1
    batch_size: int | None = None
    epochs: int = 100
    shuffle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            check_float("alpha", self.alpha, 0.0, low_open=True)
        except ValueError:
            raise ValueError(f"alpha={self.alpha!r} is not a positive learning rate; allowed: alpha > 0") from None
        if not (self.batch_size is None or (is_int(self.batch_size) and self.batch_size >= 1)):
            raise ValueError(f"batch_size={self.batch_size!r} must be an integer in 1..m (1: SGD, m: GD)")
        check_int("epochs", self.epochs, 1)
        check_seed("seed", self.seed)

    def updates(self, m: int) -> int:
        """Updates in the whole run on m observations: epochs × ⌈m / s⌉."""
        s = m if self.batch_size is None else int(self.batch_size)
        return self.epochs * -(-m // s)

    def path_bytes(self, m: int, d: int) -> float:
        """Peak memory of gradient_descent on m observations of a d-weight model: the Path keeps w after
        every update in a list (a small array each, about 200 B) and stacks it at the end, with each
        update's batch cost; each update copies its batch of x and y, each epoch evaluates all m."""
        s = m if self.batch_size is None else int(self.batch_size)
        try:
            return float(self.updates(m) * (208 + 16 * d) + 24 * (s + m) * (d + 1))
        except OverflowError:  # counts of 10**400 from a command line
            return math.inf


@dataclass(frozen=True)
class Path:
    """w: (updates + 1, d), the weights before the first update and after each one;
    batch_cost: (updates,), the cost on each update's batch, before the update;
    cost: (epochs + 1,), J(w) on the whole set before training and after each epoch."""

    w: np.ndarray
    batch_cost: np.ndarray
    cost: np.ndarray


def gradient_descent(
    objective: Objective, w0: np.ndarray, x: np.ndarray, y: np.ndarray, config: GDConfig = GDConfig()
) -> Path:
    """GD, SGD or mini-batch GD (by config.batch_size) on the observations (x^(i), y^(i)), rows of x and y."""
    w = np.array(w0, dtype=np.float64)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"w0 has shape {w.shape}; expected a flat vector (d,)")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x {x.shape} and y {y.shape} must hold the same number m ≥ 1 of observations as rows")
    m = x.shape[0]
    s = m if config.batch_size is None else int(config.batch_size)
    if s > m:
        raise ValueError(f"batch_size={s} is larger than the data set; allowed: 1..{m}")
    J, grad = objective(w, x, y)
    if np.shape(grad) != w.shape:
        raise ValueError(f"the objective's gradient has shape {np.shape(grad)}; w has shape {w.shape}")
    rng = np.random.default_rng(config.seed)
    path_w, batch_cost, cost = [w], [], [J]
    for _ in range(config.epochs):
        order = rng.permutation(m) if config.shuffle else np.arange(m)
        for start in range(0, m, s):
            rows = order[start : start + s]
            J, grad = objective(w, x[rows], y[rows])
            w = w - config.alpha * grad  # w := w − α ∇J_batch(w)
            path_w.append(w)
            batch_cost.append(J)
        cost.append(objective(w, x, y)[0])
    return Path(w=np.array(path_w), batch_cost=np.array(batch_cost), cost=np.array(cost))


def linear_squared_error(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The two-weight model of the lecture's (w_1, w_2) slide: ŷ = Σ_j w_j x_j (no bias), y of shape (m, 1);
    J(w) = (1/m) Σ_i (ŷ^(i) − y^(i))² and ∇J(w) = (2/m) Σ_i (ŷ^(i) − y^(i)) x^(i)."""
    w, x = np.asarray(w, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or w.shape != (x.shape[1],):
        raise ValueError(f"x {x.shape} and w {w.shape} do not match; expected x (m, d) and w (d,)")
    J, eps = losses.cost("squared_error", x @ w[:, None], y)  # eps = ∂J/∂ŷ^(i) = (2/m)(ŷ^(i) − y^(i))
    return J, x.T @ eps[:, 0]
