"""The random walks' feature matrices (approximators.walk_features): states at their positions 1..n on [0.5, n + 0.5]."""

import numpy as np
import pytest

from qapprox.approximators.walk_features import walk_features
from qapprox.envs import random_walk, random_walk_1000

WALK = random_walk_1000()


def test_example_9_1_groups_of_100_states_and_zero_terminal_rows():
    X = walk_features(WALK, "aggregation", groups=10)
    assert X.shape == (1002, 10) and not X[[0, 1001]].any()  # the terminals 0 and 1001
    assert [int(np.argmax(X[s])) for s in (1, 100, 101, 200, 901, 1000)] == [0, 0, 1, 1, 9, 9]
    assert (X[1:1001].sum(axis=1) == 1).all()


def test_figure_9_10_tilings_are_200_states_wide_and_4_states_apart():
    X = walk_features(WALK, "tiles", tilings=50)
    assert X.shape == (1002, 50 * 6) and (X[1:1001].sum(axis=1) == 50).all() and not X[[0, 1001]].any()
    shared = X[1:1001] @ X[1:1001].T  # tiles in common
    assert shared[499, 503] == 49 and shared[499, 499 + 200] == 0  # 4 states: one tiling apart; 200: none
    one = walk_features(WALK, "tiles", tilings=1)
    assert (one[1:201].argmax(1) == one[1].argmax()).all() and one[201].argmax() != one[1].argmax()


@pytest.mark.parametrize("kind, d", [("one-hot", 19), ("polynomial", 6), ("fourier", 6)])
def test_other_kinds_on_the_19_state_walk(kind, d):
    X = walk_features(random_walk(19), kind, order=5)
    assert X.shape == (21, d) and not X[[0, 20]].any()
    if kind != "one-hot":
        assert X[1:20, 0].tolist() == [1.0] * 19  # the constant feature c = 0


def test_bad_settings_are_one_line():
    for call, message in ((lambda: walk_features(WALK, "tile"), "features='tile'"),
                          (lambda: walk_features(WALK, "aggregation", groups=1001), "groups=1001"),
                          (lambda: walk_features(WALK, "tiles", tile_width=0), "tile_width=0")):
        with pytest.raises(ValueError, match=message):
            call()
