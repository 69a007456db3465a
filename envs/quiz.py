"""The three-state MDP of Quiz 9, S = {s_A, s_B, s_C}, with dynamics chosen here.

The quiz leaves the dynamics open. These make the uniform random policy clearly sub-optimal,
so that v_π ≠ v_* and q_π ≠ q_* (Questions 4 and 5 can tell them apart). γ = 0.9, start in s_A.

    state  action       next state (probability)            reward
    s_A    0 "safe"     s_B (1)                              0
    s_A    1 "gamble"   s_C (0.5) | terminal (0.5)           0 | −1
    s_B    0 "forward"  s_C (1)                              +1
    s_B    1 "back"     s_A (1)                              0
    s_C    0 "cash in"  terminal (1)                         +10
    s_C    1 "wander"   terminal (0.8) | s_B (0.2)           0 | 0

Optimal: safe, forward, cash in, with v_* = (9, 10, 10).
"""

from __future__ import annotations

import numpy as np

from qapprox.envs.finite import FiniteMDP

A, B, C, T = 0, 1, 2, 3


def quiz9_mdp() -> FiniteMDP:
    P = np.zeros((4, 2, 4))
    R = np.zeros((4, 2, 4))
    P[A, 0, B] = 1.0
    P[A, 1, C], P[A, 1, T], R[A, 1, T] = 0.5, 0.5, -1.0
    P[B, 0, C], R[B, 0, C] = 1.0, 1.0
    P[B, 1, A] = 1.0
    P[C, 0, T], R[C, 0, T] = 1.0, 10.0
    P[C, 1, T], P[C, 1, B] = 0.8, 0.2
    terminal = np.array([False, False, False, True])
    start = np.array([1.0, 0.0, 0.0, 0.0])
    return FiniteMDP(
        P, R, terminal, start, gamma=0.9,
        state_names=("s_A", "s_B", "s_C", "terminal"),
        action_names=("a_0", "a_1"),
    )
