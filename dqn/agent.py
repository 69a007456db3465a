"""DQN (Mnih et al., 2015) with Double DQN, dueling networks, n-step returns and prioritized replay.

    agent = DQN(DQNConfig()).learn()          # CartPole-v1, TensorBoard + checkpoints under runs/
    actions = agent.predict(obs)              # greedy: argmax_a q̂(s, a, w)
    agent.save("cartpole.ckpt"); agent = DQN.load("cartpole.ckpt")

The loop, for each step of the N vectorised environments:
    A_t ← ε-greedy(q̂(S_t, ·, w))  (one batched forward pass for all N)
    S_{t+1}, R_{t+1} ← env.step(A_t);  replay.add(S_t, A_t, R_{t+1}, S_{t+1}, terminated, truncated)
    every train_freq steps after learning_starts: gradient_steps updates (`update`) on sampled minibatches
    every target_update_interval steps: w⁻ ← τ w + (1 − τ) w⁻
With a one-hot linear q̂, buffer_size = batch_size = 1, n_step = 1, τ = 1 and an update interval of 1,
loss "mse" (½ δ²) and optimizer "sgd", one update is Q(S, A) ← Q(S, A) + α δ: tabular Q-learning.
"""

from __future__ import annotations

import copy
import math
import random
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from qapprox.approximators.backprop import backprop, flatten_parameters
from qapprox.approximators.limits import check_memory, check_threads, cpu_count, format_bytes
from qapprox.approximators.networks import q_network
from qapprox.dqn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qapprox.dqn.config import DQNConfig, replace
from qapprox.dqn.env_factory import check_vector_env, make_vector_env
from qapprox.dqn.evaluation import EVAL_SEED_OFFSET, greedy_returns, reward_threshold, solved
from qapprox.dqn.logging import RunLogger, discounted_returns, make_run_dir
from qapprox.dqn.prioritized import PrioritizedReplayBuffer
from qapprox.dqn.replay import Batch, ReplayBuffer
from qapprox.dqn.schedules import LinearSchedule
from qapprox.dqn.schema import CheckpointMeta, check_optimizer_state, check_tensors, check_torch_rng, parse_meta

# Fields that fix the network's shape or the task: a checkpoint only loads where they agree.
STRUCTURAL_FIELDS = ("env_id", "q_network", "hidden", "activation", "dueling")
CHECKPOINT_KEYS = {"meta", "q", "q_target", "optimizer", "torch_rng", "replay"}  # the entries of state_dict()
ASYNC_ENVS_PER_CPU = 4  # vectorization="async" starts one process per env: at most this many per CPU
ROUND_DRAW_BYTES = 32 * 2**20  # a training round samples its minibatches in draws of at most this many bytes of S, S'


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, Q-value or parameter."""


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
    """A deep Q-network agent: q̂(s, ·, w) from approximators.networks, replay, target network w⁻."""

    def __init__(self, config: DQNConfig, env: str | gym.vector.VectorEnv | None = None,
                 run_dir: str | Path | None = None) -> None:
        if isinstance(env, str):
            config = _with(config, env_id=env)
        self.config = config.validate()
        torch.set_num_threads(check_threads("threads", config.threads))
        if config.vectorization == "async" and config.n_envs > ASYNC_ENVS_PER_CPU * cpu_count():
            raise ValueError(f"n_envs={config.n_envs} async environments are more than {ASYNC_ENVS_PER_CPU} "
                             f"processes per CPU ({cpu_count()} CPUs); use fewer or vectorization='sync'")
        self.device = resolve_device(config.device)
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)  # exploration: ε coin flips and random actions

        self.envs = env if isinstance(env, gym.vector.VectorEnv) else make_vector_env(
            config.env_id, config.n_envs, config.vectorization)
        self.obs_shape, self.n_actions, obs_dtype = check_vector_env(self.envs)
        self.n_envs = self.envs.num_envs

        weights = parameter_count(config, self.obs_shape, self.n_actions)
        check_memory(f"a Q-network of {weights:,} weights (hidden={config.hidden})", 5 * 4 * weights)  # w, w⁻, ∇, 2 moments
        self.q = q_network(config.q_network, self.obs_shape, self.n_actions, config.hidden,
                           config.activation, config.dueling).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self._flatten()
        self.optimizer = self._make_optimizer()
        buffer_kwargs = dict(capacity=config.buffer_size, obs_shape=self.obs_shape, obs_dtype=obs_dtype,
                             n_envs=self.n_envs, n_step=config.n_step, gamma=config.gamma,
                             device=self.device, seed=config.seed)
        self.replay = (PrioritizedReplayBuffer(**buffer_kwargs, alpha=config.priority_alpha,
                                               beta0=config.priority_beta0, priority_eps=config.priority_eps)
                       if config.prioritized else ReplayBuffer(**buffer_kwargs))
        self._update_step = torch.compile(self.update) if config.compile else self.update

        self.epsilon = LinearSchedule(config.exploration_initial, config.exploration_final,
                                      config.exploration_fraction * config.total_timesteps)  # reset by learn()
        self.beta = LinearSchedule(config.priority_beta0, 1.0, config.total_timesteps)
        # Counters (saved in checkpoints) and what the loop keeps between calls of learn().
        self.global_step = self.episodes = self.updates = 0
        self.best_eval_return = -math.inf
        self.solved_step: int | None = None  # first evaluation with mean ≥ the env's reward threshold
        self.interrupted = False
        self.last_checkpoint: Path | None = None
        self.run_dir = Path(run_dir) if run_dir is not None else (
            make_run_dir(config.logdir, config.env_id, config.run_name, config.seed) if config.logdir else None)
        self.logger: RunLogger | None = None
        self._obs = np.zeros((self.n_envs, *self.obs_shape), dtype=obs_dtype)  # S_t of every env
        self._obs_tensor = (torch.from_numpy(self._obs) if self.device.type == "cpu"  # shares memory
                            else torch.zeros(self._obs.shape, dtype=torch.from_numpy(self._obs).dtype, device=self.device))
        self._needs_reset = True
        self._stats = torch.zeros(3, device=self.device)  # Σ loss, Σ mean q̂, Σ ‖∇‖ since the last log
        self._stats_count = 0
        self._last_log = (0, time.perf_counter())  # (step, time) of the last log: SPS and the divergence check
        self._recent_returns: deque[float] = deque(maxlen=20)
        self._eval_envs: gym.vector.VectorEnv | None = None

    def _flatten(self) -> None:
        """w and w⁻ as one flat vector each, ∇L(w) in w.grad: the optimiser step, the gradient clip and the
        target update are one operation each. The modules' parameters become views of them, so change
        agent.q's weights in place (copy_, load_state_dict), never re-assign or move them (.to():
        make a new agent for another device or dtype)."""
        w, grad = flatten_parameters(self.q)
        self.w = torch.nn.Parameter(w)
        self.w.grad = grad
        self.w_target = flatten_parameters(self.q_target)[0]
        # forward(x) and backward(ε = ∂L/∂q̂): by hand for MLPs (the lecture's backprop), autograd otherwise
        self.online, self.target = backprop(self.q), backprop(self.q_target)

    def __deepcopy__(self, memo: dict) -> DQN:
        """A deep copy whose parameters are views of its own w again (torch copies each one on its own)."""
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, copy.deepcopy(value, memo))
        clone._flatten()
        optimizer_state = clone.optimizer.state_dict()
        clone.optimizer = clone._make_optimizer()
        clone.optimizer.load_state_dict(optimizer_state)
        return clone

    # ------------------------------------------------------------------ the update
    def targets(self, batch: Batch) -> torch.Tensor:
        """The TD targets y = r^(n) + γ^n q̂(S', a*, w⁻) of a minibatch (no gradient flows through them)."""
        with torch.no_grad():
            q_next_target = self.target.forward(batch.next_obs)  # q̂(S', ·, w⁻), S' = S_{t+n}
            if self.config.double_q:  # Double DQN: the online network picks a*, the target network values it
                next_actions = self.online.forward(batch.next_obs).argmax(dim=1, keepdim=True)  # a* = argmax_a q̂(S', a, w)
            else:  # DQN: a* = argmax_a q̂(S', a, w⁻)
                next_actions = q_next_target.argmax(dim=1, keepdim=True)
            next_value = q_next_target.gather(1, next_actions).squeeze(1)  # q̂(S', a*, w⁻)
            # y = r^(n) + γ^n q̂(S', a*, w⁻); discounts = γ^n, or 0 if the episode terminated within the n steps
            # (a time-limit truncation keeps its γ^n: the state was not terminal, so we bootstrap).
            return batch.rewards + batch.discounts * next_value

    def update(self, batch: Batch, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One gradient step on a minibatch, towards targets y (default: `targets(batch)`).
        Returns (loss, |δ|, mean q̂(S, A), ‖∇L‖₂), all on the device."""
        y = self.targets(batch) if y is None else y
        q = self.online.forward(batch.obs)  # q̂(S, ·, w), kept for the backward pass
        actions = batch.actions.unsqueeze(1)
        q_taken = q.gather(1, actions).squeeze(1)  # q̂(S, A, w)
        delta = y - q_taken  # δ = y − q̂(S, A, w)
        # L = Σ_i ω_i ℓ(δ_i) / B, ω = importance-sampling weights (1 for uniform replay). y is a fixed target
        # (semi-gradient), so ∂L/∂q̂(S_i, A_i) = −ω_i ℓ'(δ_i) / B and ∂L/∂q̂(S_i, a) = 0 for a ≠ A_i:
        # that is the output error ε^(out) backpropagated into ∇L(w) = −Σ_i ω_i ℓ'(δ_i) ∇q̂(S_i, A_i, w) / B.
        losses, dloss = self.td_loss(delta)
        weights = batch.weights / len(delta) if self.config.prioritized else 1.0 / len(delta)
        eps = torch.zeros_like(q).scatter_(1, actions, (-weights * dloss).unsqueeze(1))
        self.online.backward(eps)  # w.grad ← ∇L(w)
        grad_norm = torch.linalg.vector_norm(self.w.grad)  # ‖∇L‖₂, clipped to max_grad_norm if set (0 = off)
        if self.config.max_grad_norm:
            self.w.grad.mul_(torch.clamp(self.config.max_grad_norm / (grad_norm + 1e-6), max=1.0))
        self.optimizer.step()  # Adam, or SGD: w ← w − α ∇L(w)
        loss = (weights * losses).sum() if self.config.prioritized else losses.mean()
        return loss, delta.abs(), q_taken.mean(), grad_norm

    def td_loss(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ℓ(δ) and ℓ'(δ) per sample: "mse" ½ δ² and δ; "huber" ½ δ² and δ for |δ| ≤ 1, |δ| − ½ and sign δ
        beyond — both as c (δ − c/2) and c with c = clip(δ, −1, 1)."""
        if self.config.loss == "mse":
            return 0.5 * delta * delta, delta
        clipped = delta.clamp(-1.0, 1.0)
        return clipped * (delta - 0.5 * clipped), clipped

    def update_target(self) -> None:
        """w⁻ ← τ w + (1 − τ) w⁻ (Polyak); τ = 1 is the hard copy w⁻ ← w of Mnih et al."""
        with torch.no_grad():
            if self.config.tau == 1.0:
                self.w_target.copy_(self.w)
            else:
                self.w_target.lerp_(self.w, self.config.tau)
            for target_buffer, buffer in zip(self.q_target.buffers(), self.q.buffers()):
                target_buffer.copy_(buffer)

    def train(self, beta: float) -> None:
        """gradient_steps updates on minibatches from the replay buffer; priorities ← |δ|.

        Uniform replay draws all minibatches of the round at once (independent uniform draws: the same
        distribution). No update of the round changes w⁻, so DQN's targets for all of them come from
        one forward pass; Double DQN's a* = argmax_a q̂(S', a, w) moves with every update, so its
        targets are computed per minibatch, as are prioritized replay's samples (priorities change).
        """
        config, size = self.config, self.config.batch_size
        if config.prioritized:
            self.replay.set_beta(beta)
        # Minibatches per draw: all of the round, as far as their S and S' fit in ROUND_DRAW_BYTES (image stacks).
        at_once = 1 if config.prioritized else max(1, min(config.gradient_steps, ROUND_DRAW_BYTES // (2 * size * self._obs[0].nbytes)))
        for first in range(0, config.gradient_steps, at_once):
            batch = self.replay.sample(size, batches=min(at_once, config.gradient_steps - first))
            minibatches = batch.split(size)
            ys = [None] * len(minibatches) if config.double_q else self.targets(batch).split(size)
            for minibatch, y in zip(minibatches, ys):
                loss, td_abs, q_mean, grad_norm = self._update_step(minibatch, y)
                if config.prioritized:  # the sum-tree lives on the host: this syncs anyway, so check δ here
                    td_abs = td_abs.cpu()
                    if not torch.isfinite(td_abs).all():
                        self._check_finite(math.nan, q_mean.item(), grad_norm.item())
                    self.replay.update_priorities(minibatch.indices, td_abs)
                # Accumulated on the device, read at the next log: no synchronisation here.
                self._stats += torch.stack((loss, q_mean, grad_norm))
                self._stats_count += 1
                self.updates += 1

    # ------------------------------------------------------------------ acting
    def act(self, epsilon: float) -> tuple[np.ndarray, np.ndarray | None]:
        """ε-greedy actions for all N envs from one forward pass; also q̂(S_t, A_t) of the chosen actions,
        which only the logger's overestimation view reads (None when nothing logs; and when every env
        explores and nothing logs, no forward pass at all)."""
        explore = self.rng.random(self.n_envs) < epsilon
        if self.logger is None and explore.all():
            return self.rng.integers(self.n_actions, size=self.n_envs), None
        if self.device.type != "cpu":
            self._obs_tensor.copy_(torch.from_numpy(self._obs), non_blocking=True)
        with torch.inference_mode():
            q_values = self.online.forward(self._obs_tensor).float().cpu().numpy()  # (N, |A|)
        actions = q_values.argmax(axis=1)
        if explore.any():
            actions = np.where(explore, self.rng.integers(self.n_actions, size=self.n_envs), actions)
        return actions, None if self.logger is None else q_values[np.arange(self.n_envs), actions]

    @torch.inference_mode()
    def predict(self, obs: np.ndarray, deterministic: bool = True, epsilon: float = 0.05) -> np.ndarray:
        """Greedy actions argmax_a q̂(s, a, w) for a batch of observations (ε-greedy if not deterministic)."""
        obs = np.asarray(obs)
        single = obs.shape == self.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != self.obs_shape:
            raise ValueError(f"obs shape {obs.shape} does not match the env's {self.obs_shape} (or a batch of them)")
        q_values = self.q(torch.as_tensor(batch, device=self.device, dtype=self._obs_tensor.dtype))
        actions = q_values.argmax(dim=1).cpu().numpy()
        if not deterministic:
            explore = self.rng.random(len(actions)) < epsilon
            actions = np.where(explore, self.rng.integers(self.n_actions, size=len(actions)), actions)
        return actions[0] if single else actions

    # ------------------------------------------------------------------ the loop
    def learn(self, total_timesteps: int | None = None, progress_bar: bool = False) -> DQN:
        """Train until global_step ≥ total_timesteps (default config.total_timesteps; an overall target,
        so a resumed agent continues to it). Ctrl-C stops after the current step and saves a checkpoint."""
        config = self.config
        total = config.total_timesteps if total_timesteps is None else total_timesteps
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total_timesteps={total!r} must be an integer ≥ 0")
        # ε decays linearly over exploration_fraction of the run; β of prioritized replay rises to 1 at its end.
        self.epsilon = LinearSchedule(config.exploration_initial, config.exploration_final, config.exploration_fraction * total)
        self.beta = LinearSchedule(config.priority_beta0, 1.0, total)
        self._open_logger()
        if self._needs_reset:  # a fresh or resumed agent: new episodes, seeded by (seed, step)
            self.replay.end_episodes()  # a resumed replay's open episodes end here, truncated
            obs, _ = self.envs.reset(seed=config.seed + self.global_step)
            np.copyto(self._obs, obs, casting="unsafe")
            self._start_episodes()
            self._needs_reset = False
        bar = _progress(progress_bar, self.global_step, total)
        self._last_log = (self.global_step, time.perf_counter())
        self.interrupted = False
        with _StopOnSigint() as stop:
            while self.global_step < total and not stop.requested:
                self.step(bar)
            self.interrupted = stop.requested
        if bar is not None:
            bar.close()
        self._log_training()
        if self.run_dir is not None:
            self.save(self.run_dir / "checkpoints" / "latest.ckpt")
        if self.logger is not None and not self.interrupted:
            self.logger.hparams(self.config.to_dict(), self.final_metrics(), self.global_step)
            self.logger.flush()
        return self

    def step(self, bar: Any = None) -> None:
        """One step of all N envs, then whatever training, target update, logging, evaluation is due."""
        config, before = self.config, self.global_step
        actions, q_taken = self.act(self.epsilon(before))
        next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        real_next_obs = next_obs
        if "_final_obs" in info and info["_final_obs"].any():  # SAME_STEP autoreset: next_obs is already S_0
            real_next_obs = next_obs.copy()  # of the next episode; the buffer gets the true final S_T
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
        self.replay.add(self._obs, actions, rewards, real_next_obs, terminated, truncated)
        self._track_episodes(q_taken, rewards, terminated, truncated, real_next_obs)
        np.copyto(self._obs, next_obs, casting="unsafe")
        self.global_step += self.n_envs
        step = self.global_step

        if step > config.learning_starts and len(self.replay) >= config.batch_size and crossed(before, step, config.train_freq):
            self.train(self.beta(step))
        if crossed(before, step, config.target_update_interval):
            self.update_target()
        if crossed(before, step, config.log_interval):
            self._log_training(bar)
        if config.eval_interval and crossed(before, step, config.eval_interval):
            self._evaluate_and_log()
        if config.checkpoint_interval and self.run_dir is not None and crossed(before, step, config.checkpoint_interval):
            self.save(self.run_dir / "checkpoints" / "latest.ckpt")

    # ------------------------------------------------------------------ episodes and logs
    def _start_episodes(self) -> None:
        self._episode_return = np.zeros(self.n_envs)
        self._episode_length = np.zeros(self.n_envs, dtype=np.int64)
        self._episode_q = [[] for _ in range(self.n_envs)]  # q̂(S_t, A_t, w) at collection time
        self._episode_rewards = [[] for _ in range(self.n_envs)]

    def _track_episodes(self, q_taken, rewards, terminated, truncated, final_obs) -> None:
        self._episode_return += rewards
        self._episode_length += 1
        if self.logger is not None:  # the overestimation view needs q̂(S_t, A_t) and R_{t+1} of every step
            for i in range(self.n_envs):
                self._episode_q[i].append(q_taken[i])
                self._episode_rewards[i].append(rewards[i])
        done = terminated | truncated
        if not done.any():
            return
        for i in np.flatnonzero(done):
            self.episodes += 1
            self._recent_returns.append(float(self._episode_return[i]))
            if self.logger is not None:
                self._log_episode(i, bool(truncated[i] and not terminated[i]), final_obs[i:i + 1])
            self._episode_return[i], self._episode_length[i] = 0.0, 0
            self._episode_q[i], self._episode_rewards[i] = [], []

    def _log_episode(self, i: int, bootstrap: bool, final_obs: np.ndarray) -> None:
        """Env i's finished episode: return, length, and q̂(S_t, A_t) beside the return G_t observed from
        each S_t; after a time-limit truncation the unseen tail is valued by max_a q̂(S_T, a, w), as the
        TD target does; after termination it is 0."""
        tail = 0.0
        if bootstrap:
            with torch.inference_mode():
                tail = float(self.q(torch.as_tensor(final_obs, device=self.device, dtype=self._obs_tensor.dtype)).max())
        observed = discounted_returns(np.asarray(self._episode_rewards[i]), self.config.gamma, tail)
        self.logger.episode(float(self._episode_return[i]), int(self._episode_length[i]),
                            np.asarray(self._episode_q[i]), observed, self.global_step)

    def _log_training(self, bar: Any = None) -> None:
        """The only place the loop synchronises with the device: read the accumulated statistics."""
        step, now = self.global_step, time.perf_counter()
        epsilon = self.epsilon(step)
        if step == self._last_log[0]:
            return
        sps = (step - self._last_log[0]) / max(now - self._last_log[1], 1e-9)
        self._last_log = (step, now)
        values = {"charts/epsilon": epsilon, "charts/SPS": sps}
        if self._stats_count:
            loss, q_mean, grad_norm = (self._stats / self._stats_count).tolist()
            self._check_finite(loss, q_mean, grad_norm)
            values.update({"losses/td_loss": loss, "losses/q_values": q_mean, "losses/grad_norm": grad_norm})
            self._stats.zero_()
            self._stats_count = 0
        if self.logger is not None:
            self.logger.scalars(values, step)
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(ret=f"{self.recent_return:.1f}", eps=f"{epsilon:.3f}", sps=f"{sps:.0f}", refresh=False)

    def _check_finite(self, loss: float, q_mean: float, grad_norm: float) -> None:
        """Divergence guard: a non-finite loss, Q-value or parameter stops training (DivergenceError)."""
        bad = [name for name, value in (("loss", loss), ("Q-value", q_mean), ("gradient norm", grad_norm))
               if not math.isfinite(value)]
        if not torch.isfinite(self.w).all():
            bad.append("parameter")
        if bad:
            kept = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
            raise DivergenceError(f"training diverged at step {self.global_step}: non-finite {', '.join(bad)} "
                                  f"(in the updates after step {self._last_log[0]}); {kept}")

    def evaluate(self, episodes: int | None = None, envs: gym.vector.VectorEnv | None = None,
                 seed: int | None = None) -> np.ndarray:
        """Returns of `episodes` greedy episodes (default config.eval_episodes), run side by side.

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
                self.save(self.run_dir / "checkpoints" / "best.ckpt", track=False)

    @property
    def recent_return(self) -> float:
        """Mean return of the last 20 finished training episodes (nan before the first)."""
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

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(tensors, meta): the network, target, optimiser and torch RNG states (and the replay if asked);
        the meta as JSON-able values — config, counters, observation shape, numpy and Python RNG states."""
        include_replay = self.config.save_replay if include_replay is None else include_replay
        meta = {
            "config": self.config.to_dict(),
            "counters": {"global_step": self.global_step, "episodes": self.episodes, "updates": self.updates,
                         "best_eval_return": self.best_eval_return if math.isfinite(self.best_eval_return) else None,
                         "solved_step": self.solved_step},
            "obs_shape": list(self.obs_shape), "n_actions": self.n_actions,
            "numpy_rng": self.rng.bit_generator.state,
            "python_random": _jsonable(random.getstate()),
        }
        state = {"q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        if include_replay:
            state["replay"] = self.replay.state_dict()
        return state, meta

    def save(self, path: str | Path, track: bool = True) -> Path:
        """Atomic, pickle-free checkpoint at `path`; refuses (DivergenceError) to save non-finite weights."""
        self._check_finite(0.0, 0.0, 0.0)  # the parameters must be finite; the other values are not checked here
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
        path = Path(path)
        checked: list[CheckpointMeta] = []

        def size_limit(raw_meta: dict[str, Any]) -> int:  # parse the meta first: its config bounds the file
            checked.append(parse_meta(path, raw_meta))
            try:
                return checkpoint_size_limit(checked[0])
            except ValueError as exc:  # a network its config cannot build (e.g. an MLP on image observations)
                raise CheckpointError(f"{path}: {exc}") from None

        state = load_checkpoint(path, max_bytes=max_bytes, size_limit=size_limit)
        meta = checked[0] if checked else parse_meta(path, state["meta"])
        unknown = sorted(set(state) - CHECKPOINT_KEYS, key=repr)
        if unknown:
            raise CheckpointError(f"{path}: unexpected entries {unknown[:4]}; a checkpoint holds {sorted(CHECKPOINT_KEYS)}")
        saved = meta.config
        if isinstance(env, str):
            overrides["env_id"] = env
        elif env is None and "env_id" not in overrides and ":" in saved.env_id:
            raise CheckpointError(f"{path}: env_id={saved.env_id!r} names a module to import "
                                  f"({saved.env_id.split(':')[0]!r}); refused (only an id you pass yourself, "
                                  "train_dqn --resume --env or DQN.load(env=…), may import one)")
        if device is not None:
            overrides["device"] = device
        config = _with(saved, **overrides)
        for name in STRUCTURAL_FIELDS:
            if getattr(config, name) != getattr(saved, name):
                raise CheckpointError(f"checkpoint {path} has {name}={getattr(saved, name)!r}, "
                                      f"not {getattr(config, name)!r}; start a new run instead")
        try:
            network = meta_network(config, meta.obs_shape, meta.n_actions)  # the expected state dicts and shapes
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        expected = network.state_dict()
        q_state = check_tensors(path, "q", state.get("q"), expected)
        q_target_state = check_tensors(path, "q_target", state.get("q_target"), expected)
        optimizer_state = check_optimizer_state(path, state.get("optimizer"), config.optimizer,
                                                [parameter.shape for parameter in network.parameters()])
        torch_rng = check_torch_rng(path, state.get("torch_rng"))
        try:
            if run_dir is None and overrides.get("logdir") != "":  # logdir="" from the caller: write nothing
                run_dir = default_run_dir(path)
            agent = cls(config, env if isinstance(env, gym.vector.VectorEnv) else None, run_dir=run_dir)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        try:
            if agent.obs_shape != meta.obs_shape or agent.n_actions != meta.n_actions:
                raise CheckpointError(f"checkpoint {path} has observation shape {meta.obs_shape} and {meta.n_actions} "
                                      f"actions; this env has {agent.obs_shape} and {agent.n_actions}")
            if "replay" in state:
                try:
                    agent.replay.load_state_dict(state["replay"], agent.n_actions)
                except ValueError as exc:
                    raise CheckpointError(f"{path}: {exc}") from None
        except CheckpointError:
            agent.close()
            raise
        agent.q.load_state_dict(q_state)
        agent.q_target.load_state_dict(q_target_state)
        agent.optimizer.load_state_dict({"state": optimizer_state,
                                         "param_groups": agent.optimizer.state_dict()["param_groups"]})
        agent.global_step, agent.episodes, agent.updates = meta.global_step, meta.episodes, meta.updates
        agent.last_checkpoint = path  # the last good checkpoint, should training diverge before the next one
        agent.best_eval_return = -math.inf if meta.best_eval_return is None else meta.best_eval_return
        agent.solved_step = meta.solved_step
        agent.rng.bit_generator.state = meta.numpy_rng
        random.setstate(meta.python_random)
        torch.set_rng_state(torch_rng)
        return agent

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """Adam, fused into one kernel where torch supports it (else foreach), or plain SGD."""
        lr = self.config.learning_rate
        if self.config.optimizer == "sgd":
            return torch.optim.SGD([self.w], lr=lr)
        try:
            return torch.optim.Adam([self.w], lr=lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam([self.w], lr=lr, foreach=True)


# ---------------------------------------------------------------------- helpers
class _StopOnSigint:
    """Within the block, the first Ctrl-C only sets `requested`; the loop finishes its step and stops."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def default_run_dir(checkpoint: Path) -> Path:
    """Where a resumed run writes: the run directory of runs/<run>/checkpoints/x.ckpt, else the checkpoint's folder."""
    folder = checkpoint.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def meta_network(config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> torch.nn.Module:
    """The config's Q-network on torch's meta device: its shapes and dtypes, with nothing allocated."""
    with torch.device("meta"):
        return q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation, config.dueling)


def parameter_count(config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """|w| of the config's Q-network (counted on the meta device)."""
    return sum(parameter.numel() for parameter in meta_network(config, obs_shape, n_actions).parameters())


def checkpoint_size_limit(meta: CheckpointMeta) -> int:
    """The most bytes a checkpoint of this meta's config can honestly take, with room to spare: w and w⁻ and
    Adam's two moments in float32, the replay (observations bounded at 8 bytes an element) if saved."""
    config = meta.config
    nbytes = 16 * parameter_count(config, meta.obs_shape, meta.n_actions)
    if config.save_replay:
        replay = PrioritizedReplayBuffer if config.prioritized else ReplayBuffer
        nbytes += replay.storage_bytes(config.buffer_size, meta.obs_shape, 8, config.n_envs, config.n_step)
    return 2 * nbytes + (1 << 20)


def _progress(enabled: bool, start: int, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, smoothing=0.1)


def _with(config: DQNConfig, **changes: Any) -> DQNConfig:
    return replace(config, changes, "overrides")


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value

