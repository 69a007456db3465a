"""Finite MDPs with exact answers: the ground truth every approximator is checked against.

Notation (Sutton & Barto): states S⁺ = S ∪ {terminal states}, actions A, dynamics
p(s' | s, a) = P[s, a, s'], reward on that transition R[s, a, s'], discount γ.
Terminal states are absorbing with zero reward, so v_π(terminal) = 0 for every π.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from qapprox.envs.validation import check_float


@dataclass(frozen=True, eq=False)
class FiniteMDP:
    """A finite MDP (S⁺, A, p, r, γ) with exact policy evaluation and value iteration.

    P[s, a, s'] = Pr{S_{t+1}=s' | S_t=s, A_t=a}    shape (|S⁺|, |A|, |S⁺|)
    R[s, a, s'] = E[R_{t+1} | S_t=s, A_t=a, S_{t+1}=s']
    terminal[s] — True for the absorbing terminal states
    start[s]    = Pr{S_0 = s}
    """

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    start: np.ndarray
    gamma: float
    state_names: tuple[str, ...] = field(default=())
    action_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        P = np.asarray(self.P, dtype=np.float64)
        n_s, n_a = P.shape[0], P.shape[1]
        R = np.broadcast_to(np.asarray(self.R, dtype=np.float64), P.shape).copy()
        terminal = np.asarray(self.terminal, dtype=bool)
        start = np.asarray(self.start, dtype=np.float64)
        if P.ndim != 3 or P.shape[2] != n_s:
            raise ValueError(f"P must have shape (S, A, S), got {P.shape}")
        if terminal.shape != (n_s,) or start.shape != (n_s,):
            raise ValueError(f"terminal and start must have shape ({n_s},)")
        object.__setattr__(self, "gamma", check_float("gamma", self.gamma, 0.0, 1.0))
        if np.any(P < 0) or not np.allclose(P[~terminal].sum(-1), 1.0):
            raise ValueError("each P[s, a, :] of a non-terminal s must be a probability distribution")
        if not np.isclose(start.sum(), 1.0) or np.any(start[terminal] > 0):
            raise ValueError("start must be a distribution over non-terminal states")
        # Terminal states absorb with zero reward.
        P[terminal] = 0.0
        for s in np.flatnonzero(terminal):
            P[s, :, s] = 1.0
        R[terminal] = 0.0
        for name, value in (("P", P), ("R", R), ("terminal", terminal), ("start", start)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "state_names", tuple(self.state_names) or tuple(f"s{i}" for i in range(n_s)))
        object.__setattr__(self, "action_names", tuple(self.action_names) or tuple(f"a{i}" for i in range(n_a)))

    # ----------------------------------------------------------------- sizes
    @property
    def n_states(self) -> int:
        """|S⁺|, terminal states included."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @cached_property
    def nonterminal(self) -> np.ndarray:
        """Indices of S (the non-terminal states), in order."""
        return np.flatnonzero(~self.terminal)

    @cached_property
    def r(self) -> np.ndarray:
        """Expected reward r(s, a) = Σ_s' p(s'|s,a) R[s,a,s'], shape (|S⁺|, |A|)."""
        return np.einsum("ijk,ijk->ij", self.P, self.R)

    def uniform_policy(self) -> np.ndarray:
        """π(a|s) = 1/|A| for every state, shape (|S⁺|, |A|)."""
        return np.full((self.n_states, self.n_actions), 1.0 / self.n_actions)

    def check_policy(self, pi: np.ndarray) -> np.ndarray:
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != (self.n_states, self.n_actions):
            raise ValueError(f"policy shape {pi.shape} is not (|S⁺|, |A|) = {(self.n_states, self.n_actions)}")
        if np.any(pi < 0) or not np.allclose(pi.sum(-1), 1.0):
            raise ValueError("each policy row π(·|s) must be a probability distribution")
        return pi

    # ------------------------------------------------------------ exact answers
    def evaluate(self, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact v_π and q_π from the Bellman equations, solved as one linear system.

        v_π = r_π + γ P_π v_π on S (v_π = 0 on terminals),   q_π(s,a) = r(s,a) + γ Σ_s' p(s'|s,a) v_π(s').
        """
        pi = self.check_policy(pi)
        idx = self.nonterminal
        P_pi = np.einsum("sa,sat->st", pi, self.P)[np.ix_(idx, idx)]
        r_pi = np.einsum("sa,sa->s", pi, self.r)[idx]
        v = np.zeros(self.n_states)
        try:
            v[idx] = np.linalg.solve(np.eye(idx.size) - self.gamma * P_pi, r_pi)
        except np.linalg.LinAlgError as exc:
            raise ValueError("v_π is not defined: under this policy some episode never ends and γ = 1") from exc
        q = self.r + self.gamma * self.P @ v
        q[self.terminal] = 0.0
        return v, q

    def optimal(self, tol: float = 1e-12, max_iterations: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
        """v_* and q_* by value iteration: v(s) ← max_a [r(s,a) + γ Σ_s' p(s'|s,a) v(s')]."""
        v = np.zeros(self.n_states)
        for _ in range(max_iterations):
            q = self.r + self.gamma * self.P @ v
            q[self.terminal] = 0.0
            v_new = q.max(axis=1)
            if np.max(np.abs(v_new - v)) < tol:
                return v_new, q
            v = v_new
        raise RuntimeError(f"value iteration did not converge to {tol} in {max_iterations} sweeps")

    def greedy_policy(self, q: np.ndarray) -> np.ndarray:
        """π(a|s) = 1 for a = argmax_a q(s, a) (ties to the lowest index)."""
        pi = np.zeros((self.n_states, self.n_actions))
        pi[np.arange(self.n_states), np.argmax(q, axis=1)] = 1.0
        return pi

    # ---------------------------------------------------------------- sampling
    @cached_property
    def _cumulative_P(self) -> np.ndarray:
        return np.cumsum(self.P, axis=-1)

    def reset(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n start states S_0 ~ start, as an int array."""
        return np.searchsorted(np.cumsum(self.start), rng.random(n), side="right").clip(max=self.n_states - 1)

    def sample_actions(self, pi: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A_t ~ π(·|S_t) for a batch of states."""
        cum = np.cumsum(pi[s], axis=-1)
        return (rng.random((len(s), 1)) > cum).sum(-1).clip(max=self.n_actions - 1)

    def step(self, s: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch of transitions: S_{t+1} ~ p(·|s, a); returns (S_{t+1}, R_{t+1}, terminated)."""
        s, a = np.asarray(s), np.asarray(a)
        # Inverse CDF: S_{t+1} = #{s' : u > F(s')} for F the cumulative row p(≤ s'|s, a), found by a binary
        # search on the nondecreasing row (O(log |S⁺|) per draw, vectorised) — the same count, so the same draws.
        u = rng.random(s.size)
        row = (s.ravel() * self.n_actions + a.ravel()) * self.n_states
        cum = self._cumulative_P.reshape(-1)
        lo, hi = np.zeros(s.size, dtype=np.int64), np.full(s.size, self.n_states)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            below = u > cum[row + np.minimum(mid, self.n_states - 1)]
            lo, hi = np.where(below, mid + 1, lo), np.where(below, hi, mid)
        s_next = lo.reshape(s.shape).clip(max=self.n_states - 1)
        return s_next, self.R[s, a, s_next], self.terminal[s_next]

    def episodes(
        self, pi: np.ndarray, n: int, rng: np.random.Generator, max_steps: int = 100_000
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """n episodes under π, simulated in lockstep. Each is (S_0..S_{T-1}, A_0..A_{T-1}, R_1..R_T)."""
        pi = self.check_policy(pi)
        s = self.reset(n, rng)
        states, actions, rewards = [], [], []
        alive = np.ones(n, dtype=bool)
        lengths = np.full(n, max_steps)
        for t in range(max_steps):
            a = self.sample_actions(pi, s, rng)
            s_next, reward, done = self.step(s, a, rng)
            states.append(s), actions.append(a), rewards.append(reward)
            ended = alive & done
            lengths[ended] = t + 1
            alive &= ~done
            s = np.where(alive, s_next, s)
            if not alive.any():
                break
        S, A, R = np.stack(states, 1), np.stack(actions, 1), np.stack(rewards, 1)
        return [(S[i, : lengths[i]], A[i, : lengths[i]], R[i, : lengths[i]]) for i in range(n)]


class FiniteMDPEnv(gym.Env):
    """A FiniteMDP as a gymnasium environment; `env.unwrapped.mdp` is its exact model.

    Observations are state indices in Discrete(|S⁺|); `OneHotObservation` turns them into x(s).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, mdp: FiniteMDP, render_mode: str | None = None) -> None:
        self.mdp = mdp
        self.observation_space = spaces.Discrete(mdp.n_states)
        self.action_space = spaces.Discrete(mdp.n_actions)
        self.render_mode = render_mode
        self._s = int(mdp.nonterminal[0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._s = int(self.mdp.reset(1, self.np_random)[0])
        return self._s, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        s_next, reward, terminated = self.mdp.step(np.array([self._s]), np.array([int(action)]), self.np_random)
        self._s = int(s_next[0])
        return self._s, float(reward[0]), bool(terminated[0]), False, {}

    def render(self) -> str:
        return f"state {self.mdp.state_names[self._s]}"
