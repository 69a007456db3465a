"""A gymnasium observation wrapper that turns a continuous observation s into features x(s).

    coder = TileCoder(8, 8, low=env.observation_space.low, high=env.observation_space.high, size=4096)
    envs = gym.vector.SyncVectorEnv([lambda: FeatureObservation(gym.make("MountainCar-v0"), coder)] * 4)
    DQN(DQNConfig(q_network="linear", ...), env=envs)   # q̂(s, a, w) = w_aᵀx(s): semi-gradient Q-learning

With the DQN agent's linear Q-network, q̂(s, a, w) = w_aᵀx(s) and ∇_{w_a} q̂ = x(s), so its update on ½ δ² with SGD
is semi-gradient Q-learning over these features (S&B eq. 10.2 with the target R + γ max_a' q̂(S', a', w⁻)).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FeatureObservation(gym.ObservationWrapper):
    """Any Box observation s of shape (k,) → x(s) (a basis of approximators.bases, or a TileCoder's dense vector)
    as a float32 Box(bounds, shape (d,)), so the DQN agent's linear Q-network (q_network="linear":
    q̂(s, a, w) = w_aᵀx(s)) learns on these features: semi-gradient Q-learning with tile coding.

    `features` is anything with `box` (its approximators.bases.Box), `d`, `bounds` and `features(s)` → (d,).
    A TileCoder numbers its tiles as it meets them: give every copy of the env the same coder (in one process,
    as gymnasium's SyncVectorEnv runs them), so that index i is the same tile in all of them.
    """

    def __init__(self, env: gym.Env, features: Any) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"FeatureObservation needs a Box observation space of shape (k,), got {space}")
        k = features.box.k
        if space.shape[0] != k:
            raise ValueError(f"the observations have {space.shape[0]} dimensions; the features' box has {k}")
        self.features = features
        self._scalar = features.box.scalar  # a box given by numbers takes one number per state, not (1,)
        low, high = features.bounds
        self.observation_space = spaces.Box(np.float32(low), np.float32(high), shape=(features.d,), dtype=np.float32)

    def observation(self, observation) -> np.ndarray:
        s = np.asarray(observation, dtype=np.float64)
        return self.features(s[0] if self._scalar else s).astype(np.float32)
