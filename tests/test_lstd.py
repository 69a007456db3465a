"""LSTD (approximators.lstd): the Sherman-Morrison step, the batch mechanics, the expected statistics
giving w_TD, and sampled LSTD approaching w_TD within its computed sampling error."""

from __future__ import annotations

import numpy as np
import pytest

from qapprox.approximators.bases import Fourier, StateAggregation, on_states
from qapprox.approximators.features import state_features
from qapprox.approximators.fixed_points import fixed_points, td_fixed_point, td_system
from qapprox.approximators.lstd import LSTD, expected_lstd, lstd, sherman_morrison
from qapprox.approximators.traces import EpisodeBatch
from qapprox.envs import quiz9_mdp, random_walk, random_walk_1000


def walk_features(mdp, basis) -> np.ndarray:
    return on_states(basis, mdp, np.arange(mdp.n_states))


def test_one_sherman_morrison_step_is_the_inverse_of_eps_i_plus_the_rank_one_term():
    rng = np.random.default_rng(0)
    epsilon, gamma, d = 0.5, 0.9, 6
    x, x_next = rng.standard_normal((2, 8, d))                          # 8 runs at once
    learner = LSTD(8, d, epsilon=epsilon, gamma=gamma)
    learner.step(x, np.ones(8), x_next)
    direct = np.linalg.inv(epsilon * np.eye(d) + np.einsum("ni,nj->nij", x, x - gamma * x_next))
    assert np.abs(learner.A_inv - direct).max() < 1e-10
    assert np.abs(learner.w - np.einsum("nij,nj->ni", direct, x)).max() < 1e-10


def test_sherman_morrison_from_any_invertible_matrix():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5)) + 5 * np.eye(5)
    x, u = rng.standard_normal((2, 5))
    assert np.abs(sherman_morrison(np.linalg.inv(A), x, u) - np.linalg.inv(A + np.outer(x, u))).max() < 1e-10


def test_batched_lstd_equals_the_direct_solve_of_each_run_s_sums():
    # Runs in lockstep, episodes of different lengths padded with x = 0: run n's w after the last episode
    # is (εI + Σ_t x_t(x_t − x_{t+1})ᵀ)⁻¹ Σ_t R_{t+1} x_t over its own steps only.
    mdp = random_walk(19)
    X = walk_features(mdp, Fourier(3, 0.5, 19.5))
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 3, 4, np.random.default_rng(2))
    W = lstd(batch, X, epsilon=2.0)
    F = batch.feature_table(X)
    for n in range(3):
        A, b = 2.0 * np.eye(X.shape[1]), np.zeros(X.shape[1])
        for e in range(4):
            T = batch.length[n, e]
            x, x_next = F[batch.index[n, e, :T]], F[batch.index[n, e, 1 : T + 1]]
            A += x.T @ (x - x_next)
            b += batch.reward[n, e, :T] @ x
        assert np.abs(W[-1, n] - np.linalg.solve(A, b)).max() < 1e-8


@pytest.mark.parametrize("case", ["random-walk-1000 aggregation", "random-walk-19 fourier", "quiz9 one-hot"])
def test_lstd_on_the_expected_statistics_is_w_td(case):
    # expected_lstd sums the per-transition terms over (s, a, s') of the model; td_system writes A and b
    # as XᵀD(I − γP_π)X and XᵀD r_π: two routes to the same fixed point.
    if case.startswith("random-walk-1000"):
        mdp = random_walk_1000()
        X = walk_features(mdp, StateAggregation(10, 0.5, 1000.5))
    elif case.startswith("random-walk-19"):
        mdp = random_walk(19)
        X = walk_features(mdp, Fourier(5, 0.5, 19.5))
    else:
        mdp = quiz9_mdp()
        X = state_features(mdp)
    pi = mdp.uniform_policy()
    assert np.abs(expected_lstd(X, mdp, pi) - td_fixed_point(X, mdp, pi)).max() < 1e-10


def test_sampled_lstd_approaches_w_td_within_its_sampling_error():
    # 10 runs of 200 episodes each. The tolerance is LSTD's asymptotic standard deviation per run: with
    # g_e = Σ_t δ_t x_t (δ_t at w_TD) of each episode, E[g_e] = 0 and Cov(w) ≈ (E[T]A)⁻¹ Cov(g) (E[T]A)⁻ᵀ / episodes,
    # Cov(g) estimated from the sampled episodes. Every run ends within 4 of those of w_TD, and that is
    # close enough to tell w_TD from w_MC in the outer groups.
    mdp = random_walk(19)
    pi, X = mdp.uniform_policy(), walk_features(mdp, StateAggregation(5, 0.5, 19.5))
    exact = fixed_points(X, mdp, pi)
    runs, episodes = 10, 200
    batch = EpisodeBatch.sample(mdp, pi, runs, episodes, np.random.default_rng(0))
    W = lstd(batch, X)
    F = batch.feature_table(X)
    x, x_next = F[batch.index[..., :-1]], F[batch.index[..., 1:]]
    delta = batch.reward + (x_next - x) @ exact.w_td                   # δ_t at w_TD, 0 where padded
    g = (delta[..., None] * x).sum(axis=2).reshape(-1, X.shape[1])
    A_episode = np.linalg.inv(100.0 * td_system(X, mdp, pi)[0])        # E[T] = 100 steps on this walk
    sd = np.sqrt(np.diag(A_episode @ np.cov(g.T) @ A_episode.T) / episodes)
    assert (np.abs(W[-1] - exact.w_td) < 4 * sd).all()
    assert (4 * sd[[0, 4]] < np.abs(exact.w_mc - exact.w_td)[[0, 4]]).all()
    # and the error shrinks with the episodes
    assert np.sqrt(np.mean((W[-1] - exact.w_td) ** 2)) < 0.5 * np.sqrt(np.mean((W[9] - exact.w_td) ** 2))


def test_refusals():
    mdp = quiz9_mdp()
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 1, 2, np.random.default_rng(0), action_values=True)
    with pytest.raises(ValueError, match="state values"):
        lstd(batch, state_features(mdp))
    with pytest.raises(ValueError, match="epsilon"):
        LSTD(1, 3, epsilon=0.0)
