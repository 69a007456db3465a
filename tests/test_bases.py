"""approximators.bases: Example 9.1's groups of 100 states, hand-computed polynomial and Fourier features, the
shapes of a batch, clipping to the box, the feature matrix of a finite MDP, and one-line refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qapprox.approximators.bases import Fourier, Polynomial, StateAggregation, on_states
from qapprox.envs.quiz import quiz9_mdp
from qapprox.envs.random_walk import random_walk_1000


# -------------------------------------------------------------- state aggregation
@pytest.mark.parametrize("low, high", [(0.5, 1000.5), (1, 1000)])
def test_example_9_1_ten_groups_of_one_hundred_consecutive_states(low, high):
    aggregation = StateAggregation(10, low, high)
    s = np.arange(1, 1001)
    assert aggregation.d == 10
    np.testing.assert_array_equal(aggregation.group(s), (s - 1) // 100)  # 1..100 → 0, 101..200 → 1, …
    assert aggregation.group(100) == 0 and aggregation.group(101) == 1 and aggregation.group(1000) == 9
    X = on_states(aggregation, random_walk_1000(), np.arange(1002))
    assert X.shape == (1002, 10)
    assert not X[0].any() and not X[1001].any()  # the two terminals: zero rows
    np.testing.assert_array_equal(X[1:1001], np.eye(10)[(s - 1) // 100])
    np.testing.assert_array_equal(X.sum(axis=0), 100.0)


def test_aggregation_in_two_dimensions_is_the_one_hot_of_the_cell_in_c_order():
    aggregation = StateAggregation((2, 3), low=(0.0, 0.0), high=(1.0, 3.0))
    assert aggregation.d == 6
    s = np.array([[0.6, 2.5],    # cell (1, 2) → 1·3 + 2 = 5
                  [0.0, 0.0],    # low: cell (0, 0)
                  [1.0, 3.0],    # high belongs to the last group: (1, 2)
                  [0.49, 1.0],   # (0, 1): 1.0 is the first point of the second third
                  [2.0, -1.0]])  # outside: clipped to (1.0, 0.0), cell (1, 0)
    np.testing.assert_array_equal(aggregation.group(s), [5, 0, 5, 1, 3])
    np.testing.assert_array_equal(aggregation(s), np.eye(6)[[5, 0, 5, 1, 3]])


# -------------------------------------------------------------- polynomials and Fourier, by hand
def test_polynomial_features_by_hand():
    # One dimension on [2, 4]: s = 3 → s̃ = 1/2, x = (1, s̃, s̃², s̃³).
    np.testing.assert_allclose(Polynomial(3, 2.0, 4.0)(3.0), [1.0, 0.5, 0.25, 0.125])
    # Two dimensions on [0, 1] × [0, 2]: s = (0.5, 1) → s̃ = (1/2, 1/2); c_i in lexicographic order
    # (0,0) (0,1) (0,2) (1,0) (1,1) (1,2) (2,0) (2,1) (2,2), x_i = s̃_1^{c_i1} s̃_2^{c_i2}.
    basis = Polynomial(2, low=[0.0, 0.0], high=[1.0, 2.0])
    assert basis.d == 9 and basis.exponents.tolist()[:4] == [[0, 0], [0, 1], [0, 2], [1, 0]]
    np.testing.assert_allclose(basis(np.array([0.5, 1.0])), [1, .5, .25, .5, .25, .125, .25, .125, .0625])
    # s = (0.2, 2) → s̃ = (0.2, 1): x = (1, 1, 1, .2, .2, .2, .04, .04, .04); 0⁰ = 1 at s = low.
    np.testing.assert_allclose(basis(np.array([0.2, 2.0])), [1, 1, 1, .2, .2, .2, .04, .04, .04])
    np.testing.assert_array_equal(basis(np.array([0.0, 0.0])), np.eye(9)[0])
    assert Polynomial(0, 0.0, 1.0).d == 1


def test_fourier_features_by_hand():
    # One dimension: x_i(s) = cos(i π s̃); at s̃ = 1/3: cos 0, cos π/3, cos 2π/3, cos π.
    np.testing.assert_allclose(Fourier(3, 0.0, 1.0)(1 / 3), [1.0, 0.5, -0.5, -1.0], atol=1e-15)
    # Two dimensions, order 1 on [0, 2] × [0, 3]: s = (1, 1) → s̃ = (1/2, 1/3);
    # c = (0,0) (0,1) (1,0) (1,1): cos 0, cos π/3, cos π/2, cos 5π/6.
    basis = Fourier(1, low=[0.0, 0.0], high=[2.0, 3.0])
    assert basis.d == 4
    np.testing.assert_allclose(basis(np.array([1.0, 1.0])), [1.0, 0.5, 0.0, -math.sqrt(3) / 2], atol=1e-15)
    assert Fourier(4, [0.0] * 3, [1.0] * 3).d == 5**3


# -------------------------------------------------------------- shapes, the box, the bounds
@pytest.mark.parametrize("make", [lambda lo, hi: StateAggregation(3, lo, hi), lambda lo, hi: Polynomial(2, lo, hi),
                                  lambda lo, hi: Fourier(2, lo, hi)])
def test_batch_shapes_clipping_and_bounds(make):
    rng = np.random.default_rng(0)
    basis = make([0.0, -1.0], [1.0, 1.0])
    s = rng.uniform(-2.0, 2.0, size=(4, 5, 2))
    x = basis(s)
    assert x.shape == (4, 5, basis.d) and x.dtype == np.float64
    np.testing.assert_array_equal(x, basis(np.clip(s, [0.0, -1.0], [1.0, 1.0])))  # outside = clipped onto the box
    np.testing.assert_array_equal(x[2, 3], basis(s[2, 3]))  # one state at a time is the same
    assert basis.bounds[0] <= x.min() and x.max() <= basis.bounds[1]
    scalar = make(0.0, 1.0)  # numbers for low and high: s has one number per state
    assert scalar(0.25).shape == (scalar.d,) and scalar(np.zeros((2, 3))).shape == (2, 3, scalar.d)
    one_dimensional = make([0.0], [1.0])  # a box of shape (1,): s of shape (..., 1)
    np.testing.assert_array_equal(one_dimensional(np.array([[0.25], [0.75]])), scalar(np.array([0.25, 0.75])))


def test_on_states_with_k_coordinates_per_state():
    mdp = quiz9_mdp()  # S⁺ = s_A, s_B, s_C, terminal
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [9.0, 9.0]])  # the terminal's is never evaluated
    basis = Polynomial(1, low=[0.0, 0.0], high=[1.0, 1.0])
    X = on_states(basis, mdp, positions)
    np.testing.assert_array_equal(X, [[1, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])


# -------------------------------------------------------------- refusals
@pytest.mark.parametrize("build, message", [
    (lambda: StateAggregation(0, 0.0, 1.0), "groups=0 must be an integer ≥ 1"),
    (lambda: StateAggregation(2.5, 0.0, 1.0), "groups=2.5 must be an integer ≥ 1"),
    (lambda: StateAggregation([2, 2], 0.0, 1.0), "has 2 entries; the box has 1 dimension"),
    (lambda: Polynomial(-1, 0.0, 1.0), "order=-1 must be an integer ≥ 0"),
    (lambda: Fourier(True, 0.0, 1.0), "order=True must be an integer ≥ 0"),
    (lambda: Fourier(2, 1.0, 1.0), "low=1 must be < high=1"),
    (lambda: Fourier(2, [0.0, 2.0], [1.0, 1.0]), r"low=2 must be < high=1 \(dimension 1\)"),
    (lambda: Fourier(2, 0.0, np.inf), "high=inf must be a finite number"),
    (lambda: Fourier(2, [0.0, 0.0], [1.0, 1.0, 1.0]), "low has 2 dimensions and high 3"),
    (lambda: Fourier(2, np.zeros((2, 2)), np.ones((2, 2))), "numbers or 1-D arrays"),
    (lambda: Fourier(50, np.zeros(20), np.ones(20)), r"\(order\+1\)\^k = 1.42e\+34 features\) needs"),
    (lambda: Fourier(2, [0.0, 0.0], [1.0, 1.0])(np.zeros(3)), r"s has shape \(3,\); expected \(..., 2\)"),
    (lambda: Fourier(2, 0.0, 1.0)(np.nan), "s=nan must be a finite number"),
    (lambda: on_states(Fourier(2, 0.0, 1.0), quiz9_mdp(), np.zeros(3)), "one row per state of S⁺ \\(4\\)"),
])
def test_bad_arguments_are_refused_in_one_line(build, message):
    with pytest.raises(ValueError, match=message):
        build()
