"""DQN (Mnih et al., 2015) with Double DQN, dueling networks, n-step returns and prioritized replay.

    agent = DQN(DQNConfig()).learn()          # CartPole-v1, TensorBoard + checkpoints under runs/
    actions = agent.predict(obs)              # greedy: argmax_a q̂(s, a, w)
    agent.save("cartpole.ckpt"); agent = DQN.load("cartpole.ckpt")
    population = DQN(DQNConfig(), seeds=range(16)).learn()   # 16 agents in lockstep, one per seed

This module is the training loop; the algorithm (acting, targets, the update, the target update) is
dqn.algorithm's, and what a checkpoint holds is dqn.state's. For each step of the N vectorised envs:

    A_t ← ε-greedy(q̂(S_t, ·, w))  (one batched forward pass for all N)
    S_{t+1}, R_{t+1} ← env.step(A_t);  replay.add(S_t, A_t, R_{t+1}, S_{t+1}, terminated, truncated)
    every train_freq steps after learning_starts: a training round (gradient_steps updates)
    every target_update_interval steps: w⁻ ← τ w + (1 − τ) w⁻
    every log_interval / eval_interval / checkpoint_interval steps: log, evaluate greedily, save

A population (`seeds`, K of them; one agent is K = 1) runs the same loop once for all members: K·N envs
in one vector env, one forward pass for all their actions, the replay and the networks with a leading
member dimension, one batched update. Member k is the agent of seeds[k] — its network initialisation,
env seeds, replay draws, ε coin flips, episodes, evaluations and checkpoints — and learns exactly as
that agent alone (tests/test_population.py). Each member logs to its own run folder; a member whose
training diverges stops (its last good checkpoint kept) while the others go on (dqn.population).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from qapprox.approximators.limits import check_memory, check_threads, cpu_count, format_bytes
from qapprox.approximators.policies import epsilon_greedy
from qapprox.dqn.algorithm import DivergenceError, DQNAlgorithm, one_member, refuse_assignment
from qapprox.dqn.checkpoint import save_checkpoint
from qapprox.dqn.config import DQNConfig, replace
from qapprox.dqn.console import StopOnSigint, make_progress_bar
from qapprox.dqn.env_factory import check_vector_env, make_vector_env
from qapprox.dqn.episodes import Episodes
from qapprox.dqn.evaluation import EVAL_SEED_OFFSET, greedy_returns, reward_threshold, solved
from qapprox.dqn.logging import RunLogger, checkpoint_path, make_run_dir
from qapprox.dqn.population import Member, check_seeds, commit, make_population_dir, pending_checkpoint, write_manifest
from qapprox.dqn.prioritized import PrioritizedReplayBuffer
from qapprox.dqn.replay import ReplayBuffer
from qapprox.dqn.schedules import dqn_schedules
from qapprox.dqn.state import agent_state, parameter_count, restore
from qapprox.envs.validation import check_int

__all__ = ["DQN", "DivergenceError"]

ASYNC_ENVS_PER_CPU = 4  # vectorization="async" starts one process per env: at most this many per CPU


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


def _member_field(name: str, doc: str) -> property:
    """An attribute of the one member of a single agent (a population reads members[k].name)."""
    def get(self: DQN) -> Any:
        return getattr(one_member(name, self.members), name)

    def set_(self: DQN, value: Any) -> None:
        setattr(one_member(name, self.members), name, value)

    return property(get, set_, doc=doc)


class DQN:
    """A deep Q-network agent, or a population of them: the DQN algorithm (dqn.algorithm) run on N vectorised
    envs per member with a replay buffer (module doc)."""

    q = property(lambda self: self.algorithm.q, refuse_assignment, doc="the online network q̂(·, w)")
    q_target = property(lambda self: self.algorithm.q_target, refuse_assignment, doc="the target network q̂(·, w⁻)")
    episodes = _member_field("episodes", "training episodes finished")
    best_eval_return = _member_field("best_eval_return", "the best mean greedy evaluation return so far")
    solved_step = _member_field("solved_step", "first evaluation with mean ≥ the env's reward threshold")
    last_checkpoint = _member_field("last_checkpoint", "the last checkpoint written (or loaded)")
    run_dir = _member_field("run_dir", "the run folder (None: logdir='')")
    logger = _member_field("logger", "the TensorBoard writer, open during learn()")
    _recent_returns = _member_field("recent_returns", "the returns of the last training episodes")
    recent_return = property(lambda self: one_member("recent_return", self.members).recent_return,
                             doc="mean return of the last RECENT_EPISODES training episodes (nan before the first)")

    def __init__(self, config: DQNConfig, env: str | gym.vector.VectorEnv | None = None,
                 run_dir: str | Path | None = None, seeds: Sequence[int] | None = None) -> None:
        if isinstance(env, str):
            config = replace(config, {"env_id": env}, "overrides")
        config.validate()
        seeds = [config.seed] if seeds is None else check_seeds(seeds)
        self.config = config = replace(config, {"seed": seeds[0]}, "overrides")
        K = len(seeds)
        torch.set_num_threads(check_threads("threads", config.threads))
        if config.vectorization == "async" and K * config.n_envs > ASYNC_ENVS_PER_CPU * cpu_count():
            raise ValueError(f"{K * config.n_envs} async environments (n_envs={config.n_envs} × {K} members) are "
                             f"more than {ASYNC_ENVS_PER_CPU} processes per CPU ({cpu_count()} CPUs); use fewer or "
                             "vectorization='sync'")
        self.device = resolve_device(config.device)
        random.seed(config.seed)
        np.random.seed(config.seed)

        self.envs = env if isinstance(env, gym.vector.VectorEnv) else make_vector_env(
            config.env_id, K * config.n_envs, config.vectorization)
        self.obs_shape, self.n_actions, obs_dtype = check_vector_env(self.envs)
        if self.envs.num_envs % K:
            raise ValueError(f"a vector env of {self.envs.num_envs} copies cannot be split among {K} members")
        self.n_envs = self.envs.num_envs // K  # per member

        weights = parameter_count(config, self.obs_shape, self.n_actions)
        networks = "a Q-network" if K == 1 else f"{K} Q-networks"
        check_memory(f"{networks} of {weights:,} weights (hidden={config.hidden})", 5 * 4 * weights * K)  # w, w⁻, ∇, 2 moments
        self.algorithm = DQNAlgorithm(config, self.obs_shape, self.n_actions, self.device, seeds)
        buffer_kwargs = dict(capacity=config.buffer_size, obs_shape=self.obs_shape, obs_dtype=obs_dtype,
                             n_envs=self.n_envs, n_step=config.n_step, gamma=config.gamma,
                             device=self.device, seed=seeds if K > 1 else config.seed)
        self.replay = (PrioritizedReplayBuffer(**buffer_kwargs, alpha=config.priority_alpha,
                                               beta0=config.priority_beta0, priority_eps=config.priority_eps)
                       if config.prioritized else ReplayBuffer(**buffer_kwargs))

        self.epsilon_schedule, self.beta_schedule = dqn_schedules(config, config.total_timesteps)  # learn() resets them
        # Counters (saved in checkpoints) and what the loop keeps between calls of learn().
        self.global_step = 0  # environment steps of each member (N per loop step)
        self.interrupted = False
        started = int(time.time())
        self.population_dir: Path | None = None
        if K > 1 and (run_dir is not None or config.logdir):
            self.population_dir = Path(run_dir) if run_dir is not None else make_population_dir(
                config.logdir, config.env_id, config.run_name, started)
        self.members = [Member(replace(config, {"seed": seed}, "overrides"), None) for seed in seeds]
        self.retired: list[dict[str, Any]] = []  # members a resumed population left behind: they had stopped
        for member in self.members:
            if K == 1 and run_dir is not None:
                member.run_dir = Path(run_dir)
            elif self.population_dir is not None or (K == 1 and config.logdir):
                root = self.population_dir.parent if self.population_dir is not None else config.logdir
                member.run_dir = make_run_dir(root, config.env_id, config.run_name, member.seed, started)
        self._obs = np.zeros((K * self.n_envs, *self.obs_shape), dtype=obs_dtype)  # S_t of every env
        self._obs_dtype = torch.from_numpy(self._obs).dtype  # the same dtype in torch
        self._needs_reset = True
        self._episodes = Episodes(K * self.n_envs)
        self._last_log = (0, time.perf_counter())  # (step, time) of the last log: SPS and the divergence check
        self._eval_envs: gym.vector.VectorEnv | None = None

    @property
    def updates(self) -> int:
        """Gradient steps taken so far (the algorithm's count; every member takes each one)."""
        return self.algorithm.updates

    @updates.setter
    def updates(self, value: int) -> None:
        self.algorithm.updates = value

    @property
    def seeds(self) -> list[int]:
        return [member.seed for member in self.members]

    def running(self) -> list[int]:
        """The members still training (not stopped by a divergence)."""
        return [k for k, member in enumerate(self.members) if member.stopped is None]

    # ------------------------------------------------------------------ the loop
    def learn(self, total_timesteps: int | None = None, progress_bar: bool = False) -> DQN:
        """Train until global_step ≥ total_timesteps (default config.total_timesteps; an overall target,
        so a resumed agent continues to it). Ctrl-C stops after the current step and saves a checkpoint."""
        config = self.config
        total = check_int("total_timesteps", config.total_timesteps if total_timesteps is None else total_timesteps, 0)
        self.epsilon_schedule, self.beta_schedule = dqn_schedules(config, total)  # over this run's total
        self._open_loggers()
        if self._needs_reset:  # a fresh or resumed agent: new episodes, seeded by (seed, step)
            self.replay.end_episodes()  # a resumed replay's open episodes end here, truncated
            seeds = [m.seed + self.global_step + i for m in self.members for i in range(self.n_envs)]
            obs, _ = self.envs.reset(seed=seeds)
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
        self._save_latest()
        if not self.interrupted:
            for k in self.running():
                member = self.members[k]
                if member.logger is not None:
                    member.logger.hparams(member.config.to_dict(), self.final_metrics(k), self.global_step)
                    member.logger.flush()
        return self

    def step(self, bar: Any = None) -> None:
        """One step of all envs, then whatever training, target update, logging, evaluation is due."""
        config, before = self.config, self.global_step
        logging = any(member.logger is not None for member in self.members)
        actions, q_taken = self.algorithm.act(self._obs, self.epsilon_schedule(before), values=logging)
        next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        real_next_obs = next_obs
        if "_final_obs" in info and info["_final_obs"].any():  # SAME_STEP autoreset: next_obs is already S_0
            real_next_obs = next_obs.copy()  # of the next episode; the buffer gets the true final S_T
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
        self.replay.add(self._obs, actions, rewards, real_next_obs, terminated, truncated)
        for episode in self._episodes.step(rewards, terminated, truncated, q_taken):
            k = episode.env // self.n_envs
            member = self.members[k]
            member.episodes += 1
            member.recent_returns.append(episode.total_return)
            if member.logger is not None and member.stopped is None:
                self._log_episode(k, episode, real_next_obs[episode.env:episode.env + 1])
        np.copyto(self._obs, next_obs, casting="unsafe")
        self.global_step += self.n_envs
        step = self.global_step

        if step > config.learning_starts and self.replay.ready(config.batch_size) and crossed(before, step, config.train_freq):
            self.algorithm.train(self.replay, self.beta_schedule(step))
            if self.algorithm.found_divergence:  # prioritized replay checks δ inside the round
                self._stop(self.algorithm.diverged())
        if crossed(before, step, config.target_update_interval):
            self.algorithm.update_target()
        if crossed(before, step, config.log_interval):
            self._log_training(bar)
        if config.eval_interval and crossed(before, step, config.eval_interval):
            self._evaluate_and_log()
        if config.checkpoint_interval and crossed(before, step, config.checkpoint_interval):
            self._save_latest()

    # ------------------------------------------------------------------ acting and evaluation
    @torch.inference_mode()
    def predict(self, obs: np.ndarray, deterministic: bool = True, epsilon: float = 0.05) -> np.ndarray:
        """Greedy actions argmax_a q̂(s, a, w) for a batch of observations (ε-greedy if not deterministic).
        A population takes (K, B, *obs_shape) — row k for member k — and returns (K, B) actions."""
        K, obs = len(self.members), np.asarray(obs)
        single = K == 1 and obs.shape == self.obs_shape
        batch = obs[None] if single else obs
        leading = 1 if K == 1 else 2
        if batch.shape[leading:] != self.obs_shape or (K > 1 and batch.shape[0] != K):
            expected = f"(K={K}, B, *{self.obs_shape})" if K > 1 else f"{self.obs_shape} (or a batch of them)"
            raise ValueError(f"obs shape {obs.shape} does not match {expected}")
        rows = np.ascontiguousarray(batch.reshape(-1, *self.obs_shape), dtype=self._obs.dtype)
        q_values = self.algorithm.q_values(rows)  # (K, B, |A|)
        if deterministic:
            actions = q_values.argmax(axis=2)
        else:
            actions = epsilon_greedy(q_values, epsilon, self.algorithm.rngs)
        actions = actions[0] if K == 1 else actions
        return actions[0] if single else actions

    def evaluate(self, episodes: int | None = None, envs: gym.vector.VectorEnv | None = None,
                 seed: int | None = None) -> np.ndarray:
        """Returns of `episodes` greedy episodes (default config.eval_episodes) per member, run side by side
        (dqn.evaluation.greedy_returns) on envs seeded seed_k + EVAL_SEED_OFFSET + i by default (`seed`: seed
        + i for every member). One agent: shape (episodes,); a population: (K, episodes).

        By default one env per episode (so no env's short episodes crowd out another's long ones);
        given `envs` with N copies per member, copy i runs its share of the episodes in turn.
        """
        K = len(self.members)
        episodes = self.config.eval_episodes if episodes is None else check_int("episodes", episodes, 1)
        if envs is None:
            if self._eval_envs is None or self._eval_envs.num_envs != K * episodes:
                if self._eval_envs is not None:
                    self._eval_envs.close()
                self._eval_envs = make_vector_env(self.config.env_id, K * episodes)
            envs = self._eval_envs
        copies = envs.num_envs // K
        if envs.num_envs % K or (K > 1 and episodes % copies):
            raise ValueError(f"{envs.num_envs} evaluation envs cannot run {episodes} episodes for each of {K} members "
                             "(give K × c copies with c dividing the episodes, or none)")
        seeds = [(m.seed + EVAL_SEED_OFFSET if seed is None else seed) + i for m in self.members for i in range(copies)]

        def policy(obs: np.ndarray) -> np.ndarray:
            return self.predict(obs.reshape(K, copies, *self.obs_shape) if K > 1 else obs).reshape(-1)

        returns = greedy_returns(policy, envs, K * episodes, seeds)
        return returns if K == 1 else returns.reshape(K, episodes)

    def _evaluate_and_log(self) -> None:
        returns = self.evaluate().reshape(len(self.members), -1)
        for k in self.running():
            member, mean = self.members[k], float(returns[k].mean())
            if member.logger is not None:
                member.logger.scalars({"eval/mean_return": mean, "eval/std_return": float(returns[k].std())},
                                      self.global_step)
            if member.solved_step is None and solved(returns[k], self.reward_threshold):
                member.solved_step = self.global_step
            if mean > member.best_eval_return:
                member.best_eval_return = mean
                if member.run_dir is not None and member.stopped is None:
                    self.save(checkpoint_path(member.run_dir, "best"), track=False, member=k)

    @property
    def reward_threshold(self) -> float | None:
        return reward_threshold(self.config.env_id)

    def final_metrics(self, member: int = 0) -> dict[str, float]:
        m = self.members[member]
        return {
            "hparams/recent_return": m.recent_return,
            "hparams/best_eval_return": m.best_eval_return if math.isfinite(m.best_eval_return) else float("nan"),
            "hparams/solved_step": float(m.solved_step) if m.solved_step is not None else float("nan"),
        }

    # ------------------------------------------------------------------ logs
    def _log_episode(self, k: int, episode: Any, final_obs: np.ndarray) -> None:
        """A finished episode's return and length, and its overestimation view (dqn.episodes): after a
        time-limit truncation the unseen tail G_T is estimated by max_a q̂(S_T, a, w), the online network's
        greedy value, the same w the logged q̂(S_t, A_t, w) come from (the TD target's q̂(S', a*, w⁻) differs)."""
        tail = 0.0
        if episode.truncated:
            with torch.inference_mode():
                obs = torch.as_tensor(final_obs, device=self.device, dtype=self._obs_dtype)
                tail = float(self.algorithm.qs[k](obs).max())
        self.members[k].logger.episode(episode.total_return, episode.length, episode.q_taken,
                                       episode.observed(self.config.gamma, tail), self.global_step)

    def _log_training(self, bar: Any = None) -> None:
        """ε, steps per second and the means of the updates since the last log (the loop's one device sync),
        per member; the divergence guard."""
        step, now = self.global_step, time.perf_counter()
        epsilon = self.epsilon_schedule(step)
        if step == self._last_log[0]:
            return
        stats = self.algorithm.pop_stats()  # before _last_log moves: a divergence names its window
        self._stop(self.algorithm.diverged(stats))
        sps = (step - self._last_log[0]) / max(now - self._last_log[1], 1e-9)
        self._last_log = (step, now)
        for k in self.running():
            member = self.members[k]
            if member.logger is None:
                continue
            values = {"charts/epsilon": epsilon, "charts/SPS": sps}
            if stats is not None:
                values.update(zip(("losses/td_loss", "losses/q_values", "losses/grad_norm", "losses/q_max_abs"),
                                  stats[k].tolist()))
            member.logger.scalars(values, step)
        if bar is not None:
            running = self.running()
            recent = [self.members[k].recent_return for k in running]
            shown = float(np.nanmedian(recent)) if any(math.isfinite(r) for r in recent) else math.nan
            bar.update(step - bar.n)
            bar.set_postfix(ret=f"{shown:.1f}", epsilon=f"{epsilon:.3f}", sps=f"{sps * len(running):.0f}", refresh=False)

    def _stop(self, diverged: dict[int, str]) -> None:
        """Members whose training diverged stop, each logging charts/diverged = 1 at this step (what
        dqn.analysis reads back) and keeping its last good checkpoint; when none would be left, this is
        the run's DivergenceError, with the step and the last good checkpoint."""
        if not diverged:
            return
        for k in diverged:
            member = self.members[k]
            if member.logger is not None:
                member.logger.scalars({"charts/diverged": 1.0}, self.global_step)
                member.logger.flush()
        last = len(diverged) == len(self.running())
        for k, reason in diverged.items():
            member = self.members[k]
            kept = f"last good checkpoint: {member.last_checkpoint}" if member.last_checkpoint else "no checkpoint was written"
            message = (f"training diverged at step {self.global_step}: {reason} "
                       f"(in the updates after step {self._last_log[0]}); {kept}")
            if len(self.members) == 1:
                raise DivergenceError(message)
            member.stopped = message
            if not last:
                self.algorithm.stop(k)
                print(f"member seed {member.seed} stopped: {message}")
        if last:
            raise DivergenceError(f"every member diverged; the last at step {self.global_step}: "
                                  + "; ".join(f"seed {self.members[k].seed}: {reason}" for k, reason in diverged.items()))

    def _open_loggers(self) -> None:
        if all(m.run_dir is None or m.logger is not None or m.stopped for m in self.members):
            return
        resumed = self.global_step > 0
        for member in self.members:
            if member.run_dir is None or member.logger is not None or member.stopped:
                continue
            member.logger = RunLogger(member.run_dir, purge_step=self.global_step + 1 if resumed else None)
            if not resumed:
                member.logger.config(member.config.to_dict())
        K = len(self.members)
        print(f"torch threads: {torch.get_num_threads()} (config.threads); device: {self.device}; "
              f"replay buffer: {format_bytes(self.replay.nbytes)} preallocated for {self.config.buffer_size:,} "
              f"transitions{f' × {K} members' if K > 1 else ''}")

    def close(self) -> None:
        for member in self.members:
            if member.logger is not None:
                member.logger.close()
                member.logger = None
        self.envs.close()
        if self._eval_envs is not None:
            self._eval_envs.close()

    # ------------------------------------------------------------------ checkpoints (dqn.state)
    def state_dict(self, include_replay: bool | None = None, member: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
        """(tensors, meta) of a checkpoint of member k (dqn.state.agent_state): a single agent's checkpoint."""
        return agent_state(self, include_replay, member)

    def save(self, path: str | Path, track: bool = True, member: int = 0) -> Path:
        """Atomic, pickle-free checkpoint of member k at `path` (a single agent's checkpoint, which DQN.load
        reads); refuses (DivergenceError) to save non-finite weights."""
        self._stop(self.algorithm.diverged())  # the parameters must be finite
        if self.members[member].stopped:
            raise DivergenceError(self.members[member].stopped)
        logger = self.members[member].logger
        if track and logger is not None:
            logger.flush()  # TensorBoard holds every step up to the checkpoint, even after a SIGKILL
        path = save_checkpoint(path, *self.state_dict(member=member))
        if track:
            self.members[member].last_checkpoint = path
        return path

    def _save_latest(self) -> None:
        """Every running member's latest.ckpt; a population's at one step, committed by its manifest
        (dqn.population: SIGKILL-safe)."""
        if len(self.members) == 1:
            if self.run_dir is not None:
                self.save(checkpoint_path(self.run_dir))
            return
        if self.population_dir is None:
            return
        step = self.global_step
        self._stop(self.algorithm.diverged())
        for k in self.running():
            self.save(pending_checkpoint(self.members[k].run_dir, step), member=k)
        write_manifest(self.population_dir, self.members, step, self.retired)
        commit(self.members, step)
        for k in self.running():
            self.members[k].last_checkpoint = checkpoint_path(self.members[k].run_dir)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, env: str | gym.vector.VectorEnv | None = None,
             run_dir: str | Path | None = None, max_bytes: int | None = None, **overrides: Any) -> DQN:
        """An agent restored from a checkpoint: weights, optimizer, counters, RNG states (and replay if saved);
        a population from its folder or population.json (every running member's latest.ckpt).

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
