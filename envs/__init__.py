"""Finite MDPs with exact answers, and their gymnasium ids under the `qapprox/` namespace.

Importing this package registers:
    qapprox/RandomWalk-v0        S&B random walk, kwarg n_states (default 19)
    qapprox/RandomWalk1000-v0    the 1000-state random walk of chapter 9
    qapprox/Quiz9-v0             the three-state MDP of Quiz 9
    qapprox/Baird-v0             Baird's counterexample (S&B Example 11.1), a continuing task
Each exposes its exact model as `env.unwrapped.mdp` (a FiniteMDP).
"""

from __future__ import annotations

import re

import gymnasium as gym

from qapprox.envs.baird import baird
from qapprox.envs.finite import FiniteMDP, FiniteMDPEnv
from qapprox.envs.quiz import quiz9_mdp
from qapprox.envs.random_walk import random_walk, random_walk_1000
from qapprox.envs.validation import choice_error
from qapprox.envs.wrappers import OneHotObservation

__all__ = ["baird", "FiniteMDP", "FiniteMDPEnv", "OneHotObservation", "make_mdp", "quiz9_mdp", "random_walk", "random_walk_1000", "MDP_NAMES"]

MDP_NAMES = ("random-walk-N (e.g. random-walk-5, random-walk-19)", "random-walk-1000", "quiz9", "baird")


def make_mdp(name: str) -> FiniteMDP:
    """A FiniteMDP by short name: 'random-walk-N', 'random-walk-1000' (jumps 1..100), 'quiz9' or 'baird'."""
    if name == "quiz9":
        return quiz9_mdp()
    if name == "baird":
        return baird()
    if name == "random-walk-1000":
        return random_walk_1000()
    match = re.fullmatch(r"random-walk-(\d+)", name)
    if match and int(match.group(1)) >= 1:
        return random_walk(int(match.group(1)))
    raise choice_error("env", name, MDP_NAMES, label="env")


def _make_env(mdp_factory, **kwargs) -> FiniteMDPEnv:
    render_mode = kwargs.pop("render_mode", None)
    return FiniteMDPEnv(mdp_factory(**kwargs), render_mode=render_mode)


def _register() -> None:
    entries = {
        "qapprox/RandomWalk-v0": random_walk,
        "qapprox/RandomWalk1000-v0": random_walk_1000,
        "qapprox/Quiz9-v0": quiz9_mdp,
        "qapprox/Baird-v0": baird,
    }
    for env_id, factory in entries.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_make_env, kwargs={"mdp_factory": factory})


_register()
