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

from collections.abc import Callable, Sequence

import numpy as np


def epsilon_greedy(q: np.ndarray | Callable[[], np.ndarray], epsilon: float,
                   rng: np.random.Generator | Sequence[np.random.Generator], *,
                   shape: tuple[int, ...] | None = None, random_ties: bool = False) -> np.ndarray:
    """A ~ ε-greedy(q) for every row of q (module doc); returns the actions, of shape q.shape[:-1].

    q is the action values, or a callable that returns them, with `shape` (rows..., |A|): it is called
    only when some row acts greedily, so when every row explores no value is computed.
    The draws from `rng`, in order: with `random_ties` one uniform per action value (to break ties); one
    uniform per row (the row explores where it is < ε); if some row explores, one random action per row.
    `rng` may be a sequence of K generators, one per slice q[k] of the leading dimension (the members of a
    population): slice k then draws from generator k exactly what a call on q[k] alone would.
    """
    members = isinstance(rng, Sequence)  # one generator per member (a generator-like object otherwise)
    generators = list(rng) if members else [rng]
    dims = np.shape(q) if shape is None else shape
    *rows, n_actions = dims if members else (1, *dims)
    if rows[0] != len(generators):
        raise ValueError(f"{len(generators)} generators for q of shape {tuple(dims)}: one per slice of the first dimension")
    member_rows = tuple(rows[1:])

    def each(draw: Callable[[int, np.random.Generator], np.ndarray]) -> np.ndarray:  # generator k's draw: slice k
        if len(generators) == 1:
            return draw(0, generators[0])[None]
        return np.stack([draw(k, g) for k, g in enumerate(generators)])

    tie_breaks = each(lambda k, g: g.random((*member_rows, n_actions))) if random_ties else None
    explore = each(lambda k, g: g.random(member_rows) < epsilon)  # with probability ε a random action
    explorers = explore.reshape(len(generators), -1).any(axis=1).tolist()
    random_actions = each(lambda k, g: g.integers(n_actions, size=member_rows) if explorers[k]
                          else np.zeros(member_rows, dtype=np.int64)) if any(explorers) or not explore.size else None
    if explore.all():
        return random_actions if members else random_actions[0]
    values = q() if callable(q) else np.asarray(q)
    values = values if members else values[None]
    if random_ties:  # argmax over A* of independent uniforms: each maximiser equally likely
        greedy = np.argmax((values == values.max(axis=-1, keepdims=True)) * (1.0 + tie_breaks), axis=-1)
    else:
        greedy = values.argmax(axis=-1)
    actions = np.where(explore, random_actions, greedy) if random_actions is not None else greedy
    return actions if members else actions[0]


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
