"""dqn.evaluation: the one greedy evaluation and the one definition of "solved"."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from qapprox.dqn.env_factory import make_vector_env
from qapprox.dqn.evaluation import EVAL_SEED_OFFSET, first_solved, greedy_returns, reward_threshold, rolling_mean, solved

NAN = float("nan")


def test_reward_threshold_is_the_registrys_and_never_imports_a_module():
    assert reward_threshold("CartPole-v1") == 475.0
    assert reward_threshold("Pendulum-v1") is None  # registered without a threshold
    assert reward_threshold("os:Nope-v0") is None and reward_threshold("NoSuchEnv-v0") is None


@pytest.mark.parametrize("returns, threshold, expected", [
    ([470.0, 480.0], 475.0, True),   # the mean, 475, reaches it
    ([474.0, 475.0], 475.0, False),  # mean 474.5
    ([500.0], None, False),          # no threshold: never solved
    ([], 475.0, False),
])
def test_solved_is_the_mean_of_the_window_reaching_the_threshold(returns, threshold, expected):
    assert solved(returns, threshold) is expected


def test_first_solved_over_points_and_over_windows():
    assert first_solved([100.0, 474.9, 475.0, 500.0], 475.0) == 2  # each point an evaluation's mean
    assert first_solved([400.0, 500.0, 500.0, 450.0, 500.0], 475.0, window=2) == 2  # (500 + 500) / 2
    assert first_solved([500.0] * 9, 475.0, window=10) is None  # fewer points than the window
    assert first_solved([500.0] * 10, None, window=10) is None
    # A missing value hides only the windows holding it.
    assert first_solved([1.0, NAN, 500.0, 480.0], 475.0, window=2) == 3
    np.testing.assert_array_equal(rolling_mean([1.0, 2.0, 3.0, 4.0], 3), [NAN, NAN, 2.0, 3.0])


def always_left(obs: np.ndarray) -> np.ndarray:
    return np.zeros(len(obs), dtype=np.int64)


def one_episode(seed: int) -> float:
    env, total = gym.make("CartPole-v1"), 0.0
    env.reset(seed=seed)
    while True:
        _, reward, terminated, truncated, _ = env.step(0)
        total += reward
        if terminated or truncated:
            return total


def test_greedy_returns_give_each_episode_its_own_env_seeded_seed_plus_i():
    seed = 7 + EVAL_SEED_OFFSET
    returns = greedy_returns(always_left, make_vector_env("CartPole-v1", 4), 4, seed)
    assert returns.tolist() == [one_episode(seed + i) for i in range(4)]


def test_greedy_returns_share_episodes_out_when_there_are_fewer_envs():
    returns = greedy_returns(always_left, make_vector_env("CartPole-v1", 2), 5, seed=3)
    assert returns.shape == (5,)
    assert returns[0] == one_episode(3) and returns[3] == one_episode(4)  # env 0 runs 3 episodes, env 1 two
    assert np.all((returns >= 8) & (returns <= 12))  # pushing left topples the pole within about ten steps
