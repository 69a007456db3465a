"""Neural-network regression of returns — the bridge from the linear model of Quiz 9 to DQN.

On the training set ⟨x(S_t), G_t⟩ (or ⟨x(S_t, A_t), G_t⟩) a network ŷ(x, w) built with
`approximators.networks.build` minimises the lecture's mean squared error

    J(w) = (1/m) Σ_i (ŷ(x_i, w) − G_i)²

by mini-batch gradient descent  w := w − α ∇ (1/s) Σ_{i in batch} (ŷ(x_i, w) − G_i)²  with the data
shuffled every epoch (s = m is gradient descent, s = 1 stochastic gradient descent), or by Adam.
Since E[G_t | S_t = s] = v_π(s), the fitted ŷ(x(s)) estimates v_π(s); on ⟨x(S_t, A_t), G_t⟩ it
estimates q_π(s, a). Same protocol as the linear regression of returns: fit(X, G) → self, predict(X).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from qapprox.approximators.limits import check_memory
from qapprox.approximators.networks import Dense, build, check_activation
from qapprox.envs.validation import check_choice, check_float, check_int, check_seed

OPTIMIZERS = ("sgd", "adam")
MAX_ALPHA = float(np.finfo(np.float32).max) / 10  # Adam's first step is α / (1 − β₁) = 10α, a float32 in torch


@dataclass
class NeuralRegression:
    """ŷ(x, w): Dense(h, activation) for h in hidden, then one linear output, fitted to returns G.

    hidden=() is the linear model ŷ = wᵀx + b, trained the same way.
    writer: a TensorBoard SummaryWriter; J(w) on the whole set is logged after each epoch as `tag`.
    """

    hidden: Sequence[int] = (32,)
    activation: str | None = "relu"
    optimizer: str = "adam"
    alpha: float = 0.001
    batch_size: int = 64
    epochs: int = 100
    seed: int = 0
    writer: Any = None
    tag: str = "cost/mse"
    network: nn.Module | None = field(default=None, init=False, repr=False)
    costs: list[float] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS, label="optimizer")
        check_float("alpha", self.alpha, 0.0, low_open=True)
        if self.alpha > MAX_ALPHA:
            raise ValueError(f"alpha={self.alpha:g} is too large for float32 weights; allowed: 0 < alpha ≤ {MAX_ALPHA:.3g}")
        check_int("batch_size", self.batch_size, 1)
        check_int("epochs", self.epochs, 1)
        check_activation(self.activation)
        self.hidden = tuple(self.hidden)
        for units in self.hidden:  # Dense validates each width the same way build() will
            Dense(units, self.activation)
        check_seed("seed", self.seed)

    def check_rows(self, m: int) -> None:
        """A mini-batch is at most the whole data set of m rows: one-line ValueError otherwise."""
        if self.batch_size > m:
            raise ValueError(f"batch_size={self.batch_size} is larger than the data set (m={m}); allowed: 1..{m}")

    def weights(self, d: int) -> int:
        """Weights and biases of the network on d inputs: Σ (n_in + 1) n_out over its layers."""
        widths = (d, *self.hidden, 1)
        return sum((n_in + 1) * n_out for n_in, n_out in zip(widths, widths[1:]))

    def memory_bytes(self, m: int, d: int) -> float:
        """Peak memory of fit on m rows of d features, float32: the data, the weights with their gradients
        (and Adam's two moments), the activations of a mini-batch kept for backpropagation, those of the
        whole set when J(w) is evaluated after each epoch, and the list of costs."""
        tensors = 4 if self.optimizer == "adam" else 2
        widths = (d, *self.hidden, 1)
        try:
            return float(4 * tensors * self.weights(d) + 4 * m * (d + 1) + 8 * m * max(widths)
                         + 12 * min(self.batch_size, m) * sum(widths) + 32 * self.epochs)
        except OverflowError:  # widths of 10**400 from a command line
            return math.inf

    def check_memory(self, m: int, d: int, held: float = 0.0) -> None:
        """One-line ValueError, before anything is built, if fit(m rows of d features) cannot fit in memory
        beside `held` bytes needed at the same time (the training sets, say)."""
        check_memory(f"fitting a network of {self.weights(d):,} weights (hidden={self.hidden}) to {m:,} rows",
                     held + self.memory_bytes(m, d))

    def fit(self, X: np.ndarray, G: np.ndarray) -> NeuralRegression:
        """Minimise J(w) = (1/m) Σ (ŷ(x_i, w) − G_i)² over the m rows of X (m, d) and returns G (m,)."""
        X, G = np.asarray(X, dtype=np.float32), np.asarray(G, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X has shape {X.shape}; expected (m, d) with m ≥ 1 and d ≥ 1")
        if G.shape != (X.shape[0],):
            raise ValueError(f"G has shape {G.shape}; expected ({X.shape[0]},), one return per row of X")
        if not (np.isfinite(X).all() and np.isfinite(G).all()):
            raise ValueError("X and G must be finite (no NaN or inf)")
        m = X.shape[0]
        self.check_rows(m)
        self.check_memory(m, X.shape[1])

        with torch.random.fork_rng(devices=[]):  # reproducible init without touching the global RNG
            torch.manual_seed(self.seed)
            self.network = build([Dense(units, self.activation) for units in self.hidden] + [Dense(1)], (X.shape[1],))
        optimizer_class = torch.optim.SGD if self.optimizer == "sgd" else torch.optim.Adam
        optimizer = optimizer_class(self.network.parameters(), lr=self.alpha)
        x, y = torch.from_numpy(X), torch.from_numpy(G)
        shuffle = torch.Generator().manual_seed(self.seed)
        self.costs = []
        for epoch in range(1, self.epochs + 1):
            order = torch.randperm(m, generator=shuffle)
            for start in range(0, m, self.batch_size):
                batch = order[start : start + self.batch_size]
                loss = (self.network(x[batch]).squeeze(-1) - y[batch]).pow(2).mean()  # (1/s) Σ L^(i)(w)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()  # w := w − α ∇loss   (SGD)
            with torch.no_grad():
                cost = (self.network(x).squeeze(-1) - y).pow(2).mean().item()  # J(w) on all m
            if not math.isfinite(cost):
                raise ValueError(f"{self.optimizer} diverged in epoch {epoch}: J(w) = {cost}; "
                                 f"alpha={self.alpha:g} is too large for these returns")
            self.costs.append(cost)
            if self.writer is not None:
                self.writer.add_scalar(self.tag, cost, epoch)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """ŷ(x, w) for each row of X (n, d), as float64 (n,)."""
        if self.network is None:
            raise ValueError("this NeuralRegression is not fitted yet; call fit(X, G) first")
        X = np.asarray(X, dtype=np.float32)
        d = self.network[0].in_features
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"X has shape {X.shape}; expected (n, {d}) as in fit")
        with torch.no_grad():
            return self.network(torch.from_numpy(X)).squeeze(-1).double().numpy()
