"""Proportional prioritized replay (Schaul et al. 2016): the ring buffer of dqn.replay, sampled through a SumTree.

    P(i) = p_i^α / Σ_j p_j^α,   p_i = |δ_i| + priority_eps
    w_i = (N · P(i))^{−β} / max_j w_j
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qapprox.dqn.replay import Batch, ReplayBuffer
from qapprox.dqn.sum_tree import SumTree
from qapprox.envs.validation import check_float


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on a SumTree.

    P(i) = p_i^α / Σ_j p_j^α,   p_i = |δ_i| + priority_eps   (new transitions: the largest p seen so far)
    w_i = (N · P(i))^{−β} / max_j w_j = (p_i^α / min_j p_j^α)^{−β}   (max over the whole buffer)
    Sampling is stratified: one draw from each of B equal segments of [0, Σ p^α).
    β starts at beta0 and is annealed towards 1 by the caller through set_beta() (dqn.schedules.LinearSchedule).
    """

    EXTRA_BYTES_PER_ROW = 64  # the sum-tree's sums and mins: 2 × (≤ 4 float64) per row

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], *, alpha: float = 0.6, beta0: float = 0.4,
        priority_eps: float = 1e-6, **base: Any,
    ):
        """alpha is α, beta0 the first β, priority_eps the ε of p_i; capacity, obs_shape and `base` (obs_dtype,
        n_envs, n_step, gamma, device, seed, by keyword) are ReplayBuffer's, with its defaults. Each member has
        its own sum-tree over its rows and its own largest priority; β is shared."""
        self.alpha = check_float("alpha", alpha, 0.0)
        self.priority_eps = check_float("priority_eps", priority_eps, 0.0, low_open=True)  # ε of p_i = |δ_i| + ε
        self.beta0 = check_float("beta0", beta0, 0.0, 1.0)
        super().__init__(capacity, obs_shape, **base)
        self.beta = self.beta0
        self._max_priorities = np.ones(self.members)  # per member: p given to its new transitions
        self._trees = [SumTree(self._member_rows) for _ in range(self.members)]

    @property
    def max_priority(self) -> float | np.ndarray:
        """The largest priority seen (p of new transitions): a float for one member, (K,) for a population."""
        return float(self._max_priorities[0]) if self.members == 1 else self._max_priorities.copy()

    @property
    def nbytes(self) -> int:
        return super().nbytes + sum(tree.sums.nbytes + tree.mins.nbytes for tree in self._trees)

    def max_priority_of(self, max_priority: float) -> float:
        """The largest p^α a leaf may hold when the largest priority seen is `max_priority` (rounding aside)."""
        return max(max_priority**self.alpha, 1.0) * (1 + 1e-9)

    def set_beta(self, beta: float) -> None:
        """β of the importance weights, in [0, 1]."""
        self.beta = check_float("beta", beta, 0.0, 1.0)

    def _by_member(self, rows: np.ndarray):
        """(member k, its rows numbered from its first row, the positions in `rows`) for every member in `rows`."""
        if self.members == 1:
            yield 0, rows, slice(None)
            return
        rows = rows.reshape(-1)  # add()'s written rows come as (2, envs)
        owner = rows // self._member_rows
        for k in np.unique(owner).tolist():
            where = np.flatnonzero(owner == k)
            yield k, rows[where] - k * self._member_rows, where

    def _commit(self, written: np.ndarray, emitted: np.ndarray) -> int:
        overwritten = super()._commit(written, emitted)
        if overwritten:  # p = 0 where no transition starts now (other rows without one hold 0 already) …
            for k, rows, _ in self._by_member(written):
                self._trees[k].update(rows, 0.0)
        for k, rows, _ in self._by_member(emitted):  # … and the largest p for new ones
            self._trees[k].update(rows, self._max_priorities[k] ** self.alpha)
        return overwritten

    def sample(self, batch_size: int, batches: int = 1) -> Batch:
        """B transitions of each member drawn ∝ p^α (stratified) from its own tree and generator, with
        importance weights w normalised by its own smallest p. One minibatch per call: the priorities change
        after each update."""
        if batches != 1:
            raise ValueError(f"batches={batches!r}: prioritized replay samples one minibatch at a time")
        self._check_batch_size(batch_size)
        indices, weights = [], []
        for k, (tree, rng) in enumerate(zip(self._trees, self._rngs)):
            u = (np.arange(batch_size) + rng.random(batch_size)) * (tree.total / batch_size)
            rows = tree.find(u)
            weights.append((tree.values[rows] / tree.min) ** -self.beta)
            indices.append(rows + k * self._member_rows)
        if self.members == 1:
            return self._gather(indices[0], weights[0])
        return self._gather(np.concatenate(indices), np.concatenate(weights))

    def update_priorities(self, indices, td_errors) -> None:
        """p_i ← |δ_i| + priority_eps for sampled rows (a row that no longer holds a transition is skipped)."""
        indices = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        if isinstance(td_errors, torch.Tensor):
            td_errors = td_errors.detach().cpu()
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.priority_eps
        if indices.shape != priorities.shape or indices.ndim != 1:
            raise ValueError(f"indices {indices.shape} and td_errors {priorities.shape} must be equal 1-d shapes")
        if not np.isfinite(priorities).all():
            raise ValueError("td_errors contain NaN or inf")
        outside = indices[(indices < 0) | (indices >= len(self._valid))]
        if len(outside):
            raise ValueError(f"index {outside[0]} is outside the buffer's rows [0, {len(self._valid)})")
        keep = self._valid[indices]  # rows overwritten since sampling keep their new priority
        indices, first = np.unique(indices[keep], return_index=True)
        priorities = priorities[keep][first]
        for k, rows, where in self._by_member(indices):
            if len(rows):
                member = priorities[where]
                self._max_priorities[k] = max(self._max_priorities[k], float(member.max()))
                self._trees[k].update(rows, member**self.alpha)

    def _settings(self) -> dict:
        return {**super()._settings(), "alpha": self.alpha}

    def member_state(self, k: int) -> dict:
        return {
            **super().member_state(k),
            "priorities": torch.from_numpy(self._trees[k].values.copy()),
            "max_priority": float(self._max_priorities[k]),
            "beta": self.beta,
        }

    def load_member_state(self, k: int, state: dict, n_actions: int | None = None) -> None:
        tree = self._trees[k]
        priorities = state.get("priorities") if isinstance(state, dict) else None
        if not isinstance(priorities, torch.Tensor) or tuple(priorities.shape) != (tree.size,) or \
                priorities.dtype != torch.float64 or not torch.isfinite(priorities).all():
            raise ValueError(f"replay state 'priorities' must be finite float64 numbers of shape ({tree.size},)")
        max_priority = check_float("replay state 'max_priority'", state.get("max_priority"), 0.0, low_open=True)
        beta = check_float("replay state 'beta'", state.get("beta"), 0.0, 1.0)
        valid = state.get("valid")
        if isinstance(valid, torch.Tensor) and valid.shape == (tree.size,) and valid.dtype == torch.bool:
            valid, leaves = valid.numpy(), priorities.numpy()  # p^α > 0 exactly where a transition is
            if (leaves[~valid] != 0).any() or (leaves[valid] <= 0).any() or \
                    (leaves > self.max_priority_of(max_priority)).any():
                raise ValueError("replay state 'priorities' must be > 0 (and ≤ max_priority^alpha) exactly on the "
                                 "rows holding transitions and 0 elsewhere")
        super().load_member_state(k, state, n_actions)  # checks the rest (and refuses a `valid` of another shape)
        tree.set_values(priorities.cpu().numpy())
        self._max_priorities[k] = max_priority
        self.set_beta(beta)
