"""Feature maps x(s) and x(s, a) for linear approximators (S&B §9.4-9.5, §10.1).

A feature matrix lists x(s) for every s ∈ S⁺ as a row: X[s] = x(s), shape (|S⁺|, d).
State-action features list x(s, a) as X_sa[s, a], shape (|S⁺|, |A|, d).
Terminal states map to the zero vector, so v̂(terminal, w) = wᵀ0 = 0 for every w, as it must.

One-hot features make the linear model tabular: with x(s) = e_i, v̂(s, w) = w_i.
For Quiz 9 (S = {s_A, s_B, s_C}) the weights are exactly the quiz's w = (w1, w2, w3).
"""

from __future__ import annotations

import numpy as np

from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_int


def one_hot(index: int | np.ndarray, n: int) -> np.ndarray:
    """e_index ∈ {0, 1}ⁿ; an int array of indices (…) gives (…, n)."""
    index = np.asarray(index)
    if np.any(index < 0) or np.any(index >= n):
        raise ValueError(f"index {index.min() if np.any(index < 0) else index.max()} is outside [0, {n - 1}]")
    return np.eye(n)[index]


def state_features(mdp: FiniteMDP) -> np.ndarray:
    """One-hot x(s) over the non-terminal states S; zero rows for terminals. Shape (|S⁺|, |S|)."""
    X = np.zeros((mdp.n_states, mdp.nonterminal.size))
    X[mdp.nonterminal, np.arange(mdp.nonterminal.size)] = 1.0
    return X


def state_action_features(mdp: FiniteMDP) -> np.ndarray:
    """One-hot x(s, a) over S × A, component i·|A| + a for the i-th non-terminal state.

    Shape (|S⁺|, |A|, |S|·|A|); x(terminal, a) = 0.
    """
    n_a = mdp.n_actions
    X_sa = np.zeros((mdp.n_states, n_a, mdp.nonterminal.size * n_a))
    i, a = np.meshgrid(np.arange(mdp.nonterminal.size), np.arange(n_a), indexing="ij")
    X_sa[mdp.nonterminal[i], a, i * n_a + a] = 1.0
    return X_sa


def block_state_action_features(X: np.ndarray, n_actions: int) -> np.ndarray:
    """x(s, a) = (0, …, 0, x(s), 0, …, 0): any x(s) placed in action a's block of size d.

    (|S⁺|, d) → (|S⁺|, |A|, |A|·d); then q̂(s, a, w) = w_aᵀx(s) with w = (w_0, …, w_{|A|-1}).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"state features have shape {X.shape}; expected (|S⁺|, d)")
    check_int("n_actions", n_actions, 1)
    n_s, d = X.shape
    return np.einsum("ab,sd->sabd", np.eye(n_actions), X).reshape(n_s, n_actions, n_actions * d)


def check_features(features: np.ndarray, n_states: int, n_actions: int | None = None) -> np.ndarray:
    """The feature matrix as float64, checked: (|S⁺|, d) for x(s), (|S⁺|, |A|, d) for x(s, a)."""
    features = np.asarray(features, dtype=np.float64)
    expected = (n_states,) if n_actions is None else (n_states, n_actions)
    kind = "(|S⁺|, d)" if n_actions is None else "(|S⁺|, |A|, d)"
    if features.ndim != len(expected) + 1 or features.shape[:-1] != expected:
        raise ValueError(f"features have shape {features.shape}; expected {kind} = ({', '.join(map(str, expected))}, d)")
    return features
