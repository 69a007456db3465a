"""Mountain Car (S&B Example 10.1) as a gymnasium VectorEnv: N cars stepped at once in numpy, with exactly
gymnasium's MountainCar-v0 physics (gymnasium/envs/classic_control/mountain_car.py), per car:

    velocity ← clip(velocity + (A − 1)·force − cos(3·position)·gravity, −max_speed, max_speed)
    position ← clip(position + velocity, min_position, max_position)
    velocity ← 0                            if position = min_position and velocity < 0 (the left wall)
    terminated = position ≥ goal_position and velocity ≥ goal_velocity,   R = −1 every step

with A ∈ {0: push left, 1: no push, 2: push right}, and S_0 = (U(−0.6, −0.4), 0). The state is float64, as
gymnasium's is; observations are its float32 copy. The book's task has no time limit: max_episode_steps=None by
default (gymnasium.make adds a TimeLimit of 200; pass max_episode_steps=200 for that, reported as truncated).

Like gymnasium's CartPoleVectorEnv, it resets a car whose episode has ended by itself (autoreset), but in the same
step (AutoresetMode.SAME_STEP, as SyncVectorEnv(autoreset_mode=SAME_STEP) does): the observation returned for that
car is already its next episode's S_0, and info["final_obs"][i] (mask info["_final_obs"]) holds the last one — so
a learner gets S_0 of the next episode in the step that ends one, and spends no dummy step per episode.

Seeding as SyncVectorEnv does it: reset(seed=s) seeds car i's own generator with s + i (a list seeds each car),
so car i's start states are those of gym.make("MountainCar-v0").reset(seed=s + i) and its later resets; each car
draws from its own generator only when it resets, so a car's episodes do not depend on the other cars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from qapprox.envs.validation import check_int, check_seed

START_LOW, START_HIGH = -0.6, -0.4  # S_0 position ~ U(−0.6, −0.4), velocity 0


class MountainCarVectorEnv(VectorEnv):
    """num_envs Mountain Cars stepped in lockstep (module doc); actions an int array of shape (num_envs,)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, goal_velocity: float = 0.0) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.max_episode_steps = None if max_episode_steps is None else check_int(
            "max_episode_steps", max_episode_steps, 1)
        self.min_position, self.max_position, self.max_speed = -1.2, 0.6, 0.07
        self.goal_position, self.goal_velocity = 0.5, float(goal_velocity)
        self.force, self.gravity = 0.001, 0.0025
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.state: np.ndarray | None = None  # (num_envs, 2) float64: position, velocity
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.generators: list[np.random.Generator] | None = None

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Every car to S_0 = (U(−0.6, −0.4), 0); seed s seeds car i with s + i, a list one seed per car."""
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if np.ndim(seed) == 0 else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed holds {len(seeds)} seeds for num_envs={self.num_envs} cars")
            self.generators = [seeding.np_random(check_seed("seed", s))[0] for s in seeds]
        elif self.generators is None:
            self.generators = [seeding.np_random()[0] for _ in range(self.num_envs)]
        self.state = np.zeros((self.num_envs, 2))
        self._start(np.arange(self.num_envs))
        return self.state.astype(np.float32), {}

    def _start(self, cars: np.ndarray) -> None:
        """S_0 for the given cars, each drawn from its own generator (gymnasium's draw: one uniform)."""
        for i in cars:
            self.state[i] = (self.generators[i].uniform(low=START_LOW, high=START_HIGH), 0.0)
        self.steps[cars] = 0

    def keep(self, cars) -> None:
        """Keep only the given cars (an index array or a boolean mask), in that order, with their states, step
        counts and generators: car k is then the old car cars[k], and its episodes go on as they would have."""
        cars = np.arange(self.num_envs)[cars]
        if cars.size == 0:
            raise ValueError("keep needs at least one car")
        self.num_envs = cars.size
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.steps = self.steps[cars]
        if self.state is not None:
            self.state = self.state[cars]
        if self.generators is not None:
            self.generators = [self.generators[i] for i in cars]

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every car (module doc); cars whose episode ended restart at once (SAME_STEP autoreset)."""
        if self.state is None:
            raise RuntimeError("call reset before step")
        actions = np.asarray(actions)
        if (actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer)
                or ((actions < 0) | (actions > 2)).any()):
            raise ValueError(f"actions must be {self.num_envs} integers in {{0, 1, 2}}, got {actions!r:.80}")
        position, velocity = self.state[:, 0], self.state[:, 1]
        velocity = velocity + ((actions - 1) * self.force + np.cos(3 * position) * (-self.gravity))  # gymnasium's order
        velocity = np.clip(velocity, -self.max_speed, self.max_speed)
        position = np.clip(position + velocity, self.min_position, self.max_position)
        velocity = np.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        self.steps += 1
        truncated = np.zeros(self.num_envs, dtype=bool) if self.max_episode_steps is None else (
            (self.steps >= self.max_episode_steps) & ~terminated)
        self.state = np.stack([position, velocity], axis=1)
        reward = np.full(self.num_envs, -1.0)
        info: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            final = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = self.state[i].astype(np.float32)
            info = {"final_obs": final, "_final_obs": done.copy()}
            self._start(np.flatnonzero(done))
        return self.state.astype(np.float32), reward, terminated, truncated, info
