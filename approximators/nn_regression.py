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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from approximators.networks import Dense, build, check_activation

OPTIMIZERS = ("sgd", "adam")


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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if not self.alpha > 0:
            raise ValueError(f"alpha={self.alpha} must be > 0")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer ≥ 1")
        check_activation(self.activation)
        self.hidden = tuple(self.hidden)
        for units in self.hidden:  # Dense validates each width the same way build() will
            Dense(units, self.activation)

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
        if self.batch_size > m:
            raise ValueError(f"batch_size={self.batch_size} is larger than the data set (m={m}); allowed: 1..{m}")

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
