"""approximators.tile_coding: one active tile per tiling, tiles shared in proportion to distance (§9.5.4), the
coordinates of tiles3, the index hash table and its collisions by hand, sparse against dense v̂ and q̂, the
book's Mountain Car coding, the speed of a large batch, and refusals."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from qapprox.approximators.tile_coding import TileCoder

MOUNTAIN_CAR = dict(tilings=8, tiles=8, low=(-1.2, -0.07), high=(0.6, 0.07), size=4096)


def shared(coder: TileCoder, s1, s2) -> np.ndarray:
    """How many tilings put s1 and s2 in the same tile."""
    return (coder.active(s1) == coder.active(s2)).sum(-1)


# -------------------------------------------------------------- one tile per tiling
def test_every_state_activates_one_tile_in_each_tiling():
    coder = TileCoder(**MOUNTAIN_CAR)
    rng = np.random.default_rng(0)
    s = rng.uniform(coder.box.low, coder.box.high, size=(2_000, 2))
    i = coder.active(s)
    assert i.shape == (2_000, 8) and i.dtype == np.int64 and coder.collisions == 0
    # Column t holds only tiling t's tiles: no index appears in two columns (so within a row all 8 differ).
    columns = [np.unique(i[:, t]) for t in range(8)]
    assert np.unique(np.concatenate(columns)).size == sum(column.size for column in columns)
    np.testing.assert_array_equal(coder.dense(s).sum(-1), 8.0)


@pytest.mark.parametrize("offsets", ["uniform", "asymmetric"])
@pytest.mark.parametrize("n", [1, 4, 8, 50])
def test_nearby_points_share_tiles_in_proportion_to_their_distance_in_one_dimension(offsets, n):
    # Tile width w = 1 on [0, 8]. Tiling t's boundaries lie where n·s + t ∈ nℤ: together the tilings have one
    # boundary every w/n, each tiling one of every n. Points δ < w apart are separated by exactly the tilings with
    # a boundary in (s, s + δ]: ⌊n(s + δ)⌋ − ⌊n s⌋ of them (all different), so they share n minus that.
    coder = TileCoder(n, 8, 0.0, 8.0, size=10_000, offsets=offsets)
    rng = np.random.default_rng(n)
    s = rng.uniform(0.0, 7.0, size=500)
    delta = rng.uniform(0.0, 1.0, size=500)
    expected = n - (np.floor(n * (s + delta)) - np.floor(n * s))
    np.testing.assert_array_equal(shared(coder, s, s + delta), expected)
    assert np.all(np.abs(expected - np.round(n * (1 - delta))) <= 1)  # the book's "in proportion", ±1
    assert np.all(shared(coder, s, s + 1.0 + delta) == 0)  # a tile width or more apart: nothing shared


@pytest.mark.parametrize("axis", [0, 1])
def test_asymmetric_offsets_share_tiles_in_proportion_along_each_axis(axis):
    # In 2-D the asymmetric offsets displace tiling t by frac(t·(1, 3)/8) tile widths; 3t mod 8 runs over every
    # residue, so along either axis the boundaries are again one every w/8, and the 1-D count holds exactly.
    coder = TileCoder(8, (4, 5), low=(0.0, 0.0), high=(4.0, 5.0), size=10_000)
    np.testing.assert_array_equal(coder.displacement * 8, np.array([[t % 8, 3 * t % 8] for t in range(8)]))
    rng = np.random.default_rng(axis)
    s = rng.uniform(0.0, 3.0, size=(500, 2))
    delta = rng.uniform(0.0, 1.0, size=500)
    moved = s.copy()
    moved[:, axis] += delta
    expected = 8 - (np.floor(8 * moved[:, axis]) - np.floor(8 * s[:, axis]))
    np.testing.assert_array_equal(shared(coder, s, moved), expected)


def test_uniform_offsets_displace_every_tiling_along_the_diagonal():
    coder = TileCoder(4, 3, low=(0.0, 0.0, 0.0), high=(1.0, 1.0, 1.0), offsets="uniform")
    np.testing.assert_array_equal(coder.displacement, np.repeat(np.arange(4)[:, None] / 4, 3, axis=1))
    asymmetric = TileCoder(4, 3, low=(0.0, 0.0, 0.0), high=(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(asymmetric.displacement * 4, [[0, 0, 0], [1, 3, 1], [2, 2, 2], [3, 1, 3]])


def test_coordinates_are_those_of_sutton_s_tiles3_shifted_by_whole_tiles():
    """tiles3: q_j = ⌊n f_j⌋, coordinate j of tiling t = (q_j + t(2j + 1)) // n, f_j the state in tile widths."""
    n, tiles, low, high = 8, np.array([8, 8]), np.array([-1.2, -0.07]), np.array([0.6, 0.07])
    coder = TileCoder(n, 8, low, high)
    rng = np.random.default_rng(3)
    for s in rng.uniform(low, high, size=(50, 2)):
        q = [math.floor(n * f) for f in (s - low) / (high - low) * tiles]
        tiles3 = np.array([[(q_j + t * (2 * j + 1)) // n for j, q_j in enumerate(q)] for t in range(n)])
        shift = np.array([[t * (2 * j + 1) // n for j in range(2)] for t in range(n)])
        np.testing.assert_array_equal(coder.coordinates(s), tiles3 - shift)


# -------------------------------------------------------------- the index hash table
def golden_hash(key: int, size: int) -> int:
    return ((key * 0x9E3779B97F4A7C15) % 2**64 >> 32) % size


def test_a_full_table_hashes_new_tiles_and_counts_each_collision_once():
    # 2 tilings of 2 tiles on [0, 1] (3 tiles per tiling with the extra one): tiling t's tile of s is
    # c = ⌊2s + t/2⌋ and its key t·3 + c. The states below meet keys 0, 3 | 0, 4 | 1, 4 | 1, 5 | 2, 5:
    # the first three distinct keys (0, 3, 4) get indices 0, 1, 2; the table (size 3) is then full, and 1, 5, 2
    # are hashed into [0, 3), three collisions.
    coder = TileCoder(2, 2, 0.0, 1.0, size=3)
    s = np.array([0.0, 0.3, 0.6, 0.9, 1.0])
    h1, h5, h2 = (golden_hash(key, 3) for key in (1, 5, 2))
    expected = np.array([[0, 1], [0, 2], [h1, 2], [h1, h5], [h2, h5]])
    np.testing.assert_array_equal(coder.active(s), expected)
    assert coder.collisions == 3
    np.testing.assert_array_equal(coder.active(s[::-1]), expected[::-1])  # known tiles keep their indices
    assert coder.collisions == 3  # and are not counted again
    coder.active(0.45)  # tiling 1: ⌊0.9 + 0.5⌋ = 1, key 3 + 1 = 4 (known); tiling 0: key 0 (known)
    assert coder.collisions == 3
    coder.active(0.8)  # tiling 1: ⌊1.6 + 0.5⌋ = 2, key 5 known; tiling 0: key 1 known
    assert coder.collisions == 3


def test_with_room_the_tiles_are_numbered_in_the_order_first_seen_like_tiles3():
    coder = TileCoder(2, 2, 0.0, 1.0, size=100)
    np.testing.assert_array_equal(coder.active(np.array([0.0, 0.3, 0.6, 0.9, 1.0])),
                                  [[0, 1], [0, 2], [3, 2], [3, 4], [5, 4]])
    assert coder.collisions == 0


def test_a_tiny_table_never_returns_an_index_beyond_its_size():
    coder = TileCoder(8, (10, 10), low=(0.0, 0.0), high=(1.0, 1.0), size=64)
    rng = np.random.default_rng(1)
    s = rng.uniform(-0.1, 1.1, size=(5_000, 2))
    i = coder.active(s)
    assert i.min() >= 0 and i.max() < 64
    c = coder.coordinates(s)  # (5000, 8, 2): every distinct (tiling, coordinates) beyond the 64 first collided
    distinct = np.unique(np.concatenate([np.broadcast_to(np.arange(8)[:, None], c.shape[:-1] + (1,)), c], -1)
                         .reshape(-1, 3), axis=0).shape[0]
    assert distinct > 64 and coder.collisions == distinct - 64
    assert coder.dense(s).sum(-1).tolist() == [8.0] * 5_000  # a collision counts twice in x(s): still 8 in all


# -------------------------------------------------------------- v̂ and q̂, sparse and dense
def test_sparse_and_dense_values_agree_with_and_without_collisions():
    rng = np.random.default_rng(2)
    for size in (4096, 16):
        coder = TileCoder(8, (4, 4), low=(0.0, 0.0), high=(1.0, 1.0), size=size)
        s = rng.uniform(0.0, 1.0, size=(3, 7, 2))
        w = rng.normal(size=size)
        np.testing.assert_allclose(coder.value(w, s), coder.dense(s) @ w, rtol=1e-13)
        W = rng.normal(size=(3, size))  # three runs, each valuing its own 7 states
        np.testing.assert_allclose(coder.value(W, s), np.einsum("rmd,rd->rm", coder.dense(s), W), rtol=1e-13)
        assert coder.value(W, s).shape == (3, 7) and coder(s).shape == (3, 7, size) and coder.d == size
        assert (coder.collisions > 0) == (size == 16)  # 8 tilings of 5 × 5 tiles do not fit in 16


def test_state_action_tiles_are_the_state_tiles_in_the_action_s_block():
    coder = TileCoder(**MOUNTAIN_CAR)
    rng = np.random.default_rng(4)
    s = rng.uniform(coder.box.low, coder.box.high, size=(6, 2))
    a = np.array([0, 1, 2, 2, 1, 0])
    np.testing.assert_array_equal(coder.active_sa(s, a, 3), a[:, None] * 4096 + coder.active(s))
    w = rng.normal(size=3 * 4096)
    q = coder.q_values(w, s, 3)
    expected = np.stack([coder.value(w[b * 4096:(b + 1) * 4096], s) for b in range(3)], -1)
    np.testing.assert_allclose(q, expected, rtol=1e-13)
    np.testing.assert_allclose(q[np.arange(6), a], w[coder.active_sa(s, a, 3)].sum(-1), rtol=1e-13)
    W = rng.normal(size=(2, 3 * 4096))  # two runs, three states each
    q_runs = coder.q_values(W, s.reshape(2, 3, 2), 3)
    assert q_runs.shape == (2, 3, 3)
    np.testing.assert_allclose(q_runs[1], coder.q_values(W[1], s[3:], 3), rtol=1e-13)


# -------------------------------------------------------------- the book's Mountain Car coding
def test_mountain_car_coding_gives_eight_indices_below_4096_for_every_state_fast():
    coder = TileCoder(**MOUNTAIN_CAR)
    rng = np.random.default_rng(5)
    corners = np.array([[-1.2, -0.07], [-1.2, 0.07], [0.6, -0.07], [0.6, 0.07]])
    s = np.concatenate([corners, rng.uniform(coder.box.low, coder.box.high, size=(100_000, 2))])
    start = time.perf_counter()
    i = coder.active(s)
    seconds = time.perf_counter() - start
    assert i.shape == (100_004, 8) and i.min() >= 0 and i.max() < 4096
    assert np.all(np.diff(np.sort(i, axis=1), axis=1) > 0)  # eight different tiles
    assert coder.collisions == 0 and coder._assigned <= 8 * 9 * 9  # 8 tilings of 9 × 9 tiles fit in 4096
    assert seconds < 1.0, f"active() on 100,000 states took {seconds:.2f} s"


# -------------------------------------------------------------- refusals
@pytest.mark.parametrize("build, message", [
    (lambda: TileCoder(0, 8, 0.0, 1.0), "tilings=0 must be an integer ≥ 1"),
    (lambda: TileCoder(8, 0, 0.0, 1.0), "tiles=0 must be an integer ≥ 1"),
    (lambda: TileCoder(8, (8, 8, 8), (0, 0), (1, 1)), "tiles=.* has 3 entries; the box has 2"),
    (lambda: TileCoder(8, 8, 0.0, 1.0, size=0), "size=0 must be an integer ≥ 1"),
    (lambda: TileCoder(8, 8, 0.0, 1.0, offsets="random"), "offsets='random' is not one of asymmetric, uniform"),
    (lambda: TileCoder(8, 8, 1.0, 0.0), "low=1 must be < high=0"),
    (lambda: TileCoder(8, 2**20, np.zeros(4), np.ones(4)), "too many tiles to number"),
    (lambda: TileCoder(8, 8, 0.0, 1.0).active_sa(0.5, 3, 3), r"integer actions in \[0, 2\]"),
    (lambda: TileCoder(8, 8, 0.0, 1.0).active_sa(0.5, 0.0, 3), r"integer actions in \[0, 2\]"),
    (lambda: TileCoder(8, 8, 0.0, 1.0, size=16).value(np.zeros(15), 0.5), r"expected \(16,\) or \(runs, 16\)"),
    (lambda: TileCoder(8, 8, 0.0, 1.0, size=16).value(np.zeros((2, 16)), np.zeros(3)), "2 runs' weights"),
    (lambda: TileCoder(8, 8, 0.0, 1.0, size=16).q_values(np.zeros(16), 0.5, 2), r"expected \(32,\)"),
])
def test_bad_arguments_are_refused_in_one_line(build, message):
    with pytest.raises(ValueError, match=message):
        build()
