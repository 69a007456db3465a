"""The floor: the bare costs a DQN training loop cannot avoid, each timed alone on fixed inputs.

    floor seconds per env step = env step + batch-1 action + (updates per env step) · one update

The update is the cheaper of two, on the same fixed minibatch:
- qapprox's own: `DQNAlgorithm.update`, the update the agent trains with (the by-hand backpropagation
  into one flat w, fused Adam), bare;
- the autograd reference (`autograd_reference_update`): the same targets y = `DQNAlgorithm.targets` and
  per-sample loss ℓ(δ) = `DQNAlgorithm.td_loss`, then the plain torch way — autograd's backward through a
  module of its own and torch's Adam over its parameters. A yardstick for what qapprox's update would
  cost through autograd, not a second DQN update (no prioritized weights, no statistics: it never trains).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from qapprox.approximators.networks import q_network
from qapprox.dqn.algorithm import DQNAlgorithm
from qapprox.dqn.config import DQNConfig
from qapprox.dqn.env_factory import make_env, make_vector_env
from qapprox.dqn.replay import Batch


def per_call(fn: Callable[[], Any], iterations: int, repeats: int = 3,
             statistic: Callable[[list[float]], float] = min) -> float:
    """Seconds per call of fn: `statistic` (the best, by default) of `repeats` timings of `iterations` calls
    (after one warm-up call)."""
    fn()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        timings.append((time.perf_counter() - start) / iterations)
    return statistic(timings)


def env_step_seconds(env_id: str, n_envs: int | None, iterations: int) -> float:
    """Seconds per environment step under random actions: a bare env (n_envs None) or a vector env of
    n_envs copies (per env), as `make_env` and `make_vector_env` build them for the agent."""
    rng = np.random.default_rng(0)
    if n_envs is None:
        env = make_env(env_id)
        env.reset(seed=0)
        it = iter(rng.integers(env.action_space.n, size=4 * iterations + 1).tolist())  # per_call: 1 + 3 · iterations

        def step() -> None:
            _, _, terminated, truncated, _ = env.step(next(it))
            if terminated or truncated:
                env.reset()
        seconds = per_call(step, iterations)
        env.close()
        return seconds
    envs = make_vector_env(env_id, n_envs)
    envs.reset(seed=0)
    actions = rng.integers(envs.single_action_space.n, size=(16, n_envs))
    counter = iter(range(10**12))
    seconds = per_call(lambda: envs.step(actions[next(counter) % 16]), iterations) / n_envs
    envs.close()
    return seconds


def fixed_batch(config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> Batch:
    """One minibatch of batch_size random transitions (seeded): the input both updates are timed on."""
    generator = torch.Generator().manual_seed(0)
    B = config.batch_size
    obs, next_obs = torch.randn((B, *obs_shape), generator=generator), torch.randn((B, *obs_shape), generator=generator)
    actions = torch.randint(n_actions, (B,), generator=generator)
    return Batch(obs, actions, torch.ones(B), next_obs, torch.full((B,), config.gamma), torch.ones(B), torch.arange(B))


def autograd_reference_update(algorithm: DQNAlgorithm, q: torch.nn.Module, batch: Batch,
                              optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """The reference update through autograd (not used to train), one call of the returned step:

        y = algorithm.targets(batch)                      target forward (and online on S' for Double DQN)
        L = mean_i ℓ(y_i − q̂(S_i, A_i))                   q's forward, gather, algorithm.td_loss
        ∇L by loss.backward(), clipped to max_grad_norm if on, one optimizer step on q's parameters
    """
    parameters, max_grad_norm = list(q.parameters()), algorithm.config.max_grad_norm
    actions = batch.actions.unsqueeze(1)

    def step() -> None:
        y = algorithm.targets(batch)
        q_taken = q(batch.obs).gather(1, actions).squeeze(1)
        loss = algorithm.td_loss(y - q_taken)[0].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm, foreach=True)
        optimizer.step()
    return step


def qapprox_update_seconds(algorithm: DQNAlgorithm, batch: Batch, iterations: int) -> float:
    """Seconds of one call of DQNAlgorithm.update on `batch` (the update the agent trains with), bare: no
    env, no replay, no loop; what training costs beyond is the loop's overhead."""
    return per_call(lambda: algorithm.update(batch), iterations)


def floor(config: DQNConfig, iterations: int) -> dict[str, float]:
    """Bare costs (seconds): env step, batch-1 forward + argmax, and one update at batch_size.

    floor seconds per env step = env + act + (updates in the run / total steps) · update, where the run
    updates gradient_steps times at each multiple of train_freq after learning_starts (n_envs = 1), and
    the update is the cheaper of qapprox's own and the autograd reference with fused Adam.
    """
    env = make_env(config.env_id)
    obs_shape, n_actions = env.observation_space.shape, int(env.action_space.n)
    env.close()
    algorithm = DQNAlgorithm(config, obs_shape, n_actions, torch.device("cpu"))
    q = q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation, config.dueling)
    batch = fixed_batch(config, obs_shape, n_actions)
    obs1 = torch.randn((1, *obs_shape), generator=torch.Generator().manual_seed(1))

    def act() -> None:
        with torch.inference_mode():
            q(obs1).argmax(dim=1).numpy()

    def reference(**adam: Any) -> Callable[[], None]:
        return autograd_reference_update(algorithm, q, batch, torch.optim.Adam(q.parameters(), lr=config.learning_rate, **adam))

    update_iterations = max(iterations // 10, 10)
    result = {
        "env_step": env_step_seconds(config.env_id, None, iterations),
        "vector_env_step_n1": env_step_seconds(config.env_id, 1, iterations),
        "vector_env_step_n8": env_step_seconds(config.env_id, 8, iterations // 8 + 1),
        "act_batch1": per_call(act, iterations),
        "update_fused_adam": per_call(reference(fused=True), update_iterations),
        "update_default_adam": per_call(reference(), update_iterations),
        "update_qapprox": qapprox_update_seconds(algorithm, batch, update_iterations),
    }
    # Updates the run makes: gradient_steps at each multiple of train_freq in (learning_starts, total].
    total = config.total_timesteps
    rounds = total // config.train_freq - min(config.learning_starts, total) // config.train_freq
    updates_per_step = config.gradient_steps * rounds / total
    result["updates_per_env_step"] = updates_per_step
    cheapest_update = min(result["update_fused_adam"], result["update_qapprox"])
    result["floor_step"] = result["env_step"] + result["act_batch1"] + updates_per_step * cheapest_update
    result["floor_sps"] = 1.0 / result["floor_step"]
    return result
