"""DQN (Mnih et al., 2015) with Double DQN, dueling networks, n-step returns and prioritized replay.

    agent = DQN(DQNConfig()).learn()          # CartPole-v1, TensorBoard + checkpoints under runs/
    actions = agent.predict(obs)              # greedy: argmax_a q̂(s, a, w)
    agent.save("cartpole.ckpt"); agent = DQN.load("cartpole.ckpt")

This module is the training loop; the algorithm (acting, targets, the update, the target update) is
dqn.algorithm's, and what a checkpoint holds is dqn.state's. For each step of the N vectorised envs:

    A_t ← ε-greedy(q̂(S_t, ·, w))  (one batched forward pass for all N)
    S_{t+1}, R_{t+1} ← env.step(A_t);  replay.add(S_t, A_t, R_{t+1}, S_{t+1}, terminated, truncated)
    every train_freq steps after learning_starts: a training round (gradient_steps updates)
    every target_update_interval steps: w⁻ ← τ w + (1 − τ) w⁻
    every log_interval / eval_interval / checkpoint_interval steps: log, evaluate greedily, save
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from qapprox.approximators.limits import check_memory, check_threads, cpu_count, format_bytes
from qapprox.approximators.policies import epsilon_greedy
from qapprox.dqn.algorithm import DivergenceError, DQNAlgorithm, refuse_assignment
from qapprox.dqn.checkpoint import save_checkpoint
from qapprox.dqn.config import DQNConfig, replace
from qapprox.dqn.console import StopOnSigint, make_progress_bar
from qapprox.dqn.env_factory import check_vector_env, make_vector_env
from qapprox.dqn.episodes import Episodes
from qapprox.dqn.evaluation import EVAL_SEED_OFFSET, greedy_returns, reward_threshold, solved
from qapprox.dqn.logging import RunLogger, checkpoint_path, make_run_dir
from qapprox.dqn.prioritized import PrioritizedReplayBuffer
from qapprox.dqn.replay import ReplayBuffer
from qapprox.dqn.schedules import dqn_schedules
from qapprox.dqn.state import agent_state, parameter_count, restore
from qapprox.envs.validation import check_int

__all__ = ["DQN", "DivergenceError"]

ASYNC_ENVS_PER_CPU = 4  # vectorization="async" starts one process per env: at most this many per CPU
RECENT_EPISODES = 20  # recent_return averages the last this many training episodes


def resolve_device(device: str) -> torch.device:
    """'auto' → cuda if available else cpu; 'cuda' without a GPU is a one-line ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(device)


def crossed(before: int, after: int, interval: int) -> bool:
    """Did the step counter pass a multiple of `interval` going from `before` to `after`?"""
    return after // interval > before // interval


class DQN:
    """A deep Q-network agent: the DQN algorithm (dqn.algorithm) run on N vectorised envs with a replay buffer."""

    q = property(lambda self: self.algorithm.q, refuse_assignment, doc="the online network q̂(·, w)")
    q_target = property(lambda self: self.algorithm.q_target, refuse_assignment, doc="the target network q̂(·, w⁻)")

    def __init__(self, config: DQNConfig, env: str | gym.vector.VectorEnv | None = None,
                 run_dir: str | Path | None = None) -> None:
        if isinstance(env, str):
            config = replace(config, {"env_id": env}, "overrides")
        self.config = config.validate()
        torch.set_num_threads(check_threads("threads", config.threads))
        if config.vectorization == "async" and config.n_envs > ASYNC_ENVS_PER_CPU * cpu_count():
            raise ValueError(f"n_envs={config.n_envs} async environments are more than {ASYNC_ENVS_PER_CPU} "
                             f"processes per CPU ({cpu_count()} CPUs); use fewer or vectorization='sync'")
        self.device = resolve_device(config.device)
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)

        self.envs = env if isinstance(env, gym.vector.VectorEnv) else make_vector_env(
            config.env_id, config.n_envs, config.vectorization)
        self.obs_shape, self.n_actions, obs_dtype = check_vector_env(self.envs)
        self.n_envs = self.envs.num_envs

        weights = parameter_count(config, self.obs_shape, self.n_actions)
        check_memory(f"a Q-network of {weights:,} weights (hidden={config.hidden})", 5 * 4 * weights)  # w, w⁻, ∇, 2 moments
        self.algorithm = DQNAlgorithm(self.config, self.obs_shape, self.n_actions, self.device)
        buffer_kwargs = dict(capacity=config.buffer_size, obs_shape=self.obs_shape, obs_dtype=obs_dtype,
                             n_envs=self.n_envs, n_step=config.n_step, gamma=config.gamma,
                             device=self.device, seed=config.seed)
        self.replay = (PrioritizedReplayBuffer(**buffer_kwargs, alpha=config.priority_alpha,
                                               beta0=config.priority_beta0, priority_eps=config.priority_eps)
                       if config.prioritized else ReplayBuffer(**buffer_kwargs))

        self.epsilon_schedule, self.beta_schedule = dqn_schedules(config, config.total_timesteps)  # learn() resets them
        # Counters (saved in checkpoints) and what the loop keeps between calls of learn().
        self.global_step = self.episodes = 0
        self.best_eval_return = -math.inf
        self.solved_step: int | None = None  # first evaluation with mean ≥ the env's reward threshold
        self.interrupted = False
        self.last_checkpoint: Path | None = None
        self.run_dir = Path(run_dir) if run_dir is not None else (
            make_run_dir(config.logdir, config.env_id, config.run_name, config.seed) if config.logdir else None)
        self.logger: RunLogger | None = None
        self._obs = np.zeros((self.n_envs, *self.obs_shape), dtype=obs_dtype)  # S_t of every env
        self._obs_dtype = torch.from_numpy(self._obs).dtype  # the same dtype in torch
        self._needs_reset = True
        self._episodes = Episodes(self.n_envs)
        self._recent_returns: deque[float] = deque(maxlen=RECENT_EPISODES)
        self._last_log = (0, time.perf_counter())  # (step, time) of the last log: SPS and the divergence check
        self._eval_envs: gym.vector.VectorEnv | None = None

    @property
    def updates(self) -> int:
        """Gradient steps taken so far (the algorithm's count)."""
        return self.algorithm.updates

    @updates.setter
    def updates(self, value: int) -> None:
        self.algorithm.updates = value

    # ------------------------------------------------------------------ the loop
    def learn(self, total_timesteps: int | None = None, progress_bar: bool = False) -> DQN:
        """Train until global_step ≥ total_timesteps (default config.total_timesteps; an overall target,
        so a resumed agent continues to it). Ctrl-C stops after the current step and saves a checkpoint."""
        config = self.config
        total = check_int("total_timesteps", config.total_timesteps if total_timesteps is None else total_timesteps, 0)
        self.epsilon_schedule, self.beta_schedule = dqn_schedules(config, total)  # over this run's total
        self._open_logger()
        if self._needs_reset:  # a fresh or resumed agent: new episodes, seeded by (seed, step)
            self.replay.end_episodes()  # a resumed replay's open episodes end here, truncated
            obs, _ = self.envs.reset(seed=config.seed + self.global_step)
            np.copyto(self._obs, obs, casting="unsafe")
            self._episodes.start()
            self._needs_reset = False
        bar = make_progress_bar(progress_bar, self.global_step, total)
        self._last_log = (self.global_step, time.perf_counter())
        self.interrupted = False
        with StopOnSigint() as stop:
            while self.global_step < total and not stop.requested:
                self.step(bar)
            self.interrupted = stop.requested
        if bar is not None:
            bar.close()
        self._log_training()
        if self.run_dir is not None:
            self.save(checkpoint_path(self.run_dir))
        if self.logger is not None and not self.interrupted:
            self.logger.hparams(self.config.to_dict(), self.final_metrics(), self.global_step)
            self.logger.flush()
        return self

    def step(self, bar: Any = None) -> None:
        """One step of all N envs, then whatever training, target update, logging, evaluation is due."""
        config, before = self.config, self.global_step
        actions, q_taken = self.algorithm.act(self._obs, self.epsilon_schedule(before), values=self.logger is not None)
        next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        real_next_obs = next_obs
        if "_final_obs" in info and info["_final_obs"].any():  # SAME_STEP autoreset: next_obs is already S_0
            real_next_obs = next_obs.copy()  # of the next episode; the buffer gets the true final S_T
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
        self.replay.add(self._obs, actions, rewards, real_next_obs, terminated, truncated)
        for episode in self._episodes.step(rewards, terminated, truncated, q_taken):
            self.episodes += 1
            self._recent_returns.append(episode.total_return)
            if self.logger is not None:
                self._log_episode(episode, real_next_obs[episode.env:episode.env + 1])
        np.copyto(self._obs, next_obs, casting="unsafe")
        self.global_step += self.n_envs
        step = self.global_step

        if step > config.learning_starts and self.replay.ready(config.batch_size) and crossed(before, step, config.train_freq):
            try:
                self.algorithm.train(self.replay, self.beta_schedule(step))
            except DivergenceError as exc:
                raise self._diverged(exc) from None
        if crossed(before, step, config.target_update_interval):
            self.algorithm.update_target()
        if crossed(before, step, config.log_interval):
            self._log_training(bar)
        if config.eval_interval and crossed(before, step, config.eval_interval):
            self._evaluate_and_log()
        if config.checkpoint_interval and self.run_dir is not None and crossed(before, step, config.checkpoint_interval):
            self.save(checkpoint_path(self.run_dir))

    # ------------------------------------------------------------------ acting and evaluation
    @torch.inference_mode()
    def predict(self, obs: np.ndarray, deterministic: bool = True, epsilon: float = 0.05) -> np.ndarray:
        """Greedy actions argmax_a q̂(s, a, w) for a batch of observations (ε-greedy if not deterministic)."""
        obs = np.asarray(obs)
        single = obs.shape == self.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != self.obs_shape:
            raise ValueError(f"obs shape {obs.shape} does not match the env's {self.obs_shape} (or a batch of them)")
        q_values = self.q(torch.as_tensor(batch, device=self.device, dtype=self._obs_dtype))
        if deterministic:
            actions = q_values.argmax(dim=1).cpu().numpy()
        else:
            actions = epsilon_greedy(q_values.float().cpu().numpy(), epsilon, self.algorithm.rng)
        return actions[0] if single else actions

    def evaluate(self, episodes: int | None = None, envs: gym.vector.VectorEnv | None = None,
                 seed: int | None = None) -> np.ndarray:
        """Returns of `episodes` greedy episodes (default config.eval_episodes), run side by side
        (dqn.evaluation.greedy_returns), on envs seeded seed + EVAL_SEED_OFFSET + i by default.

        By default one env per episode (so no env's short episodes crowd out another's long ones);
        given `envs` with N copies, copy i runs its share of the episodes in turn.
        """
        episodes = self.config.eval_episodes if episodes is None else episodes
        if envs is None:
            if self._eval_envs is None or self._eval_envs.num_envs != episodes:
                self._eval_envs = make_vector_env(self.config.env_id, episodes)
            envs = self._eval_envs
        return greedy_returns(self.predict, envs, episodes, self.config.seed + EVAL_SEED_OFFSET if seed is None else seed)

    def _evaluate_and_log(self) -> None:
        returns = self.evaluate()
        mean = float(returns.mean())
        if self.logger is not None:
            self.logger.scalars({"eval/mean_return": mean, "eval/std_return": float(returns.std())}, self.global_step)
        if self.solved_step is None and solved(returns, self.reward_threshold):
            self.solved_step = self.global_step
        if mean > self.best_eval_return:
            self.best_eval_return = mean
            if self.run_dir is not None:
                self.save(checkpoint_path(self.run_dir, "best"), track=False)

    @property
    def recent_return(self) -> float:
        """Mean return of the last RECENT_EPISODES finished training episodes (nan before the first)."""
        return float(np.mean(self._recent_returns)) if self._recent_returns else math.nan

    @property
    def reward_threshold(self) -> float | None:
        return reward_threshold(self.config.env_id)

    def final_metrics(self) -> dict[str, float]:
        return {
            "hparams/recent_return": self.recent_return,
            "hparams/best_eval_return": self.best_eval_return if math.isfinite(self.best_eval_return) else float("nan"),
            "hparams/solved_step": float(self.solved_step) if self.solved_step is not None else float("nan"),
        }

    # ------------------------------------------------------------------ logs
    def _log_episode(self, episode: Any, final_obs: np.ndarray) -> None:
        """A finished episode's return and length, and its overestimation view (dqn.episodes): after a
        time-limit truncation the unseen tail G_T is estimated by max_a q̂(S_T, a, w), the online network's
        greedy value, the same w the logged q̂(S_t, A_t, w) come from (the TD target's q̂(S', a*, w⁻) differs)."""
        tail = 0.0
        if episode.truncated:
            with torch.inference_mode():
                tail = float(self.q(torch.as_tensor(final_obs, device=self.device, dtype=self._obs_dtype)).max())
        self.logger.episode(episode.total_return, episode.length, episode.q_taken,
                            episode.observed(self.config.gamma, tail), self.global_step)

    def _log_training(self, bar: Any = None) -> None:
        """ε, steps per second and the means of the updates since the last log (the loop's one device sync)."""
        step, now = self.global_step, time.perf_counter()
        epsilon = self.epsilon_schedule(step)
        if step == self._last_log[0]:
            return
        try:
            stats = self.algorithm.pop_stats()  # before _last_log moves: a divergence names its window
        except DivergenceError as exc:
            raise self._diverged(exc) from None
        sps = (step - self._last_log[0]) / max(now - self._last_log[1], 1e-9)
        self._last_log = (step, now)
        values = {"charts/epsilon": epsilon, "charts/SPS": sps}
        if stats is not None:
            values.update(zip(("losses/td_loss", "losses/q_values", "losses/grad_norm", "losses/q_max_abs"), stats))
        if self.logger is not None:
            self.logger.scalars(values, step)
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(ret=f"{self.recent_return:.1f}", epsilon=f"{epsilon:.3f}", sps=f"{sps:.0f}", refresh=False)

    def _diverged(self, error: DivergenceError) -> DivergenceError:
        """The algorithm's divergence, with where the loop stands: the step and the last good checkpoint.
        The run's TensorBoard log gets charts/diverged = 1 at this step (what dqn.analysis reads back)."""
        kept = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
        if self.logger is not None:
            self.logger.scalars({"charts/diverged": 1.0}, self.global_step)
            self.logger.flush()
        return DivergenceError(f"training diverged at step {self.global_step}: {error} "
                               f"(in the updates after step {self._last_log[0]}); {kept}")

    def _open_logger(self) -> None:
        if self.run_dir is None or self.logger is not None:
            return
        resumed = self.global_step > 0
        self.logger = RunLogger(self.run_dir, purge_step=self.global_step + 1 if resumed else None)
        if not resumed:
            self.logger.config(self.config.to_dict())
        print(f"torch threads: {torch.get_num_threads()} (config.threads); device: {self.device}; "
              f"replay buffer: {format_bytes(self.replay.nbytes)} preallocated for {self.config.buffer_size:,} transitions")

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        self.envs.close()
        if self._eval_envs is not None:
            self._eval_envs.close()

    # ------------------------------------------------------------------ checkpoints (dqn.state)
    def state_dict(self, include_replay: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(tensors, meta) of a checkpoint of this agent (dqn.state.agent_state)."""
        return agent_state(self, include_replay)

    def save(self, path: str | Path, track: bool = True) -> Path:
        """Atomic, pickle-free checkpoint at `path`; refuses (DivergenceError) to save non-finite weights."""
        try:
            self.algorithm.check_finite(0.0, 0.0, 0.0)  # the parameters must be finite
        except DivergenceError as exc:
            raise self._diverged(exc) from None
        if track and self.logger is not None:
            self.logger.flush()  # TensorBoard holds every step up to the checkpoint, even after a SIGKILL
        path = save_checkpoint(path, *self.state_dict())
        if track:
            self.last_checkpoint = path
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, env: str | gym.vector.VectorEnv | None = None,
             run_dir: str | Path | None = None, max_bytes: int | None = None, **overrides: Any) -> DQN:
        """An agent restored from a checkpoint: weights, optimizer, counters, RNG states (and replay if saved).

        Everything in the file is checked first (dqn.schema); any failure is a one-line
        CheckpointError naming the path and the field. What the file cannot decide: the run directory
        (`run_dir`, default beside the checkpoint: the folder above its checkpoints/ folder; none with
        logdir=""), the execution settings (threads, device, compile, vectorization: `overrides` or the
        defaults), and an env id with a module part ("module:Env"), refused unless `env` names the env.
        `overrides` change config fields (e.g. total_timesteps); the structural ones (env_id, q_network,
        hidden, activation, dueling) must agree with the checkpoint. The run's envs start new episodes.
        `max_bytes` caps the file's size (default: what the checkpoint's own config implies).
        """
        return restore(cls, path, device=device, env=env, run_dir=run_dir, max_bytes=max_bytes, **overrides)

