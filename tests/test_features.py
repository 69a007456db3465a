"""Feature maps: one-hot x(s), one-hot x(s, a), block x(s, a), and their shape checks."""

import numpy as np
import pytest

from qapprox.approximators.features import (
    block_state_action_features,
    check_features,
    one_hot,
    state_action_features,
    state_features,
)
from qapprox.envs import quiz9_mdp, random_walk


def test_one_hot():
    assert one_hot(2, 4).tolist() == [0, 0, 1, 0]
    assert one_hot(np.array([0, 3]), 4).tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]


def test_quiz9_state_features_are_the_quiz_indicators_and_terminal_is_zero():
    # x(s_A) = (1,0,0), x(s_B) = (0,1,0), x(s_C) = (0,0,1): v̂ = w1·1(s=s_A) + w2·1(s=s_B) + w3·1(s=s_C).
    assert state_features(quiz9_mdp()).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_random_walk_state_features_skip_both_terminals():
    X = state_features(random_walk(5))              # S⁺ = {left end, 1..5, right end}
    assert X.shape == (7, 5)
    assert X[0].tolist() == X[6].tolist() == [0] * 5
    assert X[1:6].tolist() == np.eye(5).tolist()


def test_state_action_one_hot():
    X_sa = state_action_features(quiz9_mdp())       # component i·|A| + a
    assert X_sa.shape == (4, 2, 6)
    assert X_sa[1, 1].tolist() == [0, 0, 0, 1, 0, 0]   # (s_B, a_1): 1·2 + 1 = 3
    assert X_sa[2, 0].tolist() == [0, 0, 0, 0, 1, 0]   # (s_C, a_0): 2·2 + 0 = 4
    assert not X_sa[3].any()                           # terminal
    assert X_sa[:3].reshape(6, 6).tolist() == np.eye(6).tolist()


def test_block_form_places_x_in_the_action_block():
    X = np.array([[0.5, 2.0], [1.0, -1.0]])
    blocks = block_state_action_features(X, 3)
    assert blocks.shape == (2, 3, 6)
    assert blocks[0, 1].tolist() == [0, 0, 0.5, 2.0, 0, 0]
    assert blocks[1, 2].tolist() == [0, 0, 0, 0, 1.0, -1.0]


def test_block_of_one_hot_is_a_permutation_of_the_state_action_one_hot():
    mdp = quiz9_mdp()
    blocks = block_state_action_features(state_features(mdp), mdp.n_actions)   # component a·d + i
    d = 3
    permutation = [a * d + i for i in range(d) for a in range(mdp.n_actions)]    # to i·|A| + a
    assert np.array_equal(blocks[..., permutation], state_action_features(mdp))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: check_features(np.zeros((3, 3)), 4), "features have shape (3, 3); expected (|S⁺|, d) = (4, d)"),
        (lambda: check_features(np.zeros((4, 3)), 4, 2), "expected (|S⁺|, |A|, d) = (4, 2, d)"),
        (lambda: block_state_action_features(np.zeros(3), 2), "state features have shape (3,)"),
        (lambda: block_state_action_features(np.zeros((3, 2)), 0), "n_actions=0"),
        (lambda: one_hot(4, 4), "index 4 is outside [0, 3]"),
    ],
)
def test_bad_input_is_a_one_line_value_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)
