"""approximators.tile_control: one SARSA step and one n-step update against the hand-computed targets, replacing
and accumulating traces by hand (and against TDLambda on dense features), batched runs equal the same runs done one
at a time, Mountain Car learned in a test-sized run, snapshots, TensorBoard curves, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from qapprox.approximators.tile_control import NStepSarsa, RowGenerator, SarsaLambda, control
from qapprox.approximators.traces import TDLambda

D, TILINGS = 40, 4
I_S = np.array([[0, 5, 10, 15]])      # i(S, A): one row, 4 tilings
I_NEXT = np.array([[1, 5, 11, 20]])   # i(S', A'): shares tile 5 with (S, A)
ONE, NO = np.array([True]), np.array([False])


def weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, D))


@pytest.mark.parametrize("terminal", [False, True])
def test_one_sarsa_step_moves_exactly_the_active_weights_by_alpha_times_the_td_error(terminal):
    w, alpha, gamma, reward = weights(), 0.3, 0.9, -1.0
    q, q_next = w[0, I_S[0]].sum(), w[0, I_NEXT[0]].sum()
    learner = NStepSarsa(w.copy(), np.array([alpha]), np.array([1]), gamma, TILINGS)
    learner.start(ONE, I_S)
    b = 0.0 if terminal else q_next
    learner.step(np.array([reward]), I_NEXT, np.array([b]), np.array([terminal]), ONE)
    expected = w.copy()
    expected[0, I_S[0]] += alpha * (reward + gamma * b - q)  # α per tiling: each active weight moves by α δ
    np.testing.assert_allclose(learner.w, expected, rtol=0, atol=1e-15)
    assert np.count_nonzero(learner.w != w) == TILINGS


def test_an_n_step_update_equals_the_hand_computed_return_and_the_tail_after_the_end():
    n, alpha, gamma = 3, 0.2, 0.8
    tiles = [np.array([[4 * t, 4 * t + 1, 4 * t + 2, 4 * t + 3]]) for t in range(6)]  # disjoint (S_t, A_t)
    rewards = [-1.0, -2.0, 0.5, 3.0]
    w0 = weights(1)
    learner = NStepSarsa(w0.copy(), np.array([alpha]), np.array([n]), gamma, TILINGS)
    learner.start(ONE, tiles[0])
    for t in range(2):  # τ = t + 1 − n < 0: nothing learned yet
        learner.step(np.array([rewards[t]]), tiles[t + 1], np.array([w0[0, tiles[t + 1][0]].sum()]), NO, ONE)
    np.testing.assert_array_equal(learner.w, w0)
    q3 = w0[0, tiles[3][0]].sum()
    learner.step(np.array([rewards[2]]), tiles[3], np.array([q3]), NO, ONE)
    G = rewards[0] + gamma * rewards[1] + gamma**2 * rewards[2] + gamma**3 * q3  # G_{0:3}
    expected = w0.copy()
    expected[0, tiles[0][0]] += alpha * (G - w0[0, tiles[0][0]].sum())
    np.testing.assert_allclose(learner.w, expected, atol=1e-14)
    # S_4 terminal (T = 4): the updates at τ = 1, 2, 3 follow, one after another, without bootstrapping.
    learner.step(np.array([rewards[3]]), tiles[4], np.array([0.0]), ONE, ONE)
    for tau in (1, 2, 3):
        G = sum(gamma ** (i - tau - 1) * rewards[i - 1] for i in range(tau + 1, 5))
        expected[0, tiles[tau][0]] += alpha * (G - expected[0, tiles[tau][0]].sum())
    np.testing.assert_allclose(learner.w, expected, atol=1e-14)


@pytest.mark.parametrize("trace, z_x", [("accumulating", (1 * 0.25 + 1) * 0.5), ("replacing", 1 * 0.5)])
def test_traces_on_a_revisited_state_action_by_hand(trace, z_x):
    # (S, A) visits X, Y, X with γλ = 0.5 (γ = 1, λ = 0.5); z after the third step (z ← γλz last):
    # accumulating z_X = (0.5² · 1 + 1) · 0.5, replacing z_X = 1 · 0.5; z_Y = 1 · 0.5² either way.
    X, Y = np.array([[0, 1, 2, 3]]), np.array([[4, 5, 6, 7]])
    learner = SarsaLambda(np.zeros((1, D)), np.array([1e-3]), np.array([0.5]), 1.0, trace, TILINGS, D)
    learner.start(ONE, X)
    for i_next in (Y, X, Y):
        learner.step(np.array([-1.0]), i_next, np.array([learner.w[0, i_next[0]].sum()]), NO, ONE)
    z = np.zeros(D)
    z[X[0]], z[Y[0]] = z_x, 0.25
    np.testing.assert_allclose(learner.z[0], z, atol=1e-15)


@pytest.mark.parametrize("trace", ["accumulating", "replacing"])
def test_sarsa_lambda_equals_td_lambda_on_the_dense_binary_features(trace):
    rng = np.random.default_rng(3)
    visits = rng.integers(0, D, size=(12, 1, TILINGS))  # (S_t, A_t) tiles; repeats within a row count twice
    visits[:, :, 1] = visits[:, :, 0]
    alpha, lam, gamma = 0.05, 0.7, 0.9
    sparse = SarsaLambda(np.zeros((1, D)), np.array([alpha]), np.array([lam]), gamma, trace, TILINGS, D)
    w0 = rng.normal(size=(1, D))
    sparse.w[...] = w0
    dense = TDLambda(w0.copy(), trace=trace, alpha=alpha, lam=lam, gamma=gamma)
    if trace == "replacing":  # replacing traces need binary x: distinct tiles in each (S_t, A_t)
        visits = np.array([[rng.choice(D, TILINGS, replace=False)] for _ in range(12)])
    x = np.stack([np.bincount(v[0], minlength=D).astype(float) for v in visits])[:, None]
    sparse.start(ONE, visits[0])
    for t in range(11):
        b = sparse.w[0, visits[t + 1][0]].sum()
        sparse.step(np.array([-1.0]), visits[t + 1], np.array([b]), NO, ONE)
        dense.step(x[t], x[t + 1], np.array([-1.0]))
    np.testing.assert_allclose(sparse.w, dense.w, atol=1e-12)


def test_row_generators_depend_on_their_own_draws_only():
    all_rows = RowGenerator.from_seeds([3, 4, 5])
    alone = RowGenerator.from_seeds([4])
    first = all_rows.rows(np.array([True, True, False])).random((2, 3))
    np.testing.assert_array_equal(first[1], alone.random((1, 3))[0])
    all_rows.rows(np.array([True, False, False])).random((1, 5))  # moves row 0 only
    np.testing.assert_array_equal(all_rows.rows(np.array([False, True, False])).random((1, 2)), alone.random((1, 2)))
    u = all_rows.random((3, 10_000))
    assert (0 <= u).all() and (u < 1).all() and abs(u.mean() - 0.5) < 0.01


@pytest.mark.parametrize("method", [{"n": [1, 4]}, {"lam": [0.0, 0.9], "trace": "accumulating"}])
def test_batched_runs_equal_the_same_runs_done_one_at_a_time(method):
    alphas, seed = [0.5 / 8, 0.3 / 8], 5
    batch = control(2, runs=2, alpha=alphas, seed=seed, **method)
    key = "n" if "n" in method else "lam"
    for c, r in ((0, 0), (1, 1)):  # row (c, r) is seeded with seed + r in every configuration
            alpha = alphas[c]
            single = {**method, key: method[key][c]}
            one = control(2, runs=1, alpha=alpha, seed=seed + r, **single)
            np.testing.assert_array_equal(batch.steps[c, r], one.steps[0, 0])
            # The coders number the tiles in different orders: compare q̂ on a grid of states, not w.
            grid = np.stack(np.meshgrid(np.linspace(-1.2, 0.6, 15), np.linspace(-0.07, 0.07, 15)), -1).reshape(-1, 2)
            np.testing.assert_array_equal(batch.coder.q_values(batch.w[c, r], grid, 3),
                                          one.coder.q_values(one.w[0, 0], grid, 3))


def test_semi_gradient_sarsa_with_tile_coding_learns_mountain_car():
    result = control(25, runs=8, alpha=0.5 / 8, seed=0)
    curve = result.mean_steps[0]
    assert np.isfinite(curve).all() and curve[:3].mean() > 600
    assert curve[-5:].mean() < 0.4 * curve[:3].mean()


def test_snapshots_time_limit_and_tensorboard(tmp_path):
    from qapprox.dqn.analysis import read_run

    result = control(3, runs=2, alpha=[0.1 / 8, 0.5 / 8], seed=1, snapshots=[1, 3], max_episode_steps=150,
                     log_dir=tmp_path)
    assert (result.steps <= 150).all() and result.configs == {"alpha": [0.1 / 8, 0.5 / 8], "n": [1, 1]}
    np.testing.assert_array_equal(result.snapshots[1], result.w)
    one = control(1, runs=2, alpha=[0.1 / 8, 0.5 / 8], seed=1, max_episode_steps=150)
    np.testing.assert_array_equal(result.snapshots[0], one.w)
    scalars = read_run(tmp_path).scalars
    steps, values, _ = scalars["steps_per_episode/alpha=0.0625,n=1"]
    np.testing.assert_array_equal(steps, [1, 2, 3])
    np.testing.assert_allclose(values, result.mean_steps[1], rtol=1e-6)


def test_max_steps_leaves_unfinished_episodes_nan():
    result = control(5, runs=1, seed=0, max_steps=100)
    assert np.isnan(result.steps).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 2, "lam": 0.5}, "not both"), ({"alpha": 0.0}, "alpha"), ({"alpha": -1.0}, "alpha"),
    ({"n": 0}, "n must"), ({"n": 1.5}, "n must"), ({"lam": 1.5}, "lam"), ({"episodes": 0}, "episodes"),
    ({"lam": 0.5, "trace": "dutch"}, "trace"), ({"snapshots": [3]}, "snapshots"),
])
def test_refusals(kwargs, match):
    kwargs = {"episodes": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        control(kwargs.pop("episodes"), **kwargs)


@pytest.mark.parametrize("method", [{"n": 1}, {"lam": 0.9}])
def test_rows_that_finish_early_leave_the_batch_without_changing_any_row(method, monkeypatch):
    from qapprox.envs.mountain_car import MountainCarVectorEnv

    kept_sizes = []
    keep = MountainCarVectorEnv.keep
    monkeypatch.setattr(MountainCarVectorEnv, "keep", lambda env, cars: (kept_sizes.append(int(np.sum(cars))),
                                                                        keep(env, cars))[1])
    alphas, seed, runs = [0.1 / 8, 1.6 / 8], 2, 2
    batch = control(4, runs=runs, alpha=alphas, seed=seed, snapshots=[2], **method)
    totals = batch.steps.sum(-1)  # the α·8 = 1.6 runs finish their 4 episodes in under half the steps of the others
    assert totals[1].max() < totals[0].min() / 2 and kept_sizes == [2, 1]  # 4 rows → the 2 slow ones → the slowest
    grid = np.stack(np.meshgrid(np.linspace(-1.2, 0.6, 15), np.linspace(-0.07, 0.07, 15)), -1).reshape(-1, 2)
    for c, alpha in enumerate(alphas):
        for r in range(runs):
            one = control(4, runs=1, alpha=alpha, seed=seed + r, snapshots=[2], **method)
            np.testing.assert_array_equal(batch.steps[c, r], one.steps[0, 0])
            for w_batch, w_one in ((batch.w[c, r], one.w[0, 0]), (batch.snapshots[0, c, r], one.snapshots[0, 0, 0])):
                np.testing.assert_array_equal(batch.coder.q_values(w_batch, grid, 3), one.coder.q_values(w_one, grid, 3))


def test_kept_cars_and_row_streams_go_on_as_they_would_have():
    from qapprox.envs.mountain_car import MountainCarVectorEnv

    whole, part = MountainCarVectorEnv(4, max_episode_steps=5), MountainCarVectorEnv(4, max_episode_steps=5)
    whole.reset(seed=7), part.reset(seed=7)
    actions = np.array([0, 2, 1, 2])
    for _ in range(3):
        whole.step(actions), part.step(actions)
    part.keep(np.array([False, True, False, True]))
    assert part.num_envs == 2 and part.action_space.shape == (2,)
    for _ in range(6):  # across the time limit's reset: car 1's and car 3's own generators draw S_0
        s_whole, *_ = whole.step(actions)
        s_part, *_ = part.step(actions[[1, 3]])
        np.testing.assert_array_equal(s_part, s_whole[[1, 3]])
    streams, alone = RowGenerator.from_seeds([3, 4, 5]), RowGenerator.from_seeds([5])
    streams.random((3, 2))
    alone.random((1, 2))
    np.testing.assert_array_equal(streams.keep(np.array([False, False, True])).random((1, 4)), alone.random((1, 4)))
