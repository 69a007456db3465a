"""What a seed learns, pinned from the code before issue 12's refactor (commit dcf301c) with logging on: the
loop then makes a forward pass on every step (the overestimation view reads q̂(S_t, A_t)), evaluates, saves
checkpoints and logs. Prioritized replay, two envs and plain (not Double) DQN: the paths the default-preset pin in
test_agent.py does not take. One intra-op thread on the CPU."""

from __future__ import annotations

import pytest
import torch

from qapprox.dqn import DQN, DQNConfig

PINNED_TRAINING_RETURNS = [35.0, 38.0, 112.0, 207.0, 114.0, 35.0, 40.0, 24.0, 23.0, 21.0, 21.0, 17.0, 17.0, 22.0,
                           24.0, 21.0, 19.0, 61.0, 63.0, 80.0]  # the last 20 training episodes
PINNED_GREEDY_RETURNS = [223.0, 230.0, 227.0, 232.0, 224.0]


def test_a_logged_prioritized_two_env_run_learns_the_pinned_curve(tmp_path):
    config = DQNConfig(logdir=str(tmp_path), eval_interval=1_000, eval_episodes=3, threads=1, device="cpu",
                       total_timesteps=3_000, prioritized=True, n_envs=2, double_q=False)
    agent = DQN(config).learn()
    try:
        assert (agent.global_step, agent.updates) == (3_000, 1_000)
        assert list(agent._recent_returns) == PINNED_TRAINING_RETURNS
        assert agent.best_eval_return == pytest.approx(700 / 3)
        assert agent.evaluate(5).tolist() == PINNED_GREEDY_RETURNS
        w = torch.cat([p.detach().flatten() for p in agent.q.parameters()]).double()
        assert float(w.sum()) == pytest.approx(-20.313673529587504, rel=1e-6)
    finally:
        agent.close()
