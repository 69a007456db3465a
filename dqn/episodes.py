"""The episodes running in N envs side by side, and the overestimation view of each one that ends.

    episodes = Episodes(n_envs)
    for episode in episodes.step(rewards, terminated, truncated, q_taken):   # the envs' episodes that ended
        episode.total_return, episode.length, episode.observed(gamma, tail)

The overestimation view (van Hasselt et al., 2016) sets the Q-values the agent acted on beside what
it then got: for each step t of a finished episode, q̂(S_t, A_t, w) at collection time against the
discounted return actually observed from S_t,

    G_t = R_{t+1} + γ G_{t+1},   G_T = 0 after a termination, an estimate of the unseen tail after a truncation

(approximators.monte_carlo.returns). Their mean gap q̂ − G > 0 is overestimation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qapprox.approximators.monte_carlo import returns


@dataclass(frozen=True)
class Episode:
    """One finished episode of env `env`."""

    env: int
    total_return: float  # its undiscounted return Σ_t R_{t+1} (not G_0: no discount)
    length: int
    truncated: bool  # ended by a time limit, not in a terminal state: its tail has a value
    q_taken: np.ndarray  # q̂(S_t, A_t, w) at collection time (only the steps given q_taken)
    rewards: np.ndarray  # R_{t+1} of those steps

    def observed(self, gamma: float, tail: float = 0.0) -> np.ndarray:
        """The discounted return G_t observed from each recorded S_t, with G_T = tail (module doc)."""
        return returns(self.rewards, gamma, bootstrap=tail)


class Episodes:
    """Return and length of each env's running episode; with q_taken given, every step's q̂(S_t, A_t, w)
    and R_{t+1} too (the overestimation view)."""

    def __init__(self, n_envs: int) -> None:
        self.n_envs = n_envs
        self.start()

    def start(self) -> None:
        """New episodes in every env (after a reset)."""
        self._return = np.zeros(self.n_envs)
        self._length = np.zeros(self.n_envs, dtype=np.int64)
        self._q_taken: list[list[float]] = [[] for _ in range(self.n_envs)]
        self._rewards: list[list[float]] = [[] for _ in range(self.n_envs)]

    def step(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
             q_taken: np.ndarray | None = None) -> list[Episode]:
        """Add one step of every env; return the episodes it ended, in env order."""
        self._return += rewards
        self._length += 1
        if q_taken is not None:
            for i in range(self.n_envs):
                self._q_taken[i].append(q_taken[i])
                self._rewards[i].append(rewards[i])
        done = terminated | truncated
        if not done.any():
            return []
        finished = []
        for i in np.flatnonzero(done):
            finished.append(Episode(int(i), float(self._return[i]), int(self._length[i]),
                                    bool(truncated[i] and not terminated[i]),
                                    np.asarray(self._q_taken[i]), np.asarray(self._rewards[i])))
            self._return[i], self._length[i] = 0.0, 0
            self._q_taken[i], self._rewards[i] = [], []
        return finished
