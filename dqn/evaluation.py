"""Greedy evaluation, and the one definition of "solved" that the agent, the sweep, the benchmark and
the plots share.

Solved: a run has solved its task at the first step where the mean of a window of episode returns
reaches the env's reward threshold (gymnasium's `reward_threshold`; 475 for CartPole-v1):

    solved at t  ⇔  (1/k) Σ_{i=1..k} G^(i) ≥ threshold,   G^(1..k) the window's returns, recorded by step t

The agent and the sweep take the window to be one greedy evaluation (ε = 0, `eval_episodes` episodes
on envs seeded seed + EVAL_SEED_OFFSET + i), so each evaluation is a point; the benchmark, which runs
CleanRL's script as published and cannot evaluate it during training, takes the last `window` training
episodes of every side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

EVAL_SEED_OFFSET = 1_000_000  # evaluation envs are seeded seed + EVAL_SEED_OFFSET + i: apart from training's


def reward_threshold(env_id: str) -> float | None:
    """The env's registered reward_threshold (475 for CartPole-v1), or None when it has none. Only the
    registry is read: an id with a module part (`module:Env`) is never imported from here."""
    spec = gym.registry.get(env_id)
    return None if spec is None else spec.reward_threshold


def solved(returns: Sequence[float] | np.ndarray, threshold: float | None) -> bool:
    """Is the mean of this window of episode returns ≥ threshold? Never without a threshold or returns."""
    returns = np.asarray(returns, dtype=float)
    return threshold is not None and returns.size > 0 and float(returns.mean()) >= threshold


def rolling_mean(returns: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` returns at each point (nan before the first `window` points, and for a
    window holding a nan: one missing value never hides a later window, as a running sum would)."""
    returns = np.asarray(returns, dtype=float)
    means = np.full(returns.size, np.nan)
    if window >= 1 and returns.size >= window:
        means[window - 1:] = np.lib.stride_tricks.sliding_window_view(returns, window).mean(axis=1)
    return means


def first_solved(returns: Sequence[float] | np.ndarray, threshold: float | None, window: int = 1) -> int | None:
    """Index of the first point whose window of the last `window` returns is `solved` (None if none): the
    same predicate the agent applies to each evaluation. With window = 1 each point is already a window's
    mean (an evaluation's mean return); a window holding a nan is not solved."""
    returns = np.asarray(returns, dtype=float)
    for end in range(max(window, 1), returns.size + 1):
        if solved(returns[end - window:end], threshold):
            return end - 1
    return None


def greedy_returns(policy: Callable[[np.ndarray], np.ndarray], envs: gym.vector.VectorEnv, episodes: int,
                   seed: int | Sequence[int]) -> np.ndarray:
    """Returns of `episodes` episodes of `policy` (observations → actions), run side by side.

    The N copies of `envs` are reset with seeds seed, seed + 1, … (or one seed each, a sequence of N:
    a population's members); copy i runs its share of the episodes
    in turn, so with N = episodes (the default of the agent and the benchmark) every episode has an env
    of its own and no env's short episodes crowd out another's long ones. The envs must autoreset.
    """
    n = envs.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    obs, _ = envs.reset(seed=seed)
    running, returns = np.zeros(n), [[] for _ in range(n)]
    while any(len(returns[i]) < quota[i] for i in range(n)):
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs))
        running += rewards
        for i in np.flatnonzero(terminated | truncated):
            if len(returns[i]) < quota[i]:
                returns[i].append(running[i])
            running[i] = 0.0
    return np.array([r for per_env in returns for r in per_env])
