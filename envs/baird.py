"""Baird's counterexample (Sutton & Barto §11.2, Example 11.1): off-policy divergence with linear features.

Seven states and no terminal state (a continuing task), γ = 0.99, every reward 0:

    action 0 "dashed"  → one of the six upper states s_1..s_6, each with probability 1/6
    action 1 "solid"   → the lower state s_7

The target policy π always takes solid; the behaviour policy b takes dashed with probability
6/7 and solid with 1/7, so the next state under b is uniform over the seven and μ_b is uniform.
v_π = 0 everywhere, and the linear features (eight weights for seven states)

    x(s_i) = 2e_i + e_8  (i = 1..6),        x(s_7) = e_7 + 2e_8

can represent it exactly (w = 0, and a whole line of other w). The book starts from
w = (1, 1, 1, 1, 1, 1, 10, 1). States are indexed 0..6 here: s_i is index i − 1.
"""

from __future__ import annotations

import numpy as np

from qapprox.envs.finite import FiniteMDP

N_STATES = 7
UPPER = np.arange(6)
LOWER = 6
DASHED, SOLID = 0, 1


def _features() -> np.ndarray:
    X = np.zeros((N_STATES, 8))
    X[UPPER, UPPER] = 2.0
    X[UPPER, 7] = 1.0
    X[LOWER, 6], X[LOWER, 7] = 1.0, 2.0
    X.setflags(write=False)
    return X


def _policy(p_solid: float) -> np.ndarray:
    pi = np.tile([1.0 - p_solid, p_solid], (N_STATES, 1))
    pi.setflags(write=False)
    return pi


BAIRD_FEATURES = _features()
"""x(s) as rows, shape (7, 8)."""
TARGET_POLICY = _policy(1.0)
"""π(solid | s) = 1, shape (7, 2)."""
BEHAVIOUR_POLICY = _policy(1.0 / 7.0)
"""b(dashed | s) = 6/7, b(solid | s) = 1/7, shape (7, 2)."""
BAIRD_W0 = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0])
"""The book's starting weights w_0."""
BAIRD_W0.setflags(write=False)


def baird() -> FiniteMDP:
    """The seven-state MDP of Example 11.1 (no terminal states, R = 0, γ = 0.99, S_0 uniform)."""
    P = np.zeros((N_STATES, 2, N_STATES))
    P[:, DASHED, UPPER] = 1.0 / 6.0
    P[:, SOLID, LOWER] = 1.0
    return FiniteMDP(
        P, np.zeros_like(P), np.zeros(N_STATES, dtype=bool), np.full(N_STATES, 1.0 / N_STATES), gamma=0.99,
        state_names=tuple(f"s_{i}" for i in range(1, N_STATES + 1)),
        action_names=("dashed", "solid"),
    )
