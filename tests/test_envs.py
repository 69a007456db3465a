"""The finite MDPs against values solved by hand, their sampling against P, and the gymnasium ids."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from qapprox.envs import OneHotObservation, make_mdp, quiz9_mdp, random_walk
from qapprox.envs.baird import BAIRD_FEATURES, BAIRD_W0, BEHAVIOUR_POLICY, TARGET_POLICY

A, B, C, TERMINAL = 0, 1, 2, 3


@pytest.fixture(scope="module")
def environments():
    """Each registered id made once (building the 1000-state walk's P takes most of a second)."""
    return {"qapprox/RandomWalk-v0": gym.make("qapprox/RandomWalk-v0", n_states=5),
            "qapprox/RandomWalk1000-v0": gym.make("qapprox/RandomWalk1000-v0"),
            "qapprox/Quiz9-v0": gym.make("qapprox/Quiz9-v0"),
            "qapprox/Baird-v0": gym.make("qapprox/Baird-v0")}


# FiniteMDPEnv declares no render_fps (text rendering only); the checker warns about it.
@pytest.mark.filterwarnings("ignore:.*No render fps was declared")
@pytest.mark.parametrize("env_id", ["qapprox/RandomWalk-v0", "qapprox/RandomWalk1000-v0", "qapprox/Quiz9-v0",
                                    "qapprox/Baird-v0"])
def test_gymnasium_env_checker_passes(environments, env_id):
    env = environments[env_id]
    check_env(env.unwrapped)
    assert env.unwrapped.mdp.n_states == env.observation_space.n


def test_random_walk_5_values():
    mdp = random_walk(5)
    v_pi, q_pi = mdp.evaluate(mdp.uniform_policy())
    assert np.allclose(v_pi, [0, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 0], atol=1e-12)   # (1..5)/3 − 1
    # q_π(s, left) = v_π(s − 1) (−1 on the left exit): q_π(1, left) = −1, q_π(5, right) = +1
    assert np.isclose(q_pi[1, 0], -1) and np.isclose(q_pi[5, 1], 1) and np.isclose(q_pi[3, 0], -1 / 3)
    v_star, _ = mdp.optimal()
    assert np.allclose(v_star[1:6], 1.0)                                              # always go right


def test_random_walk_19_values_and_start():
    mdp = make_mdp("random-walk-19")
    v_pi, _ = mdp.evaluate(mdp.uniform_policy())
    assert np.allclose(v_pi[1:20], np.arange(1, 20) / 10 - 1, atol=1e-12)
    assert mdp.start[10] == 1.0 and mdp.terminal.tolist() == [True] + [False] * 19 + [True]
    assert mdp.gamma == 1.0


def test_random_walk_1000_is_antisymmetric_and_has_jumps(environments):
    mdp = environments["qapprox/RandomWalk1000-v0"].unwrapped.mdp
    v_pi, _ = mdp.evaluate(mdp.uniform_policy())
    assert np.allclose(v_pi[1:1001], -v_pi[1:1001][::-1], atol=1e-9)
    assert np.isclose(mdp.P[500, 1, 600], 0.01) and np.isclose(mdp.P[950, 1, 1001], 0.5)   # 51..100 jumps exit


def test_quiz9_v_pi_matches_the_hand_solved_bellman_system():
    # Uniform π, γ = 0.9, a = v(s_A), b = v(s_B), c = v(s_C):
    #   a = ½(0.9b) + ½(½·0.9c + ½·(−1))  = 0.45b + 0.225c − 0.25
    #   b = ½(1 + 0.9c) + ½(0.9a)          = 0.5 + 0.45c + 0.45a
    #   c = ½·10 + ½(0.2·0.9b)             = 5 + 0.09b
    # Substituting c, then a = 0.47025b + 0.875, and b = 3.14375 + 0.2521125b.
    b = 3.14375 / (1 - 0.2521125)
    expected = [0.47025 * b + 0.875, b, 5 + 0.09 * b, 0.0]
    mdp = quiz9_mdp()
    v_pi, q_pi = mdp.evaluate(mdp.uniform_policy())
    assert np.allclose(v_pi, expected, atol=1e-12)
    assert np.isclose(q_pi[C, 0], 10.0) and np.isclose(q_pi[A, 1], 0.5 * 0.9 * expected[C] - 0.5)


def test_quiz9_optimal_values():
    v_star, q_star = quiz9_mdp().optimal()
    assert np.allclose(v_star, [9, 10, 10, 0], atol=1e-9)
    # q_*(s_A, gamble) = ½·0.9·10 − ½ = 4; q_*(s_B, back) = 0.9·9; q_*(s_C, wander) = 0.2·0.9·10
    assert np.allclose(q_star[:3], [[9, 4], [10, 8.1], [10, 1.8]], atol=1e-9)


def test_baird_is_example_11_1(environments):
    mdp = environments["qapprox/Baird-v0"].unwrapped.mdp
    assert mdp.n_states == 7 and not mdp.terminal.any() and mdp.gamma == 0.99 and not mdp.R.any()
    assert np.allclose(mdp.start, 1 / 7) and mdp.action_names == ("dashed", "solid")
    assert np.allclose(mdp.P[:, 0, :6], 1 / 6) and np.all(mdp.P[:, 1, 6] == 1.0)
    # Under b the next state is uniform over all seven; under π it is always s_7.
    assert np.allclose(np.einsum("sa,sat->st", BEHAVIOUR_POLICY, mdp.P), 1 / 7)
    assert np.all(np.einsum("sa,sat->st", TARGET_POLICY, mdp.P)[:, 6] == 1.0)
    assert np.allclose(mdp.evaluate(TARGET_POLICY)[0], 0.0)                             # R = 0: v_π = 0
    # x(s_1) = 2e_1 + e_8, x(s_7) = e_7 + 2e_8; v̂(s_7) = 10 + 2 = 12 from w_0, v̂(s_i) = 3 above.
    assert BAIRD_FEATURES[0].tolist() == [2, 0, 0, 0, 0, 0, 0, 1]
    assert BAIRD_FEATURES[6].tolist() == [0, 0, 0, 0, 0, 0, 1, 2]
    assert (BAIRD_FEATURES @ BAIRD_W0).tolist() == [3] * 6 + [12]
    assert make_mdp("baird").n_states == 7


def test_sampled_transitions_match_p():
    mdp = quiz9_mdp()
    rng = np.random.default_rng(0)
    n = 40_000
    s_next, reward, done = mdp.step(np.full(n, A), np.ones(n, dtype=int), rng)       # s_A, gamble
    assert abs(np.mean(s_next == C) - 0.5) < 0.01 and np.array_equal(done, s_next == TERMINAL)
    assert np.array_equal(reward, np.where(s_next == TERMINAL, -1.0, 0.0))
    s_next, _, _ = mdp.step(np.full(n, C), np.ones(n, dtype=int), rng)               # s_C, wander
    assert abs(np.mean(s_next == B) - 0.2) < 0.01
    actions = mdp.sample_actions(mdp.uniform_policy(), np.full(n, A), rng)
    assert abs(actions.mean() - 0.5) < 0.01
    env = gym.make("qapprox/Quiz9-v0")
    env.reset(seed=1)
    outcomes = []
    for _ in range(2000):
        env.unwrapped._s = C                                                          # from s_C, wander
        outcomes.append(env.step(1)[0])
    assert abs(np.mean(np.array(outcomes) == B) - 0.2) < 0.03


def test_episodes_end_in_a_terminal_and_start_in_the_middle():
    mdp = random_walk(5)
    episodes = mdp.episodes(mdp.uniform_policy(), 200, np.random.default_rng(0))
    assert all(S[0] == 3 for S, _, _ in episodes)
    assert all(R[-1] in (-1.0, 1.0) and not R[:-1].any() for _, _, R in episodes)
    assert all(np.all(np.abs(np.diff(S)) == 1) for S, _, _ in episodes)


def test_one_hot_observation():
    env = OneHotObservation(gym.make("qapprox/Quiz9-v0"))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.tolist() == [1, 0, 0, 0]                    # starts in s_A
    assert env.observation_space.shape == (4,) and env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(0)                                 # safe: s_A → s_B
    assert obs.tolist() == [0, 1, 0, 0] and reward == 0.0 and not terminated
    with pytest.raises(ValueError, match="needs a Discrete observation space"):
        OneHotObservation(env)


@pytest.mark.parametrize("name, message", [("walk", "unknown env 'walk'; allowed: random-walk-N"),
                                           ("random-walk-0", "unknown env 'random-walk-0'")])
def test_make_mdp_errors(name, message):
    with pytest.raises(ValueError) as error:
        make_mdp(name)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert make_mdp("random-walk-5").n_states == 7
