"""Feature matrices of the random walks, whose states are positions on a line (S&B §9.5; Example 9.1).

A walk with n non-terminal states 1..n (terminals 0 and n + 1) has state s at position s, and the bases see the
box [0.5, n + 0.5]: state aggregation with 10 groups on the 1000-state walk is Example 9.1's groups of 100
states (1..100, 101..200, …); tiles are `tile_width` states wide, tiling t displaced by t/tilings of a tile
(Figure 9.10: 200 states wide, 50 tilings 4 states apart). Terminal rows are zero (approximators.features).

    X = walk_features(random_walk_1000(), "aggregation", groups=10)      # (1002, 10)
    X = walk_features(random_walk_1000(), "tiles", tilings=50)           # (1002, 50 · 6)
"""

from __future__ import annotations

import numpy as np

from qapprox.approximators.bases import Fourier, Polynomial, StateAggregation, on_states
from qapprox.approximators.features import state_features
from qapprox.approximators.tile_coding import TileCoder
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_choice, check_int

KINDS = ("one-hot", "aggregation", "polynomial", "fourier", "tiles")


def walk_features(mdp: FiniteMDP, kind: str, *, groups: int = 10, order: int = 5, tilings: int = 1,
                  tile_width: int = 200) -> np.ndarray:
    """X (|S⁺|, d) of the walk's states at their positions (module doc): one-hot, `groups` equal groups,
    polynomial or Fourier features of `order`, or `tilings` tilings of tiles `tile_width` states wide."""
    check_choice("features", kind, KINDS)
    if kind == "one-hot":
        return state_features(mdp)
    n = mdp.nonterminal.size
    low, high = 0.5, n + 0.5
    if kind == "aggregation":
        basis = StateAggregation(check_int("groups", groups, 1, n), low, high)
    elif kind in ("polynomial", "fourier"):
        basis = (Polynomial if kind == "polynomial" else Fourier)(order, low, high)
    else:
        tiles = n // check_int("tile_width", tile_width, 1, n)
        basis = TileCoder(tilings, tiles, low, high, size=check_int("tilings", tilings, 1) * (tiles + 1))
    return on_states(basis, mdp, np.arange(mdp.n_states))
