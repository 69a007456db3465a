"""One measurement of the benchmark, in a process of its own (threads and state cannot leak):

    python -m qapprox.dqn.benchmark.worker qapprox --preset sb3-zoo-cartpole --seed 0 --out run.json
    python -m qapprox.dqn.benchmark.worker sb3     --preset sb3-zoo-cartpole --seed 0 --threads 1 --out run.json
    python -m qapprox.dqn.benchmark.worker floor   --preset sb3-zoo-cartpole --out floor.json

qapprox, sb3: one training run of `steps` environment steps (default: the preset's), timed around
learn() only; every finished training episode is recorded as (step, seconds since learn() began,
return); then greedy episodes on envs shared by both libraries: `evaluation.greedy_returns` with one
env per episode, seeded EVAL_SEED_OFFSET + i whatever the training seed.
floor: the bare costs the training loop cannot avoid (`floor.floor`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from qapprox.approximators.limits import check_threads
from qapprox.dqn.benchmark.floor import floor
from qapprox.dqn.config import DQNConfig, preset
from qapprox.dqn.env_factory import make_vector_env
from qapprox.dqn.evaluation import EVAL_SEED_OFFSET, greedy_returns
from qapprox.envs.validation import check_choice, check_int

KINDS = ("qapprox", "sb3", "floor")


class EpisodeClock:
    """Finished training episodes as rows (global step, seconds since start(), return)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float]] = []
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def record(self, step: int, episode_return: float) -> None:
        self.rows.append((int(step), time.perf_counter() - self.t0, float(episode_return)))


class RecordEpisodes(gym.vector.VectorWrapper):
    """Adds each finished episode's return to an EpisodeClock (the global step counts all N envs)."""

    def __init__(self, env: gym.vector.VectorEnv, clock: EpisodeClock) -> None:
        super().__init__(env)
        self.clock, self.steps = clock, 0
        self.returns = np.zeros(env.num_envs)

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self.steps += self.num_envs
        self.returns += rewards
        done = terminated | truncated
        if done.any():
            for i in np.flatnonzero(done):
                self.clock.record(self.steps, self.returns[i])
            self.returns[done] = 0.0
        return obs, rewards, terminated, truncated, info


# ---------------------------------------------------------------------- the two training sides
def train_qapprox(config: DQNConfig, clock: EpisodeClock) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """qapprox's DQN without TensorBoard, checkpoints or evaluation during training; (seconds, policy)."""
    from qapprox.dqn.agent import DQN

    envs = RecordEpisodes(make_vector_env(config.env_id, config.n_envs, config.vectorization), clock)
    agent = DQN(config, envs)
    clock.start()
    agent.learn()
    seconds = time.perf_counter() - clock.t0
    return seconds, agent.predict


def sb3_kwargs(config: DQNConfig) -> dict[str, Any]:
    """SB3 DQN's keyword arguments for the same hyper-parameters; a config SB3 cannot express is a ValueError."""
    unsupported = {"double_q": False, "n_step": 1, "prioritized": False, "dueling": False, "loss": "huber",
                   "optimizer": "adam", "q_network": "mlp", "activation": "relu", "n_envs": 1}
    for name, needed in unsupported.items():
        if getattr(config, name) != needed:
            raise ValueError(f"{name}={getattr(config, name)!r} has no SB3 DQN equivalent; the comparison needs {needed!r}")
    return dict(learning_rate=config.learning_rate, buffer_size=config.buffer_size, learning_starts=config.learning_starts,
                batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, train_freq=config.train_freq,
                gradient_steps=config.gradient_steps, target_update_interval=config.target_update_interval,
                exploration_fraction=config.exploration_fraction, exploration_initial_eps=config.exploration_initial,
                exploration_final_eps=config.exploration_final, max_grad_norm=config.max_grad_norm or float("inf"),
                policy_kwargs={"net_arch": list(config.hidden)}, seed=config.seed, device="cpu", verbose=0)


def train_sb3(config: DQNConfig, clock: EpisodeClock) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """Stable-Baselines3's DQN (its Monitor wrapper reports episodes to a callback); (seconds, policy)."""
    try:
        from stable_baselines3 import DQN as SB3DQN
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        raise ValueError("stable_baselines3 is not installed: pip install -e '.[bench]'") from None

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    clock.record(self.num_timesteps, info["episode"]["r"])
            return True

    model = SB3DQN("MlpPolicy", config.env_id, **sb3_kwargs(config))
    clock.start()
    model.learn(total_timesteps=config.total_timesteps, callback=Episodes())
    seconds = time.perf_counter() - clock.t0
    return seconds, lambda obs: model.predict(obs, deterministic=True)[0]


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int) -> list[float]:
    """Returns of `episodes` greedy episodes, one env each, seeded EVAL_SEED_OFFSET + i on every side."""
    if episodes == 0:
        return []
    envs = make_vector_env(env_id, episodes)
    try:
        return greedy_returns(policy, envs, episodes, seed=EVAL_SEED_OFFSET).tolist()
    finally:
        envs.close()


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "gymnasium": gym.__version__,
                "numpy": np.__version__}
    try:
        import stable_baselines3

        versions["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return versions


# ---------------------------------------------------------------------- one measurement
def measure(kind: str, preset_name: str, seed: int = 0, steps: int | None = None, threads: int | None = None,
            eval_episodes: int = 20, floor_iterations: int = 20_000) -> dict[str, Any]:
    """One measurement in this process: a training run of `kind` ("qapprox" or "sb3") at the preset, or
    its floor ("floor"); `threads` torch intra-op threads (None: torch's own choice). The JSON result."""
    check_choice("kind", kind, KINDS)
    if steps is not None:
        check_int("steps", steps, 1)
    check_int("eval-episodes", eval_episodes, 0)
    check_int("floor-iterations", floor_iterations, 1)
    if threads is not None:
        torch.set_num_threads(check_threads("threads", threads))
    threads = torch.get_num_threads()
    overrides = {"seed": seed, "logdir": "", "eval_interval": 0, "checkpoint_interval": 0, "device": "cpu",
                 "threads": threads}
    if steps is not None:
        overrides["total_timesteps"] = steps
    config = preset(preset_name, **overrides)
    result: dict[str, Any] = {"kind": kind, "preset": preset_name, "env_id": config.env_id, "seed": seed,
                              "threads": threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                              "load_before": os.getloadavg()[0], "versions": library_versions()}
    if kind == "floor":
        result["floor"] = floor(config, floor_iterations)
        return result
    clock = EpisodeClock()
    seconds, policy = (train_qapprox if kind == "qapprox" else train_sb3)(config, clock)
    result.update(steps=config.total_timesteps, seconds=seconds, sps=config.total_timesteps / seconds,
                  episodes=clock.rows, load_after=os.getloadavg()[0],
                  eval_returns=evaluate(policy, config.env_id, eval_episodes))
    return result


def main(argv: list[str] | None = None) -> int:
    """The subprocess entry point: flags → measure() → the JSON file --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--preset", default="CartPole-v1", help="a preset of qapprox.dqn.config.PRESETS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="total environment steps (default: the preset's)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--floor-iterations", type=int, default=20_000, help="env steps and forward passes timed")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    result = measure(args.kind, args.preset, args.seed, args.steps, args.threads, args.eval_episodes,
                     args.floor_iterations)
    Path(args.out).write_text(json.dumps(result))
    print(f"{args.kind} {args.preset} seed {args.seed}: " + (
        f"floor {result['floor']['floor_sps']:.0f} SPS" if args.kind == "floor" else f"{result['sps']:.0f} SPS, {result['seconds']:.1f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
