"""approximators.nn_regression: a network fitted to Monte Carlo returns on Quiz 9 approaches the
DP-exact v_π and q_π; the optimiser reaches the least-squares minimum; logging; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qapprox.approximators.features import state_action_features, state_features
from qapprox.approximators.monte_carlo import LinearRegression, regression_data
from qapprox.approximators.nn_regression import NeuralRegression
from qapprox.envs import make_mdp

N_EPISODES = 3000


@pytest.fixture(scope="module")
def quiz9():
    """Quiz 9 under the uniform policy: DP-exact v_π, q_π and every-visit training sets with one-hot x."""
    mdp = make_mdp("quiz9")
    pi = mdp.uniform_policy()
    v_pi, q_pi = mdp.evaluate(pi)
    episodes = mdp.episodes(pi, N_EPISODES, np.random.default_rng(0))
    X, X_sa = state_features(mdp), state_action_features(mdp)  # X[s] = x(s), X_sa[s, a] = x(s, a)
    states = mdp.nonterminal
    return {
        "mdp": mdp, "states": states,
        "v": regression_data(episodes, X, mdp.gamma),                        # ⟨x(S_t), G_t⟩
        "q": regression_data(episodes, X_sa, mdp.gamma, action_values=True),  # ⟨x(S_t, A_t), G_t⟩
        "x_v": X[states], "v_pi": v_pi[states],                               # row i: x(s) = e_i
        "x_q": X_sa[states].reshape(-1, X_sa.shape[-1]),                      # row i·|A| + a: x(s, a)
        "q_pi": q_pi[states].ravel(),
    }


def one_hot_least_squares(X: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """On one-hot rows, J is minimised by the mean return Ḡ_k of each component k. Returns Ḡ_k,
    its standard error σ_k/√n_k, and J_min = (1/m) Σ_i (G_i − Ḡ_{k(i)})²."""
    counts = X.sum(0)
    G_bar = X.T @ G / counts
    squared = (G - X @ G_bar) ** 2
    return G_bar, np.sqrt(X.T @ squared / counts / counts), float(squared.mean())


def test_fitted_v_approaches_dp_exact_v_pi(quiz9):
    X, G = quiz9["v"]
    model = NeuralRegression(hidden=(32,), optimizer="sgd", alpha=0.01, batch_size=128, epochs=100, seed=0).fit(X, G)
    v_hat = model.predict(quiz9["x_v"])
    G_bar, standard_error, J_min = one_hot_least_squares(X, G)
    # Optimisation: mini-batch SGD with a constant α hovers within 0.3 of the minimiser Ḡ_s (measured ≤ 0.16).
    np.testing.assert_array_less(np.abs(v_hat - G_bar), 0.3)
    # Estimation: Ḡ_s is within 4 standard errors of v_π(s); together, |v̂ − v_π| ≤ 4 SE + 0.3.
    np.testing.assert_array_less(np.abs(v_hat - quiz9["v_pi"]), 4 * standard_error + 0.3)
    # J(w) never goes below the least-squares minimum, and ends close to it.
    assert J_min - 1e-4 <= model.costs[-1] <= J_min + 0.05
    assert model.costs[-1] < model.costs[0]


def test_fitted_q_approaches_dp_exact_q_pi_with_adam(quiz9):
    X, G = quiz9["q"]
    model = NeuralRegression(hidden=(32,), optimizer="adam", alpha=0.001, batch_size=128, epochs=100, seed=0).fit(X, G)
    q_hat = model.predict(quiz9["x_q"])
    G_bar, standard_error, J_min = one_hot_least_squares(X, G)
    np.testing.assert_array_less(np.abs(q_hat - G_bar), 0.1)  # measured ≤ 0.04
    np.testing.assert_array_less(np.abs(q_hat - quiz9["q_pi"]), 4 * standard_error + 0.1)
    assert J_min - 1e-4 <= model.costs[-1] <= J_min + 0.01


def test_gradient_descent_on_the_whole_set_matches_linear_least_squares(quiz9):
    """hidden=() is ŷ = wᵀx + b; with s = m every step is w := w − α∇J(w), and it reaches the
    least-squares fit of the linear regression of returns (the per-state mean return Ḡ_s)."""
    X, G = quiz9["v"]
    model = NeuralRegression(hidden=(), optimizer="sgd", alpha=0.5, batch_size=G.size, epochs=300).fit(X, G)
    least_squares = LinearRegression(method="lstsq").fit(X, G)
    G_bar, _, J_min = one_hot_least_squares(X, G)
    np.testing.assert_allclose(least_squares.predict(quiz9["x_v"]), G_bar, atol=1e-12)
    np.testing.assert_allclose(model.predict(quiz9["x_v"]), G_bar, atol=1e-3)
    assert abs(model.costs[-1] - J_min) < 1e-4
    assert np.all(np.diff(model.costs) <= 1e-5)  # full-batch GD with a small enough α: J never rises


class RecordingWriter:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def test_cost_per_epoch_is_logged_and_fits_are_reproducible():
    X = np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]
    G = np.array([1.0, 2.0, 3.0, 1.5, 2.5, 3.5, 0.5])
    writer = RecordingWriter()
    rng_state = torch.get_rng_state()
    model = NeuralRegression(hidden=(4,), batch_size=1, epochs=5, seed=3, writer=writer).fit(X, G)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global torch RNG is left alone
    assert [(tag, step) for tag, _, step in writer.scalars] == [("cost/mse", epoch) for epoch in range(1, 6)]
    assert [value for _, value, _ in writer.scalars] == model.costs
    # J(w) as logged is the mean squared error of the fitted network on the whole set.
    assert model.costs[-1] == pytest.approx(np.mean((model.predict(X) - G) ** 2), rel=1e-5)
    again = NeuralRegression(hidden=(4,), batch_size=1, epochs=5, seed=3).fit(X, G)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    other = NeuralRegression(hidden=(4,), batch_size=1, epochs=5, seed=4).fit(X, G)
    assert not np.array_equal(other.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NeuralRegression(alpha=0.0), "alpha=0.0 must be > 0"),
        (lambda: NeuralRegression(alpha=-0.1), "alpha=-0.1 must be > 0"),
        (lambda: NeuralRegression(batch_size=0), "batch_size=0"),
        (lambda: NeuralRegression(epochs=0), "epochs=0"),
        (lambda: NeuralRegression(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; allowed: sgd, adam"),
        (lambda: NeuralRegression(activation="swish"), "unknown activation 'swish'"),
        (lambda: NeuralRegression(hidden=(0,)), "units=0"),
        (lambda: NeuralRegression(batch_size=5).fit(np.eye(3), np.zeros(3)), "batch_size=5 is larger than the data set (m=3)"),
        (lambda: NeuralRegression(batch_size=2).fit(np.zeros(3), np.zeros(3)), "X has shape (3,)"),
        (lambda: NeuralRegression(batch_size=2).fit(np.eye(3), np.zeros(4)), "G has shape (4,)"),
        (lambda: NeuralRegression(batch_size=2).fit(np.eye(3), np.array([0.0, np.nan, 1.0])), "finite"),
        (lambda: NeuralRegression().predict(np.eye(3)), "not fitted"),
        (lambda: NeuralRegression(batch_size=1, epochs=1).fit(np.eye(3), np.zeros(3)).predict(np.eye(4)), "expected (n, 3)"),
    ],
)
def test_bad_input_is_one_line_value_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)
