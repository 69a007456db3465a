"""Least-squares TD (Sutton & Barto §9.8), batched over independent runs.

LSTD estimates the TD fixed point w_TD = A⁻¹b (eq. 9.12) directly from the sums

    Â_t = Σ_{k<t} x_k (x_k − γ x_{k+1})ᵀ + εI,    b̂_t = Σ_{k<t} R_{k+1} x_k,    w_t = Â_t⁻¹ b̂_t     eq. 9.20-9.21

(the 1/t of eq. 9.20 cancels in w_t). The book's boxed algorithm keeps Â⁻¹ instead of Â and updates it
by Sherman-Morrison in O(d²) per step (eq. 9.22), from Â₀⁻¹ = ε⁻¹I:

    v = Â⁻¹ᵀ (x − γx'),    Â⁻¹ ← Â⁻¹ − (Â⁻¹x) vᵀ / (1 + vᵀx),    b̂ ← b̂ + R x,    w = Â⁻¹ b̂

x' = x(S') is 0 when S' is terminal. Independent runs are rows of one array: Â⁻¹ has shape (runs, d, d).

`expected_lstd` is LSTD on the expected statistics, E[x_t(x_t − γx_{t+1})ᵀ] and E[R_{t+1}x_t] with
S_t ~ μ (the on-policy distribution), A_t ~ π, S_{t+1} ~ p, summed over the transitions (s, a, s') of the
model: it gives w_TD, which sampled LSTD approaches as its sums grow.
"""

from __future__ import annotations

import numpy as np

from qapprox.approximators.fixed_points import on_policy_distribution
from qapprox.approximators.off_policy import _features
from qapprox.approximators.traces import EpisodeBatch
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_float, check_unit_interval


def sherman_morrison(A_inv: np.ndarray, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(Â + x uᵀ)⁻¹ from Â⁻¹ (eq. 9.22): Â⁻¹ − (Â⁻¹x)(uᵀÂ⁻¹) / (1 + uᵀÂ⁻¹x); batched, A_inv (..., d, d),
    x and u (..., d). With u = x − γx' this is one LSTD step; x = 0 (a padded step) changes nothing."""
    A_inv_x = np.einsum("...ij,...j->...i", A_inv, x)      # Â⁻¹x
    v = np.einsum("...ji,...j->...i", A_inv, u)            # v = Â⁻¹ᵀu
    return A_inv - A_inv_x[..., :, None] * v[..., None, :] / (1.0 + np.einsum("...i,...i->...", v, x))[..., None, None]


class LSTD:
    """The LSTD statistics of a batch of runs: Â⁻¹ (runs, d, d) from ε⁻¹I and b̂ (runs, d) from 0."""

    def __init__(self, runs: int, d: int, *, epsilon: float = 1.0, gamma: float = 1.0) -> None:
        self.epsilon = check_float("epsilon", epsilon, 0.0, low_open=True)
        self.gamma = float(check_unit_interval("gamma", gamma))
        self.A_inv = np.broadcast_to(np.eye(d) / self.epsilon, (runs, d, d)).copy()
        self.b = np.zeros((runs, d))

    def step(self, x: np.ndarray, reward: np.ndarray, x_next: np.ndarray) -> None:
        """One transition (x_t, R_{t+1}, x_{t+1}) of every run; x_{t+1} = 0 when S_{t+1} is terminal."""
        self.A_inv = sherman_morrison(self.A_inv, x, x - self.gamma * x_next)
        self.b += reward[:, None] * x

    @property
    def w(self) -> np.ndarray:
        """w = Â⁻¹ b̂, shape (runs, d)."""
        return np.einsum("nij,nj->ni", self.A_inv, self.b)


def lstd(batch: EpisodeBatch, features: np.ndarray, *, epsilon: float = 1.0, gamma: float | None = None
         ) -> np.ndarray:
    """LSTD over a batch of episodes (traces.EpisodeBatch, state values); returns w after each episode,
    shape (episodes, runs, d). All runs step in lockstep; the batch's padded steps have x = 0 and change
    nothing. γ defaults to the batch's. (w is read at each episode's end: the boxed algorithm's w after
    its last step.)"""
    if batch.action_values:
        raise ValueError("lstd estimates state values: give an EpisodeBatch made with action_values=False")
    F = batch.feature_table(features)
    runs, episodes = batch.length.shape
    learner = LSTD(runs, F.shape[1], epsilon=epsilon, gamma=batch.gamma if gamma is None else gamma)
    history = np.empty((episodes, runs, F.shape[1]))
    for e in range(episodes):
        index, reward = batch.index[:, e], batch.reward[:, e]
        for t in range(int(batch.length[:, e].max())):
            learner.step(F[index[:, t]], reward[:, t], F[index[:, t + 1]])
        history[e] = learner.w
    return history


def expected_lstd(X: np.ndarray, mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None = None) -> np.ndarray:
    """w = Â⁻¹b̂ with Â and b̂ the expectations of LSTD's per-step terms over S_t ~ μ, A_t ~ π, S_{t+1} ~ p:

        Â = Σ_{s,a,s'} μ(s) π(a|s) p(s'|s,a) x(s)(x(s) − γx(s'))ᵀ
        b̂ = Σ_{s,a,s'} μ(s) π(a|s) p(s'|s,a) R(s,a,s') x(s)

    — A and b of eq. 9.11, so w = w_TD. μ defaults to the on-policy distribution."""
    X = _features(X, mdp)
    policy = mdp.check_policy(policy)
    mu = on_policy_distribution(mdp, policy) if mu is None else np.asarray(mu, dtype=np.float64)
    weight = mu[:, None, None] * policy[:, :, None] * mdp.P                 # Pr{S_t=s, A_t=a, S_{t+1}=s'}
    A = np.einsum("sat,si,sj->ij", weight, X, X, optimize=True) - mdp.gamma * np.einsum(
        "sat,si,tj->ij", weight, X, X, optimize=True)
    b = np.einsum("sat,sat,si->i", weight, mdp.R, X, optimize=True)
    return np.linalg.solve(A, b)
