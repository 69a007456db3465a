"""One measurement of `scripts.benchmark`, in a process of its own (threads and state cannot leak).

    python -m scripts.bench_worker qapprox --preset sb3-zoo-cartpole --seed 0 --out run.json
    python -m scripts.bench_worker sb3     --preset sb3-zoo-cartpole --seed 0 --threads 1 --out run.json
    python -m scripts.bench_worker floor   --preset sb3-zoo-cartpole --out floor.json

qapprox, sb3: one training run of `--steps` environment steps (default: the preset's), timed around
learn() only; every finished training episode is recorded as (step, seconds since learn() began,
return); then 20 greedy episodes on seeded envs shared by both libraries (`greedy_returns`).
floor: the bare costs the training loop cannot avoid (`floor`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from qapprox.dqn.config import DQNConfig, preset, replace
from qapprox.dqn.replay import Batch
from qapprox.scripts._cli import ArgumentParser, run, set_threads

EVAL_SEED = 1_000_000  # greedy evaluation envs are seeded EVAL_SEED + i on every side


# ---------------------------------------------------------------------- training runs
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


def greedy_returns(policy: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int) -> list[float]:
    """Returns of `episodes` greedy episodes, one env each (seeded EVAL_SEED + i), stepped as a batch."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * episodes,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=EVAL_SEED)
    running, returns, done = np.zeros(episodes), np.zeros(episodes), np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs.astype(np.float32)))
        running += np.where(done, 0.0, rewards)
        finished = (terminated | truncated) & ~done
        returns[finished] = running[finished]
        done |= finished
    envs.close()
    return returns.tolist()


def train_qapprox(config: DQNConfig, clock: EpisodeClock) -> tuple[float, Callable]:
    """qapprox's DQN without TensorBoard, checkpoints or evaluation during training; (seconds, policy)."""
    from qapprox.dqn.agent import DQN
    from qapprox.dqn.env_factory import make_vector_env

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


def train_sb3(config: DQNConfig, clock: EpisodeClock) -> tuple[float, Callable]:
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


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "gymnasium": gym.__version__,
                "numpy": np.__version__}
    try:
        import stable_baselines3

        versions["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return versions


# ---------------------------------------------------------------------- the floor
def per_call(fn: Callable[[], Any], iterations: int, repeats: int = 3) -> float:
    """Seconds per call of fn: the best of `repeats` timings of `iterations` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best


def env_step_seconds(env_id: str, n_envs: int | None, iterations: int) -> float:
    """Seconds per environment step under random actions: a bare env (n_envs None) or a SyncVectorEnv."""
    rng = np.random.default_rng(0)
    if n_envs is None:
        env = gym.make(env_id)
        env.reset(seed=0)
        it = iter(rng.integers(env.action_space.n, size=4 * iterations + 1).tolist())  # per_call: 1 + 3 · iterations

        def step() -> None:
            _, _, terminated, truncated, _ = env.step(next(it))
            if terminated or truncated:
                env.reset()
        return per_call(step, iterations)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs.reset(seed=0)
    actions = rng.integers(envs.single_action_space.n, size=(16, n_envs))
    counter = iter(range(10**12))
    return per_call(lambda: envs.step(actions[next(counter) % 16]), iterations) / n_envs


def floor(config: DQNConfig, iterations: int) -> dict[str, float]:
    """Bare costs (seconds): env step, batch-1 forward + argmax, and one update at batch_size.

    The update is the preset's own arithmetic and nothing else: target forward (plus the online forward
    on S' for Double DQN), online forward, gather, loss, backward, gradient-norm clip if on, Adam(fused).
    floor seconds per env step = env + act + (updates in the run / total steps) · update, where the run
    updates gradient_steps times at each multiple of train_freq after learning_starts (n_envs = 1).
    """
    from qapprox.approximators.networks import q_network

    env = gym.make(config.env_id)
    obs_shape, n_actions = env.observation_space.shape, int(env.action_space.n)
    env.close()
    q = q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation, config.dueling)
    q_target = q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation, config.dueling)
    q_target.requires_grad_(False)
    parameters = list(q.parameters())
    generator = torch.Generator().manual_seed(0)
    obs1 = torch.randn((1, *obs_shape), generator=generator)
    B = config.batch_size
    obs, next_obs = torch.randn((B, *obs_shape), generator=generator), torch.randn((B, *obs_shape), generator=generator)
    actions = torch.randint(n_actions, (B, 1), generator=generator)
    rewards, discounts = torch.ones(B), torch.full((B,), config.gamma)

    def act() -> None:
        with torch.inference_mode():
            q(obs1).argmax(dim=1).numpy()

    def update(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                q_next = q_target(next_obs)
                a_star = (q(next_obs) if config.double_q else q_next).argmax(dim=1, keepdim=True)
                y = rewards + discounts * q_next.gather(1, a_star).squeeze(1)
            q_taken = q(obs).gather(1, actions).squeeze(1)
            if config.loss == "mse":
                loss = 0.5 * (y - q_taken).square().mean()
            else:
                loss = torch.nn.functional.huber_loss(q_taken, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm, foreach=True)
            optimizer.step()
        return step

    update_iterations = max(iterations // 10, 10)
    result = {
        "env_step": env_step_seconds(config.env_id, None, iterations),
        "vector_env_step_n1": env_step_seconds(config.env_id, 1, iterations),
        "vector_env_step_n8": env_step_seconds(config.env_id, 8, iterations // 8 + 1),
        "act_batch1": per_call(act, iterations),
        "update_fused_adam": per_call(update(torch.optim.Adam(parameters, lr=config.learning_rate, fused=True)), update_iterations),
        "update_default_adam": per_call(update(torch.optim.Adam(parameters, lr=config.learning_rate)), update_iterations),
        "update_qapprox": qapprox_update_seconds(config, Batch(obs, actions.squeeze(1), rewards, next_obs, discounts,
                                                              torch.ones(B), torch.arange(B)), update_iterations),
    }
    # Updates the run makes: gradient_steps at each multiple of train_freq in (learning_starts, total].
    total = config.total_timesteps
    rounds = total // config.train_freq - min(config.learning_starts, total) // config.train_freq
    updates_per_step = config.gradient_steps * rounds / total
    result["updates_per_env_step"] = updates_per_step
    # The floor takes the cheaper bare update: autograd + fused Adam, or qapprox's own (by hand, flat w).
    cheapest_update = min(result["update_fused_adam"], result["update_qapprox"])
    result["floor_step"] = result["env_step"] + result["act_batch1"] + updates_per_step * cheapest_update
    result["floor_sps"] = 1.0 / result["floor_step"]
    return result


def qapprox_update_seconds(config: DQNConfig, batch: Batch, iterations: int) -> float:
    """qapprox's DQN.update on one fixed minibatch (the autograd floor's), bare: what the loop costs
    beyond is its overhead."""
    from qapprox.dqn.agent import DQN

    agent = DQN(replace(config, {"buffer_size": config.batch_size, "total_timesteps": 0}))
    seconds = per_call(lambda: agent.update(batch), iterations)
    agent.close()
    return seconds


# ---------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("qapprox", "sb3", "floor"))
    parser.add_argument("--preset", default="CartPole-v1", help="a preset of dqn.config.PRESETS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="total environment steps (default: the preset's)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--floor-iterations", type=int, default=20_000, help="env steps and forward passes timed")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"steps={args.steps} must be ≥ 1")
    if args.eval_episodes < 0 or args.floor_iterations < 1:
        raise ValueError(f"eval-episodes={args.eval_episodes} must be ≥ 0 and floor-iterations={args.floor_iterations} ≥ 1")
    threads = set_threads(args.threads) if args.threads else torch.get_num_threads()
    overrides = {"seed": args.seed, "logdir": "", "eval_interval": 0, "checkpoint_interval": 0, "device": "cpu",
                 "threads": threads}
    if args.steps is not None:
        overrides["total_timesteps"] = args.steps
    config = preset(args.preset, **overrides)
    result: dict[str, Any] = {"kind": args.kind, "preset": args.preset, "seed": args.seed, "threads": threads,
                              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_before": os.getloadavg()[0],
                              "versions": library_versions()}
    if args.kind == "floor":
        result["floor"] = floor(config, args.floor_iterations)
    else:
        clock = EpisodeClock()
        seconds, policy = (train_qapprox if args.kind == "qapprox" else train_sb3)(config, clock)
        result.update(steps=config.total_timesteps, seconds=seconds, sps=config.total_timesteps / seconds,
                      episodes=clock.rows, load_after=os.getloadavg()[0],
                      eval_returns=greedy_returns(policy, config.env_id, args.eval_episodes) if args.eval_episodes else [])
    Path(args.out).write_text(json.dumps(result))
    print(f"{args.kind} {args.preset} seed {args.seed}: " + (
        f"floor {result['floor']['floor_sps']:.0f} SPS" if args.kind == "floor" else f"{result['sps']:.0f} SPS, {result['seconds']:.1f} s"))
    return 0


if __name__ == "__main__":
    run(main)
