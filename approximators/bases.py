"""Dense feature maps x(s) over a box of continuous states (S&B §9.5): state aggregation, polynomials, Fourier.

Each basis is built on a box low ≤ s ≤ high (k dimensions) and works on the state scaled to the unit cube,

    s̃ = (clip(s, low, high) − low) / (high − low) ∈ [0, 1]^k.

States outside the box are clipped onto it (not an error): a state beyond `high` gets the features of `high`.
Every basis has `d`, the number of features, `bounds`, the range (low, high) of every x_i(s), and `basis(s)`:
s of shape (..., k) → x(s) of shape (..., d), float64. When low and high are numbers the box is one-dimensional
and s has shape (...), one number per state (low and high of shape (1,) take s of shape (..., 1)).

    basis = Fourier(order=5, low=0.5, high=1000.5)
    X = on_states(basis, random_walk_1000(), positions=np.arange(1002))   # (|S⁺|, 6), zero rows for terminals

Example 9.1's aggregation of the 1000-state walk into 10 groups of 100 states is
StateAggregation(10, low=0.5, high=1000.5) on the state numbers: s̃ = (s − 0.5)/1000, so state s falls in group
⌊(s − 0.5)/100⌋ = ⌊(s − 1)/100⌋: states 1..100 in group 0, 101..200 in group 1, …, 901..1000 in group 9.
(low=1, high=1000 gives the same groups: ⌊10 (s − 1)/999⌋ also changes exactly between 100k and 100k + 1.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_array, check_int, shown

_CHECKED_BYTES = 2**26  # outputs larger than this are checked against the free memory before allocation


class Box:
    """The box low ≤ s ≤ high of k dimensions, and the scaling s ↦ s̃ ∈ [0, 1]^k that every basis starts from."""

    def __init__(self, low, high) -> None:
        low, high = check_array("low", low), check_array("high", high)
        if low.ndim > 1 or high.ndim > 1:
            raise ValueError(f"low and high must be numbers or 1-D arrays, got shapes {low.shape} and {high.shape}")
        if low.ndim == 1 and high.ndim == 1 and low.shape != high.shape:
            raise ValueError(f"low has {low.size} dimensions and high {high.size}; they must agree")
        self.scalar = low.ndim == 0 and high.ndim == 0
        self.low, self.high = (np.atleast_1d(a).astype(np.float64) for a in np.broadcast_arrays(low, high))
        if self.low.size == 0:
            raise ValueError("low and high must have at least one dimension")
        bad = np.flatnonzero(~(self.low < self.high))
        if bad.size:
            j = bad[0]
            raise ValueError(f"low={self.low[j]:g} must be < high={self.high[j]:g} (dimension {j})")
        self.k = int(self.low.size)

    def unit(self, s) -> np.ndarray:
        """s̃ = (clip(s, low, high) − low) / (high − low), shape (..., k), from s of shape (..., k); for a scalar box
        (low and high numbers) s always has shape (...), one number per state, and s̃ has shape (..., 1)."""
        s = check_array("s", s)
        if self.scalar:
            s = s[..., None]
        if s.ndim == 0 or s.shape[-1] != self.k:
            raise ValueError(f"s has shape {s.shape}; expected (..., {self.k}) for a box of {self.k} dimension(s)")
        return (np.clip(s, self.low, self.high) - self.low) / (self.high - self.low)

    def per_dimension(self, name: str, value: int | Sequence[int], low: int) -> np.ndarray:
        """An integer ≥ low for every dimension: one for all, or a sequence of k (int64 array of shape (k,))."""
        values = [value] * self.k if np.ndim(value) == 0 else list(value)
        if len(values) != self.k:
            raise ValueError(f"{name}={shown(value)} has {len(values)} entries; the box has {self.k} dimension(s)")
        return np.array([check_int(name, v, low) for v in values], dtype=np.int64)


def check_output(what: str, shape: tuple[int, ...]) -> None:
    """check_memory for a float64 array of this shape, when it is large (small outputs skip the check's cost)."""
    nbytes = 8.0 * math.prod(shape)
    if nbytes > _CHECKED_BYTES:
        check_memory(what, nbytes)


def _allocate(what: str, shape: tuple[int, ...]) -> np.ndarray:
    """np.zeros(shape), after check_output."""
    check_output(what, shape)
    return np.zeros(shape)


def _exponents(order: int, k: int, basis: str) -> np.ndarray:
    """c_i ∈ {0, …, order}^k for all (order+1)^k i, in lexicographic order (the last dimension fastest)."""
    d = (order + 1) ** k
    shown_d = f"{d:,}" if d < 10**12 else f"{float(d):.3g}"
    check_memory(f"the {basis} basis of order {order} in {k} dimension(s) ((order+1)^k = {shown_d} features)",
                 8.0 * d * k)
    return np.indices((order + 1,) * k).reshape(k, d).T.astype(np.int64)


class StateAggregation:
    """State aggregation (§9.5, Example 9.1): each dimension j cut into groups_j equal intervals of the box,

        g_j(s) = min(⌊groups_j · s̃_j⌋, groups_j − 1),   x(s) = e_{g(s)},  d = Π_j groups_j,

    the one-hot vector of the cell g(s) = (g_1, …, g_k), flattened in C order (the last dimension fastest).
    s = high belongs to the last group; states outside the box are clipped onto it. With these features the
    gradient of v̂ is 1 for the state's group and 0 elsewhere, the book's case of eq. 9.7.
    """

    def __init__(self, groups: int | Sequence[int], low, high) -> None:
        self.box = Box(low, high)
        self.groups = self.box.per_dimension("groups", groups, 1)
        self.d = math.prod(int(g) for g in self.groups)
        self.bounds = (0.0, 1.0)
        check_memory(f"state aggregation into {self.d:,} groups", 8.0 * self.d)

    def group(self, s) -> np.ndarray:
        """g(s) as the flat index of the cell, int64 of shape (...)."""
        cell = np.minimum(np.floor(self.box.unit(s) * self.groups).astype(np.int64), self.groups - 1)
        return np.ravel_multi_index(np.moveaxis(cell, -1, 0), tuple(self.groups))

    def __call__(self, s) -> np.ndarray:
        g = self.group(s)
        x = _allocate("the aggregation features", (*g.shape, self.d))
        np.put_along_axis(x, g[..., None], 1.0, axis=-1)
        return x


class _ExponentBasis:
    """A basis over all c_i ∈ {0, …, order}^k of the box's k dimensions (Polynomial and Fourier)."""

    name = ""
    bounds = (0.0, 1.0)

    def __init__(self, order: int, low, high) -> None:
        self.box = Box(low, high)
        self.order = check_int("order", order, 0)
        self.exponents = _exponents(self.order, self.box.k, self.name)  # C[i] = c_i, shape (d, k)
        self.d = int(self.exponents.shape[0])


class Polynomial(_ExponentBasis):
    """The polynomial basis (§9.5.1, eq. 9.17) on the scaled state: all (order+1)^k monomials

        x_i(s) = Π_{j=1}^{k} s̃_j^{c_{i,j}},   c_i ∈ {0, …, order}^k,

    with c_i in lexicographic order (c_0 = 0, so x_0 = 1; in one dimension x(s) = (1, s̃, s̃², …, s̃^order)).
    States outside the box are clipped onto it.
    """

    name = "polynomial"
    bounds = (0.0, 1.0)  # s̃ ∈ [0, 1]^k

    def __call__(self, s) -> np.ndarray:
        s_tilde = self.box.unit(s)
        # powers[..., j, p] = s̃_j^p, then x_i = Π_j powers[..., j, c_{i,j}] (0⁰ = 1)
        powers = s_tilde[..., None] ** np.arange(self.order + 1)
        x = _allocate("the polynomial features", (*s_tilde.shape[:-1], self.d))
        x += 1.0
        for j in range(self.box.k):
            x *= powers[..., j, self.exponents[:, j]]
        return x


class Fourier(_ExponentBasis):
    """The Fourier cosine basis (§9.5.2, eq. 9.18) on the scaled state: all (order+1)^k features

        x_i(s) = cos(π s̃ᵀc_i),   c_i ∈ {0, …, order}^k,

    with c_i in lexicographic order (c_0 = 0, so x_0 = 1; in one dimension x_i(s) = cos(i π s̃)).
    States outside the box are clipped onto it.
    """

    name = "Fourier"
    bounds = (-1.0, 1.0)

    def __call__(self, s) -> np.ndarray:
        s_tilde = self.box.unit(s)
        check_output("the Fourier features", (*s_tilde.shape[:-1], self.d))
        return np.cos(np.pi * (s_tilde @ self.exponents.T))


def on_states(basis, mdp: FiniteMDP, positions: np.ndarray) -> np.ndarray:
    """X of shape (|S⁺|, d) for a finite MDP: row s = basis(positions[s]) for non-terminal s, zero rows for the
    terminals (approximators/features.py's convention, so v̂(terminal, w) = 0); positions has one entry (a
    scalar box) or k entries per state of S⁺, in the MDP's state order. Terminal positions are not evaluated.

        on_states(StateAggregation(10, 0.5, 1000.5), random_walk_1000(), np.arange(1002))  # Example 9.1
    """
    positions = check_array("positions", positions)
    if positions.ndim == 0 or positions.shape[0] != mdp.n_states:
        raise ValueError(f"positions has shape {positions.shape}; expected one row per state of S⁺ ({mdp.n_states})")
    X = _allocate("the feature matrix", (mdp.n_states, int(basis.d)))
    X[mdp.nonterminal] = basis(positions[mdp.nonterminal])
    return X
