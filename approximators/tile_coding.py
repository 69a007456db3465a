"""Tile coding (S&B §9.5.4): `tilings` offset grids over a box of states, one active tile per tiling.

Each tiling cuts every dimension j of the box into tiles of width w_j = (high_j − low_j) / tiles_j, with one tile
more than the box needs (tiles_j + 1), so that every displaced tiling still covers the box, as Sutton's tiles3 does
implicitly. Tiling t (t = 0, …, n − 1, n = tilings) is displaced by t/n of a tile width times an offset vector o:

    "asymmetric"  o = (1, 3, 5, …, 2k − 1)   the book's choice, after Miller and Glanz (1996), as in tiles3
    "uniform"     o = (1, 1, …, 1)           every tiling displaced along the diagonal, for comparison

so with f_j = s̃_j · tiles_j (the scaled state of approximators.bases.Box, in tile widths) the tile of s in tiling
t has the coordinates c_j = ⌊f_j + frac(t·o_j / n)⌋ ∈ {0, …, tiles_j}. (tiles3 computes ⌊(⌊n f_j⌋ + t·o_j) / n⌋,
the same partition of the box shifted by whole tiles.) The feature vector x(s) ∈ {0, 1}^size has a 1 at the index
of each of its n active tiles, so that (eq. 9.8 with sparse x)

    v̂(s, w) = wᵀx(s) = Σ_{t=0}^{n-1} w[i_t(s)],   ∇v̂(s, w) = x(s),

computed from the index array i(s) alone (`value`), never from a dense vector. The indices come from an index
hash table of a fixed `size`, like tiles3's IHT: each distinct (tiling, tile coordinates) gets the next free
index, in the order first seen; once the table is full, further coordinates are hashed into [0, size) onto an
index another tile owns already, and `collisions` counts them (each distinct coordinate once). The table is
state: one coder must serve every copy of an environment (a SyncVectorEnv shares it; separate processes would
number the tiles differently).

    coder = TileCoder(8, 8, low=(-1.2, -0.07), high=(0.6, 0.07), size=4096)   # the book's Mountain Car coding
    i = coder.active(states)          # (..., 8) int64 in [0, 4096)
    v = coder.value(w, states)        # Σ_t w[i_t]; w of shape (4096,) or (runs, 4096)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qapprox.approximators.bases import Box, check_output
from qapprox.envs.validation import check_array, check_choice, check_int

OFFSETS = ("asymmetric", "uniform")
_MAX_KEY = 2**62  # tilings · Π(tiles_j + 1) must stay below this: a (tiling, coordinates) key is one int64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: key · 2⁶⁴/φ mod 2⁶⁴, its high bits mod size


class TileCoder:
    """x(s) by tile coding with `tilings` tilings of `tiles` tiles per dimension over the box [low, high]
    (states outside the box are clipped onto it), indices from a hash table of `size` entries.

    As a basis (approximators.bases) it has d = size and coder(s) = dense(s).
    """

    def __init__(self, tilings: int, tiles: int | Sequence[int], low, high, size: int = 4096,
                 offsets: str = "asymmetric") -> None:
        self.box = Box(low, high)
        self.tilings = check_int("tilings", tilings, 1)
        self.tiles = self.box.per_dimension("tiles", tiles, 1)
        self.size = self.d = check_int("size", size, 1)
        self.offsets = check_choice("offsets", offsets, OFFSETS)
        self.bounds = (0.0, float(self.tilings))  # x_i(s) counts the tilings whose tile owns index i
        k = self.box.k
        self.shape = tuple(int(n) + 1 for n in self.tiles)  # tiles per dimension of one tiling
        self.tiles_per_tiling = math.prod(self.shape)
        if self.tilings * self.tiles_per_tiling >= _MAX_KEY:
            raise ValueError(f"tilings={self.tilings} × {self.tiles_per_tiling:.3g} tiles per tiling is too many "
                             f"tiles to number (at most {_MAX_KEY:.3g})")
        o = np.arange(1, 2 * k, 2) if self.offsets == "asymmetric" else np.ones(k, dtype=np.int64)
        t = np.arange(self.tilings)[:, None]
        self.displacement = (t * o % self.tilings) / self.tilings  # frac(t·o_j / n), shape (n, k), in tile widths
        # The hash table: _keys sorted, _indices[m] the index of _keys[m]; _assigned indices 0.._assigned-1 given out.
        self._keys = np.zeros(0, dtype=np.int64)
        self._indices = np.zeros(0, dtype=np.int64)
        self._assigned = 0
        self.collisions = 0

    # ------------------------------------------------------------------ the tiles of a state
    def coordinates(self, s) -> np.ndarray:
        """c_j = ⌊s̃_j · tiles_j + frac(t·o_j / n)⌋ of the tile of s in every tiling t: int64 (..., tilings, k)."""
        f = self.box.unit(s) * self.tiles
        return np.floor(f[..., None, :] + self.displacement).astype(np.int64)

    def active(self, s) -> np.ndarray:
        """i(s): the index of the active tile of s in each tiling, int64 (..., tilings), every one in [0, size)."""
        c = self.coordinates(s)
        keys = np.arange(self.tilings) * self.tiles_per_tiling + np.ravel_multi_index(np.moveaxis(c, -1, 0), self.shape)
        return self._lookup(keys.ravel()).reshape(keys.shape)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """The hash table's index for each key, the unseen keys added first (in the order first seen)."""
        m = np.searchsorted(self._keys, keys)
        known = m < self._keys.size
        known[known] = self._keys[m[known]] == keys[known]
        if not known.all():
            self._add(keys[~known])
            m = np.searchsorted(self._keys, keys)
        return self._indices[m]

    def _add(self, new: np.ndarray) -> None:
        """Give each distinct new key the next free index; once none is free, hash it and count the collision."""
        unique, first = np.unique(new, return_index=True)
        unique = unique[np.argsort(first)]  # tiles3 numbers the tiles in the order it first meets them
        free = min(self.size - self._assigned, unique.size)
        indices = np.empty(unique.size, dtype=np.int64)
        indices[:free] = np.arange(self._assigned, self._assigned + free)
        hashed = (unique[free:].astype(np.uint64) * _GOLDEN) >> np.uint64(32)
        indices[free:] = (hashed % np.uint64(self.size)).astype(np.int64)
        self._assigned += free
        self.collisions += unique.size - free
        keys = np.concatenate([self._keys, unique])
        order = np.argsort(keys)
        self._keys, self._indices = keys[order], np.concatenate([self._indices, indices])[order]

    def active_sa(self, s, a, n_actions: int) -> np.ndarray:
        """i(s, a) = a · size + i(s): the tiles of s in action a's own block of size `size`, int64 (..., tilings)
        in [0, n_actions · size), so that q̂(s, a, w) = Σ_t w[i_t(s, a)] = w_aᵀx(s) with w = (w_0, …, w_{|A|-1}).

        Blocks, not tiles3's way of adding a to the coordinates: the hash table (and its collisions) depend on s
        alone, one lookup i(s) serves every action (`q_values`, as ε-greedy needs), and it is the form of
        approximators.features.block_state_action_features and of the DQN agent's linear q̂ = w_aᵀx(s).
        a is an integer array that broadcasts against s's batch shape (...)."""
        n_actions = check_int("n_actions", n_actions, 1)
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.integer) or np.any(a < 0) or np.any(a >= n_actions):
            raise ValueError(f"a must be integer actions in [0, {n_actions - 1}]")
        return a[..., None] * self.size + self.active(s)

    # ------------------------------------------------------------------ v̂ and q̂ from the indices
    def value(self, w, s) -> np.ndarray:
        """v̂(s, w) = Σ_t w[i_t(s)]: w of shape (size,) and s (..., k) → (...); or w of shape (runs, size) and
        s (runs, ..., k) → (runs, ...), each run's states valued with its own weights."""
        w = self._weights(w, self.size)
        return _sum_active(w, self.active(s))

    def q_values(self, w, s, n_actions: int) -> np.ndarray:
        """q̂(s, a, w) = Σ_t w[a · size + i_t(s)] for every action a (active_sa's blocks): w of shape
        (n_actions · size,) or (runs, n_actions · size) as in `value` → (..., n_actions)."""
        n_actions = check_int("n_actions", n_actions, 1)
        w = self._weights(w, n_actions * self.size)
        i = self.active(s)[..., None, :] + self.size * np.arange(n_actions)[:, None]  # (..., |A|, tilings)
        return _sum_active(w, i)

    def dense(self, s) -> np.ndarray:
        """x(s) as a dense float64 vector (..., size): 1 at the active indices (2 where two tilings' tiles of one
        state were hashed onto one index), so that wᵀx(s) = value(w, s) always."""
        i = self.active(s)
        rows = math.prod(i.shape[:-1])
        check_output("the dense tile features", (rows, self.size))
        flat = (i.reshape(rows, self.tilings) + self.size * np.arange(rows)[:, None]).ravel()
        return np.bincount(flat, minlength=rows * self.size).astype(np.float64).reshape(*i.shape[:-1], self.size)

    __call__ = dense

    @staticmethod
    def _weights(w, d: int) -> np.ndarray:
        w = check_array("w", w)
        if w.ndim not in (1, 2) or w.shape[-1] != d:
            raise ValueError(f"w has shape {w.shape}; expected ({d},) or (runs, {d})")
        return w


def _sum_active(w: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Σ over the last axis of w[i]: w (D,) and i (..., n) → (...); w (runs, D) and i (runs, ..., n) → (runs, ...)."""
    if w.ndim == 1:
        return w[i].sum(-1)
    if i.ndim < 2 or i.shape[0] != w.shape[0]:
        raise ValueError(f"w holds {w.shape[0]} runs' weights but the states have shape {i.shape[:-1]}; "
                         "expected (runs, ...) with the same runs")
    runs = w.shape[0]
    return np.take_along_axis(w, i.reshape(runs, -1), axis=1).reshape(i.shape).sum(-1)
