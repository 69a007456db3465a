"""Policies derived from action values: ε-greedy, the one behaviour policy of every learner here.

    a = epsilon_greedy(q, 0.1, rng)                                        # q: (..., |A|) array
    a = epsilon_greedy(forward, 0.1, rng, shape=(n_envs, n_actions))      # forward() only if some row is greedy
    pi = epsilon_greedy_probabilities(q, 0.1)                              # π(a|s), the same shape as q

For each row (state s) independently, with |A| actions and the greedy set A* = argmax_a q(s, a):

    π(a | s) = (1 − ε) / |A*| + ε / |A|   for a ∈ A*,        π(a | s) = ε / |A|   otherwise

(S&B §2.2, §5.4). With `random_ties` the greedy mass 1 − ε is split evenly over A*; without it A* is
only the first maximiser, as numpy's and torch's argmax break ties. epsilon_greedy samples actions;
epsilon_greedy_probabilities writes π(a|s) out, for exact evaluation of the policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def epsilon_greedy(q: np.ndarray | Callable[[], np.ndarray], epsilon: float, rng: np.random.Generator, *,
                   shape: tuple[int, ...] | None = None, random_ties: bool = False) -> np.ndarray:
    """A ~ ε-greedy(q) for every row of q (module doc); returns the actions, of shape q.shape[:-1].

    q is the action values, or a callable that returns them, with `shape` (rows..., |A|): it is called
    only when some row acts greedily, so when every row explores no value is computed.
    The draws from `rng`, in order: with `random_ties` one uniform per action value (to break ties); one
    uniform per row (the row explores where it is < ε); if some row explores, one random action per row.
    """
    *rows, n_actions = np.shape(q) if shape is None else shape
    tie_breaks = rng.random((*rows, n_actions)) if random_ties else None
    explore = rng.random(rows) < epsilon  # with probability ε a row takes a uniformly random action
    explorers = np.count_nonzero(explore)
    if explorers == explore.size:
        return rng.integers(n_actions, size=rows)
    values = q() if callable(q) else np.asarray(q)
    if random_ties:  # argmax over A* of independent uniforms: each maximiser equally likely
        greedy = np.argmax((values == values.max(axis=-1, keepdims=True)) * (1.0 + tie_breaks), axis=-1)
    else:
        greedy = values.argmax(axis=-1)
    if not explorers:
        return greedy
    return np.where(explore, rng.integers(n_actions, size=rows), greedy)


def epsilon_greedy_probabilities(q: np.ndarray, epsilon: float, *, random_ties: bool = False) -> np.ndarray:
    """π(a|s) of ε-greedy(q) for every row of q (module doc), of q's shape (..., |A|):

        π(a|s) = ε · (1/|A|) + (1 − ε) · 1(a ∈ A*) / |A*|

    the distribution epsilon_greedy samples with the same `random_ties` (without it A* is the first maximiser).
    """
    q = np.asarray(q, dtype=np.float64)
    if random_ties:
        best = q == q.max(axis=-1, keepdims=True)
        greedy = best / np.count_nonzero(best, axis=-1)[..., None]
    else:
        greedy = np.zeros_like(q)
        np.put_along_axis(greedy, q.argmax(axis=-1)[..., None], 1.0, axis=-1)
    return epsilon * np.full_like(q, 1.0 / q.shape[-1]) + (1 - epsilon) * greedy
