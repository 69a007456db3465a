"""approximators.feature_wrapper: Box observations become x(s); on MountainCar-v0 the DQN agent's linear q̂ over
tile features is semi-gradient Q-learning, step for step, and moves only the weights of replayed tiles."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from qapprox.approximators.bases import Fourier, StateAggregation
from qapprox.approximators.feature_wrapper import FeatureObservation
from qapprox.approximators.tile_coding import TileCoder
from qapprox.dqn.agent import DQN
from qapprox.dqn.config import DQNConfig

QUIET = dict(logdir="", eval_interval=0, learning_starts=0, threads=1, device="cpu", env_id="MountainCar-v0")
LOW, HIGH = np.array([-1.2, -0.07]), np.array([0.6, 0.07])


def small_coder() -> TileCoder:
    """8 tilings of 4 × 4 over Mountain Car's position × velocity: 8 · 5 · 5 = 200 tiles in a table of 256."""
    return TileCoder(8, 4, LOW, HIGH, size=256)


def one_env(env: gym.Env) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.SAME_STEP)


# -------------------------------------------------------------- the wrapper
def test_observations_become_the_features_of_the_state():
    coder = small_coder()
    env = FeatureObservation(gym.make("MountainCar-v0"), coder)
    assert env.observation_space == spaces.Box(0.0, 8.0, shape=(256,), dtype=np.float32)
    x, _ = env.reset(seed=0)
    s = env.unwrapped.state  # the car's (position, velocity) after the reset
    assert x.dtype == np.float32 and x.shape == (256,) and x.sum() == 8.0
    np.testing.assert_array_equal(np.flatnonzero(x), np.sort(coder.active(s)))
    x, *_ = env.step(2)
    np.testing.assert_array_equal(x, coder.dense(env.unwrapped.state))
    fourier = FeatureObservation(gym.make("MountainCar-v0"), Fourier(2, LOW, HIGH))
    assert fourier.observation_space == spaces.Box(-1.0, 1.0, shape=(9,), dtype=np.float32)
    x, _ = fourier.reset(seed=1)
    np.testing.assert_allclose(x, Fourier(2, LOW, HIGH)(fourier.unwrapped.state), rtol=1e-6)


class Line(gym.Env):
    """A Box(0, 10, shape (1,)) observation: s = 3.5."""

    observation_space = spaces.Box(0.0, 10.0, shape=(1,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([3.5], dtype=np.float32), {}


def test_a_box_given_by_numbers_takes_the_single_coordinate():
    x, _ = FeatureObservation(Line(), StateAggregation(5, 0.0, 10.0)).reset()  # 3.5 lies in [2, 4): group 1
    np.testing.assert_array_equal(x, [0, 1, 0, 0, 0])
    x, _ = FeatureObservation(Line(), StateAggregation(5, [0.0], [10.0])).reset()  # a box of shape (1,)
    np.testing.assert_array_equal(x, [0, 1, 0, 0, 0])


@pytest.mark.parametrize("env, features, message", [
    (lambda: gym.make("FrozenLake-v1"), lambda: small_coder(), "needs a Box observation space of shape"),
    (lambda: gym.make("CartPole-v1"), lambda: small_coder(), "observations have 4 dimensions; the features' box has 2"),
])
def test_refusals(env, features, message):
    with pytest.raises(ValueError, match=message):
        FeatureObservation(env(), features())


# -------------------------------------------------------------- semi-gradient Q-learning with tile coding
class Recorder(gym.Wrapper):
    """Records (x(S), A, R, x(S'), terminated) of every step."""

    def __init__(self, env):
        super().__init__(env)
        self.transitions = []

    def reset(self, **kwargs):
        self.x, info = self.env.reset(**kwargs)
        return self.x, info

    def step(self, action):
        x_next, r, terminated, truncated, info = self.env.step(action)
        self.transitions.append((self.x, int(action), r, x_next, terminated))
        self.x = x_next
        return x_next, r, terminated, truncated, info


def test_linear_dqn_on_tile_features_is_semi_gradient_q_learning_step_for_step():
    """Buffer 1, batch 1, w⁻ = w before each step (τ = 1), SGD on ½ δ²:
    w_A ← w_A + α [R + γ max_a q̂(S', a, w) − q̂(S, A, w)] x(S), the other actions' w_a unchanged (eq. 10.2)."""
    recorder = Recorder(FeatureObservation(gym.make("MountainCar-v0"), small_coder()))
    alpha, gamma = 0.5 / 8, 0.9
    agent = DQN(DQNConfig(**QUIET, q_network="linear", optimizer="sgd", loss="mse", max_grad_norm=0.0, n_step=1,
                          buffer_size=1, batch_size=1, train_freq=1, gradient_steps=1, target_update_interval=1,
                          tau=1.0, learning_rate=alpha, gamma=gamma, exploration_initial=0.5, exploration_final=0.5),
                one_env(recorder))
    W = np.zeros((3, 256))  # w = (w_0, w_1, w_2), float64
    for t in range(1, 261):  # the first episode is cut by the 200-step limit: bootstrapped, not terminal
        agent.learn(t)
        x, a, r, x_next, terminated = recorder.transitions[-1]
        delta = r + gamma * (0.0 if terminated else (W @ x_next).max()) - W[a] @ x
        W[a] += alpha * delta * x
        np.testing.assert_allclose(agent.q.weight.detach().numpy(), W, atol=1e-5, err_msg=f"step {t}")
    assert len(recorder.transitions) == 260 and np.abs(W).max() > 0.1 and (W != 0).sum(1).min() > 0


def test_a_few_thousand_steps_move_exactly_the_weights_of_the_replayed_tiles():
    coder = small_coder()
    recorder = Recorder(FeatureObservation(gym.make("MountainCar-v0"), coder))
    agent = DQN(DQNConfig(**QUIET, q_network="linear", optimizer="sgd", loss="mse", learning_rate=0.5 / 8,
                          buffer_size=3_000, batch_size=4, train_freq=4, target_update_interval=100, n_step=1,
                          exploration_initial=1.0, exploration_final=0.1),
                one_env(recorder))
    replayed = np.zeros((3, 256), dtype=bool)  # (a, i): tile i active in a replayed S whose action was a
    sample = agent.replay.sample

    def recording_sample(*args, **kwargs):
        batch = sample(*args, **kwargs)
        actions = batch.actions.numpy()
        for a in range(3):
            replayed[a] |= batch.obs.numpy()[actions == a].any(axis=0)
        return batch

    agent.replay.sample = recording_sample
    agent.learn(3_000)
    W = agent.q.weight.detach().numpy()
    np.testing.assert_array_equal(W != 0, replayed)  # ∇_{w_a} q̂(S, a, w) = x(S): nothing else can move
    assert replayed.sum() > 100 and coder.collisions == 0
    # Every reward is −1: q̂(S, A, w) of every stored transition has turned negative (its weights, one by one, need not).
    x, a = np.array([x for x, *_ in recorder.transitions]), np.array([a for _, a, *_ in recorder.transitions])
    q_taken = (x @ W.T)[np.arange(3_000), a]
    assert q_taken.max() < 0 and W.max() > 0
