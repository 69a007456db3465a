"""The random walks of Sutton & Barto (Example 6.2, Figure 12.3; Example 9.1).

Both have two actions, left and right. Under the uniform policy (each with probability ½)
they are exactly the book's random walks; v_* is +1 everywhere (always go right).
"""

from __future__ import annotations

import numpy as np

from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_int


def random_walk(n_states: int = 19, max_jump: int = 1) -> FiniteMDP:
    """A walk over non-terminal states 1..n, with terminals 0 (reward −1) and n+1 (reward +1).

    Each step jumps 1..max_jump states (uniformly) in the chosen direction; a jump past an end
    terminates there. Starts in the middle state (n+1)//2, γ = 1, reward 0 otherwise.
    max_jump = 1 is the n-state walk of chapters 6-7 and 12; n = 1000, max_jump = 100 that of chapter 9.
    """
    check_int("n_states", n_states, 1)
    check_int("max_jump", max_jump, 1)
    n = n_states + 2
    P = np.zeros((n, 2, n))
    R = np.zeros((n, 2, n))
    R[:, :, 0] = -1.0
    R[:, :, n - 1] = 1.0
    s = np.arange(1, n - 1)[:, None]
    jumps = np.arange(1, max_jump + 1)[None, :]
    for a, sign in ((0, -1), (1, +1)):
        # Each of the max_jump equally likely jumps; those past an end land on that terminal.
        np.add.at(P[:, a, :], (np.broadcast_to(s, (n - 2, max_jump)), np.clip(s + sign * jumps, 0, n - 1)), 1.0 / max_jump)
    terminal = np.zeros(n, dtype=bool)
    terminal[[0, n - 1]] = True
    start = np.zeros(n)
    start[(n_states + 1) // 2] = 1.0
    names = ("left end", *(str(i) for i in range(1, n - 1)), "right end")
    return FiniteMDP(P, R, terminal, start, gamma=1.0, state_names=names, action_names=("left", "right"))


def random_walk_1000() -> FiniteMDP:
    """The 1000-state random walk of S&B Example 9.1: jumps of 1..100 to either side."""
    return random_walk(1000, max_jump=100)
