"""A short run's TensorBoard event file, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from qapprox.dqn.agent import DQN
from qapprox.dqn.config import DQNConfig
from qapprox.approximators import monte_carlo
from qapprox.dqn.episodes import Episode
from qapprox.dqn.logging import TAGS

GAMMA = 0.99


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = DQNConfig(logdir=str(tmp_path_factory.mktemp("runs")), run_name="logtest", total_timesteps=1_500,
                       learning_starts=200, log_interval=250, eval_interval=500, eval_episodes=3, hidden=(32, 32),
                       exploration_fraction=0.5, gamma=GAMMA, threads=1, device="cpu", checkpoint_interval=0)
    agent = DQN(config).learn()
    agent.close()
    accumulator = EventAccumulator(str(agent.run_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return agent, accumulator


def values(accumulator, tag):
    events = accumulator.Scalars(tag)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def test_run_dir_is_named_env_name_seed_time(run):
    agent, _ = run
    env, name, seed, stamp = agent.run_dir.name.split("__")
    assert (env, name, seed) == ("CartPole-v1", "logtest", "0") and stamp.isdigit()
    assert (agent.run_dir / "checkpoints" / "latest.ckpt").is_file()


def test_every_documented_tag_is_there(run):
    _, accumulator = run
    assert set(TAGS) <= set(accumulator.Tags()["scalars"])


def test_episode_tags_agree_with_each_other(run):
    """CartPole pays 1 a step, so return = length; every episode that ends before 500 steps terminated,
    so its observed discounted return from step t is (1 − γ^{L−t}) / (1 − γ) exactly."""
    _, accumulator = run
    steps, returns = values(accumulator, "charts/episodic_return")
    _, lengths = values(accumulator, "charts/episodic_length")
    _, observed = values(accumulator, "overestimation/observed_return")
    _, q_taken = values(accumulator, "overestimation/q_taken")
    _, gap = values(accumulator, "overestimation/gap")
    assert len(returns) > 10 and np.all(np.diff(steps) >= 0) and steps[-1] <= 1_500
    np.testing.assert_array_equal(returns, lengths)
    assert np.all((lengths >= 8) & (lengths <= 500))
    expected = [monte_carlo.returns(np.ones(int(n)), GAMMA).mean() for n in lengths]
    np.testing.assert_allclose(observed, expected, rtol=1e-5)
    np.testing.assert_allclose(gap, q_taken - observed, rtol=1e-4, atol=1e-4)


def test_observed_returns_value_a_truncated_tail_by_the_bootstrap():
    """G_t = R_{t+1} + γ G_{t+1} from G_T = 0 after a termination, G_T = the tail's value after a truncation."""
    episode = Episode(env=0, total_return=3.0, length=3, truncated=True, q_taken=np.zeros(3), rewards=np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(episode.observed(0.5), [1.0 + 0.5 * 2.0, 2.0, 0.0])
    np.testing.assert_allclose(episode.observed(0.5, tail=8.0), [1.0 + 0.5 * 2.0 + 0.125 * 8.0, 2.0 + 0.25 * 8.0, 4.0])
    # one bootstrap each for episodes stored one after another
    G = monte_carlo.returns([1.0, 1.0, 5.0], 0.5, lengths=[2, 1], bootstrap=[4.0, 2.0])
    np.testing.assert_allclose(G, [1.0 + 0.5 + 0.25 * 4.0, 1.0 + 0.5 * 4.0, 5.0 + 0.5 * 2.0])


def test_training_tags_are_plausible(run):
    _, accumulator = run
    steps, epsilon = values(accumulator, "charts/epsilon")
    assert list(steps[:6]) == [250, 500, 750, 1000, 1250, 1500]
    np.testing.assert_allclose(epsilon[:6], 1.0 - 0.99 * np.minimum(steps[:6] / 750, 1.0), rtol=1e-5)  # ε 1 → 0.01 over 50%
    _, sps = values(accumulator, "charts/SPS")
    assert np.all(sps > 0)
    loss_steps, loss = values(accumulator, "losses/td_loss")
    assert loss_steps[0] == 250 and np.all(np.isfinite(loss)) and np.all(loss >= 0)  # first updates at 201
    _, grad_norm = values(accumulator, "losses/grad_norm")
    assert np.all(grad_norm > 0)
    _, q_values = values(accumulator, "losses/q_values")
    assert np.all(np.abs(q_values) < 100)  # bounded by 1 / (1 − γ) = 100 for rewards of 1
    eval_steps, eval_return = values(accumulator, "eval/mean_return")
    assert list(eval_steps) == [500, 1000, 1500] and np.all((eval_return >= 8) & (eval_return <= 500))


def test_config_text_and_hparams(run):
    agent, accumulator = run
    assert "config/text_summary" in accumulator.Tags()["tensors"]
    text = accumulator.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| learning_rate | 0.003 |" in text
    hparams = accumulator.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"learning_rate" in hparams["_hparams_/session_start_info"]
    _, best = values(accumulator, "hparams/best_eval_return")
    assert best[-1] == pytest.approx(agent.best_eval_return)


# ---------------------------------------------------------------- run-directory names
def test_run_dir_names_are_parsed_back_as_made(tmp_path):
    from qapprox.dqn.logging import RUN_DIR_GLOB, make_run_dir, parse_run_dir, run_dirs

    made = make_run_dir(tmp_path, "ALE/Pong-v5", "dqn-lr_3", 7)
    parsed = parse_run_dir(made)
    assert (parsed.env, parsed.name, parsed.seed, parsed.group) == ("ALE-Pong-v5", "dqn-lr_3", 7, "ALE-Pong-v5__dqn-lr_3")
    assert parse_run_dir("my__env-v0__dqn__1__1700000000").env == "my__env-v0"  # '__' in an env id is kept
    for other in ("notes", "a__b__c__1", "env__dqn__x__1", "env__dqn__1__¹"):
        assert parse_run_dir(other) is None
    made.mkdir()
    (tmp_path / "a__b__c__d").mkdir()
    assert run_dirs(tmp_path) == [made] and made.match(RUN_DIR_GLOB)


@pytest.mark.parametrize("name", ["a__b", "_a"])
def test_a_run_name_that_would_mis_group_runs_is_refused(name):
    with pytest.raises(ValueError, match=r"^run_name=.* must not contain '__' or start with '_'"):
        DQNConfig(run_name=name).validate()
