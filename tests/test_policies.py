"""ε-greedy (approximators.policies): its action probabilities, ties, shapes, and the forward pass it skips."""

from __future__ import annotations

import numpy as np
import pytest

from qapprox.approximators.policies import epsilon_greedy, epsilon_greedy_probabilities

ROWS = 200_000


def frequencies(actions: np.ndarray, n_actions: int) -> np.ndarray:
    return np.bincount(actions.ravel(), minlength=n_actions) / actions.size


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_probabilities_are_one_minus_epsilon_plus_epsilon_over_the_actions(epsilon):
    q = np.tile([1.0, 3.0, 2.0], (ROWS, 1))  # a* = 1
    actions = epsilon_greedy(q, epsilon, np.random.default_rng(0))
    expected = [epsilon / 3, 1 - epsilon + epsilon / 3, epsilon / 3]
    np.testing.assert_allclose(frequencies(actions, 3), expected, atol=0.005)


@pytest.mark.parametrize("random_ties, greedy_mass", [(True, [0.5, 0.5]), (False, [1.0, 0.0])])
def test_ties_share_the_greedy_mass_or_go_to_the_first_maximiser(random_ties, greedy_mass):
    epsilon, q = 0.2, np.tile([2.0, 5.0, 5.0, 1.0], (ROWS, 1))  # A* = {1, 2}
    actions = epsilon_greedy(q, epsilon, np.random.default_rng(1), random_ties=random_ties)
    expected = np.full(4, epsilon / 4)
    expected[1:3] += (1 - epsilon) * np.array(greedy_mass)
    np.testing.assert_allclose(frequencies(actions, 4), expected, atol=0.005)


def test_rows_may_have_any_leading_shape_and_a_single_row_gives_one_action():
    q = np.random.default_rng(2).normal(size=(2, 3, 4))
    assert epsilon_greedy(q, 0.5, np.random.default_rng(0)).shape == (2, 3)
    np.testing.assert_array_equal(epsilon_greedy(q, 0.0, np.random.default_rng(0)), q.argmax(-1))
    single = epsilon_greedy(q[0, 0], 0.0, np.random.default_rng(0))
    assert single.shape == () and int(single) == q[0, 0].argmax()


def test_values_are_computed_only_when_some_row_acts_greedily():
    calls = []

    def forward() -> np.ndarray:
        calls.append(1)
        return np.tile([0.0, 1.0], (5, 1))

    actions = epsilon_greedy(forward, 1.0, np.random.default_rng(0), shape=(5, 2))
    assert calls == [] and actions.shape == (5,)  # every row explored: no forward pass
    np.testing.assert_array_equal(epsilon_greedy(forward, 0.0, np.random.default_rng(0), shape=(5, 2)), np.ones(5))
    assert calls == [1]


def test_the_draws_come_in_the_documented_order():
    # with random ties: one uniform per value, one per row (explore), then one action per row if any explores
    q, epsilon = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 0.0]]), 0.5
    for seed in range(20):
        reference = np.random.default_rng(seed)
        ties = reference.random(q.shape)
        explore = reference.random(3) < epsilon
        expected = np.argmax((q == q.max(-1, keepdims=True)) * (1.0 + ties), axis=-1)
        if explore.any():
            expected = np.where(explore, reference.integers(3, size=3), expected)
        rng = np.random.default_rng(seed)
        np.testing.assert_array_equal(epsilon_greedy(q, epsilon, rng, random_ties=True), expected)
        assert rng.random() == reference.random()  # nothing more was drawn


def test_probabilities_are_exact_with_the_first_maximiser_or_ties_split():
    # ε = 0.5, |A| = 4: ε/|A| = 0.125 off A*; A* = {1, 3} in the first row, {0} in the second
    q = np.array([[0.0, 2.0, 1.0, 2.0], [5.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(epsilon_greedy_probabilities(q, 0.5),
                                  [[0.125, 0.625, 0.125, 0.125], [0.625, 0.125, 0.125, 0.125]])
    np.testing.assert_array_equal(epsilon_greedy_probabilities(q, 0.5, random_ties=True),
                                  [[0.125, 0.375, 0.125, 0.375], [0.625, 0.125, 0.125, 0.125]])
    np.testing.assert_array_equal(epsilon_greedy_probabilities(q, 0.0, random_ties=True), [[0, 0.5, 0, 0.5], [1, 0, 0, 0]])
    np.testing.assert_array_equal(epsilon_greedy_probabilities(q, 1.0), np.full((2, 4), 0.25))
    np.testing.assert_array_equal(epsilon_greedy_probabilities(q[0], 0.5), [0.125, 0.625, 0.125, 0.125])  # one row


@pytest.mark.parametrize("random_ties", [False, True])
def test_the_probabilities_are_those_epsilon_greedy_samples(random_ties):
    q = np.tile([2.0, 0.0, 2.0], (ROWS, 1))
    actions = epsilon_greedy(q, 0.3, np.random.default_rng(2), random_ties=random_ties)
    np.testing.assert_allclose(frequencies(actions, 3), epsilon_greedy_probabilities(q[0], 0.3, random_ties=random_ties),
                               atol=0.005)
