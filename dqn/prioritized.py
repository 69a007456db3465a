"""Proportional prioritized replay (Schaul et al. 2016): the ring buffer of dqn.replay, sampled through a SumTree.

    P(i) = p_i^α / Σ_j p_j^α,   p_i = |δ_i| + priority_eps
    w_i = (N · P(i))^{−β} / max_j w_j

K members (dqn.replay): a SumTree forest of K trees, member k's tree over its rows (leaf j: row k·N·slots + j),
and a largest priority per member; each member's P, w and draws are those of its buffer alone. β is shared.
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

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], *, alpha: float = 0.6, beta0: float = 0.4,
        priority_eps: float = 1e-6, **base: Any,
    ):
        """alpha is α, beta0 the first β, priority_eps the ε of p_i; capacity, obs_shape and `base` (obs_dtype,
        n_envs, n_step, gamma, device, seed, by keyword) are ReplayBuffer's, with its defaults."""
        self.alpha = check_float("alpha", alpha, 0.0)
        self.priority_eps = check_float("priority_eps", priority_eps, 0.0, low_open=True)  # ε of p_i = |δ_i| + ε
        self.beta0 = check_float("beta0", beta0, 0.0, 1.0)
        super().__init__(capacity, obs_shape, **base)
        self.beta = self.beta0
        self._tree = SumTree(self._member_rows, self.members)  # tree k: member k's rows
        self._set_max_priorities(np.ones(self.members))

    @property
    def max_priority(self) -> float | np.ndarray:
        """The largest priority seen (p of new transitions): a float for one member, (K,) for K members."""
        return float(self._max_priorities[0]) if self.members == 1 else self._max_priorities.copy()

    def _set_max_priorities(self, max_priorities: np.ndarray) -> None:
        """Each member's largest p seen, and max_priority^α: the leaf of its new transitions."""
        self._max_priorities = max_priorities
        self._new_leaves = np.array([p**self.alpha for p in max_priorities.tolist()])  # Python's float power

    @property
    def nbytes(self) -> int:
        return super().nbytes + self._tree.sums.nbytes + self._tree.mins.nbytes

    @classmethod
    def _extra_bytes(cls, member_rows: int, members: int) -> int:
        return SumTree.storage_bytes(member_rows, members)

    def max_priority_of(self, max_priority: float) -> float:
        """The largest p^α a leaf may hold when the largest priority seen is `max_priority` (rounding aside)."""
        return max(max_priority**self.alpha, 1.0) * (1 + 1e-9)

    def set_beta(self, beta: float) -> None:
        """β of the importance weights, in [0, 1]."""
        self.beta = check_float("beta", beta, 0.0, 1.0)

    def _commit(self, written: np.ndarray, emitted: np.ndarray) -> int:
        overwritten = super()._commit(written, emitted)
        if overwritten:  # p = 0 where no transition starts now (other rows without one hold 0 already) …
            self._tree.update(written, 0.0)
        self._tree.update(emitted, self._new_leaves[emitted // self._member_rows])  # … its member's largest p
        return overwritten

    def sample(self, batch_size: int, batches: int = 1) -> Batch:
        """B transitions of each member drawn ∝ p^α (stratified) from its own tree and generator, with
        importance weights w normalised by its own smallest p. One minibatch per call: the priorities change
        after each update."""
        if batches != 1:
            raise ValueError(f"batches={batches!r}: prioritized replay samples one minibatch at a time")
        self._check_batch_size(batch_size)
        draws = np.stack([rng.random(batch_size) for rng in self._rngs])  # [k, i]: from member k's generator
        u = (np.arange(batch_size) + draws) * (self._tree.totals[:, None] / batch_size)
        member = np.repeat(np.arange(self.members), batch_size)
        indices = self._tree.find(u.reshape(-1), member)  # in member k's tree: its rows
        weights = (self._tree.get(indices) / self._tree.minima[member]) ** -self.beta
        return self._gather(indices, weights)

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
        if len(indices):
            max_priorities = self._max_priorities.copy()
            np.maximum.at(max_priorities, indices // self._member_rows, priorities)  # each member's own largest
            self._set_max_priorities(max_priorities)
            self._tree.update(indices, priorities**self.alpha)

    def _settings(self) -> dict:
        return {**super()._settings(), "alpha": self.alpha}

    def member_state(self, k: int) -> dict:
        return {
            **super().member_state(k),
            "priorities": torch.from_numpy(self._tree.tree_values(k)),
            "max_priority": float(self._max_priorities[k]),
            "beta": self.beta,
        }

    def load_member_state(self, k: int, state: dict, n_actions: int | None = None) -> None:
        self._check_member(k)
        size = self._tree.size  # member k's rows
        priorities = state.get("priorities") if isinstance(state, dict) else None
        if not isinstance(priorities, torch.Tensor) or tuple(priorities.shape) != (size,) or \
                priorities.dtype != torch.float64 or not torch.isfinite(priorities).all():
            raise ValueError(f"replay state 'priorities' must be finite float64 numbers of shape ({size},)")
        max_priority = check_float("replay state 'max_priority'", state.get("max_priority"), 0.0, low_open=True)
        beta = check_float("replay state 'beta'", state.get("beta"), 0.0, 1.0)
        valid = state.get("valid")
        if isinstance(valid, torch.Tensor) and valid.shape == (size,) and valid.dtype == torch.bool:
            valid, leaves = valid.numpy(), priorities.numpy()  # p^α > 0 exactly where a transition is
            if (leaves[~valid] != 0).any() or (leaves[valid] <= 0).any() or \
                    (leaves > self.max_priority_of(max_priority)).any():
                raise ValueError("replay state 'priorities' must be > 0 (and ≤ max_priority^alpha) exactly on the "
                                 "rows holding transitions and 0 elsewhere")
        super().load_member_state(k, state, n_actions)  # checks the rest (and refuses a `valid` of another shape)
        self._tree.set_values(priorities.cpu().numpy(), k)
        max_priorities = self._max_priorities.copy()
        max_priorities[k] = max_priority
        self._set_max_priorities(max_priorities)
        self.set_beta(beta)
