"""Observation wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class OneHotObservation(gym.ObservationWrapper):
    """Discrete(n) observation s → its one-hot feature vector x(s) ∈ {0, 1}ⁿ (float32)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"OneHotObservation needs a Discrete observation space, got {space}")
        self._n, self._start = int(space.n), int(space.start)
        self._eye = np.eye(self._n, dtype=np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self._n,), dtype=np.float32)

    def observation(self, observation) -> np.ndarray:
        return self._eye[int(observation) - self._start].copy()
