"""Vectorised gymnasium environments for DQN, checked and preprocessed.

    envs = make_vector_env("CartPole-v1", n_envs=4)

- Box observations stay as they are; Discrete observations become one-hot x(s) (OneHotObservation).
- Atari ids ("ALE/…", "…NoFrameskip-v4") go through AtariPreprocessing (84×84 grey, frame skip 4,
  no-op starts) and FrameStackObservation(4): uint8 (4, 84, 84). They need the `atari` extra.
- Autoreset is SAME_STEP: when an episode ends, `step` returns the first obs of the next episode and
  the true final obs in info["final_obs"], so no transition ever crosses an episode boundary.
- Importing this module imports qapprox.envs, which registers the qapprox/… ids.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import qapprox.envs as qapprox_envs  # noqa: F401  (registers qapprox/RandomWalk-v0, qapprox/Quiz9-v0, …)
from qapprox.envs.validation import check_choice
from qapprox.envs.wrappers import OneHotObservation

VECTOR_CLASSES = {"sync": gym.vector.SyncVectorEnv, "async": gym.vector.AsyncVectorEnv}


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """One environment, preprocessed for DQN; bad ids and spaces are one-line ValueErrors."""
    kwargs: dict = {} if render_mode is None else {"render_mode": render_mode}
    if is_atari(env_id):
        try:
            import ale_py
        except ImportError:
            raise ValueError(f"env {env_id!r} needs ale-py: pip install qapprox[atari]") from None
        gym.register_envs(ale_py)
        if env_id.startswith("ALE/"):
            kwargs["frameskip"] = 1  # AtariPreprocessing skips frames itself
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ValueError(f"env {env_id!r} needs a missing dependency: {str(exc).splitlines()[0]}") from None
    except gym.error.Error as exc:
        raise ValueError(f"unknown env id {env_id!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(env.action_space, spaces.Discrete):
        env.close()
        raise ValueError(f"env {env_id!r} has action space {env.action_space}; DQN needs a Discrete action space")
    if is_atari(env_id):
        try:
            env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, noop_max=30)
        except gym.error.DependencyNotInstalled:
            env.close()
            raise ValueError(f"env {env_id!r} needs OpenCV for its preprocessing: pip install qapprox[atari]") from None
        env = gym.wrappers.FrameStackObservation(env, 4)
    elif isinstance(env.observation_space, spaces.Discrete):
        env = OneHotObservation(env)
    elif not isinstance(env.observation_space, spaces.Box):
        env.close()
        raise ValueError(f"env {env_id!r} has observation space {env.observation_space}; allowed: Box or Discrete")
    return env


def make_vector_env(
    env_id: str, n_envs: int = 1, vectorization: str = "sync", render_mode: str | None = None
) -> gym.vector.VectorEnv:
    """n_envs copies of make_env(env_id) in a gymnasium vector env with SAME_STEP autoreset.

    The first copy is built here, so a bad id fails before any subprocess starts. Seeding happens
    at `reset(seed=…)` (copy i gets seed + i).
    """
    check_choice("vectorization", vectorization, VECTOR_CLASSES)
    make_env(env_id).close()
    factory: Callable[[], gym.Env] = lambda: make_env(env_id, render_mode)  # noqa: E731
    return VECTOR_CLASSES[vectorization]([factory] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP)


def make_video_env(env_id: str, directory: str) -> gym.vector.VectorEnv:
    """One make_env(env_id) that renders rgb_array, wrapped in RecordVideo (every episode, MP4 files in
    `directory`), in a SAME_STEP vector env as DQN expects: episodes run one after another. Needs the
    `video` extra (moviepy); a missing moviepy or an env without rgb_array is a one-line ValueError."""
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ValueError("--video needs moviepy: pip install qapprox[video]") from None
    probe = make_env(env_id)
    modes = probe.metadata.get("render_modes", [])
    probe.close()
    if "rgb_array" not in modes:
        raise ValueError(f"env {env_id!r} does not render rgb_array (render modes: {modes}); cannot record video")

    def factory() -> gym.Env:
        return gym.wrappers.RecordVideo(make_env(env_id, render_mode="rgb_array"), directory,
                                       episode_trigger=lambda episode: True, disable_logger=True)

    return gym.vector.SyncVectorEnv([factory], autoreset_mode=AutoresetMode.SAME_STEP)


def check_vector_env(envs: gym.vector.VectorEnv) -> tuple[tuple[int, ...], int, np.dtype]:
    """(observation shape, number of actions, storage dtype) of a vector env DQN can use."""
    mode = envs.metadata.get("autoreset_mode")
    if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
        raise ValueError(f"vector env autoreset_mode={mode}; DQN needs AutoresetMode.SAME_STEP (use make_vector_env)")
    action_space, observation_space = envs.single_action_space, envs.single_observation_space
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"action space {action_space} is not Discrete; DQN needs a Discrete action space")
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(f"observation space {observation_space} is not a Box; wrap Discrete ones in OneHotObservation")
    dtype = np.dtype(np.uint8) if observation_space.dtype == np.uint8 else np.dtype(np.float32)
    return tuple(observation_space.shape), int(action_space.n), dtype
