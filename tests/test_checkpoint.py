"""Checkpoints: atomic writes, corrupt and truncated files detected, code-running pickles refused,
shape and env mismatches named, replay buffers round-trip."""

from __future__ import annotations

import os

import pytest
import torch

from qapprox.dqn.agent import DQN
from qapprox.dqn.checkpoint import MAGIC, CheckpointError, load_checkpoint, save_checkpoint
from qapprox.dqn.config import DQNConfig
from forgery import malicious_checkpoint

QUIET = dict(logdir="", eval_interval=0, learning_starts=50, threads=1, device="cpu", hidden=(16, 16))


def test_round_trip_of_tensors_primitives_and_numpy(tmp_path):
    import numpy as np

    path = save_checkpoint(tmp_path / "a.ckpt", {"w": torch.arange(3.0), "n": 7, "x": np.ones(2)}, {"k": [1, "v"]})
    state = load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(3.0)) and state["n"] == 7 and state["meta"] == {"k": [1, "v"]}
    assert torch.equal(state["x"], torch.ones(2, dtype=torch.float64))  # arrays come back as tensors
    assert path.read_bytes().startswith(MAGIC) and not (tmp_path / "a.ckpt.tmp").exists()


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "a.ckpt", {"step": 1})

    def crash(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the old file is whole; the half-done one is only a .tmp


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "is truncated or corrupt"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), "is truncated or corrupt"),
    (lambda data: b"PK\x03\x04" + data[4:], "is not a qapprox checkpoint"),
    (lambda data: b"", "is not a qapprox checkpoint"),
])
def test_corrupt_truncated_or_foreign_files_are_named_in_one_line(tmp_path, damage, message):
    path = save_checkpoint(tmp_path / "a.ckpt", {"w": torch.ones(100)})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_plain_torch_save_file_is_not_a_checkpoint(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="is not a qapprox checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


@pytest.mark.parametrize("version", [1, 2])
def test_malicious_pickle_is_refused_and_its_payload_does_not_run(tmp_path, version):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    malicious_checkpoint(path, marker, DQN(DQNConfig(**QUIET)).state_dict()[1], version)
    with pytest.raises(CheckpointError, match="contains objects that could run code; refused"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="could run code"):
        DQN.load(path)
    assert not marker.exists()


def test_checkpoint_from_a_different_network_or_env_is_named(tmp_path):
    path = DQN(DQNConfig(**QUIET)).save(tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match=r"has hidden=\(16, 16\), not \(32, 32\)"):
        DQN.load(path, hidden=(32, 32))
    with pytest.raises(CheckpointError, match="has env_id='CartPole-v1', not 'Acrobot-v1'"):
        DQN.load(path, env="Acrobot-v1")


def test_replay_buffer_round_trips_and_resumed_updates_match(tmp_path):
    """With the replay buffer saved, two agents loaded from one checkpoint make identical updates."""
    agent = DQN(DQNConfig(**{**QUIET, "save_replay": True, "buffer_size": 500})).learn(300)
    path = agent.save(tmp_path / "a.ckpt")
    first, second = DQN.load(path), DQN.load(path)
    assert len(first.replay) == len(agent.replay)
    batch_a, batch_b = first.replay.sample(32), second.replay.sample(32)
    assert torch.equal(batch_a.obs, batch_b.obs) and torch.equal(batch_a.indices, batch_b.indices)
    first.algorithm.train(first.replay, beta=1.0)
    second.algorithm.train(second.replay, beta=1.0)
    for p, q in zip(first.q.parameters(), second.q.parameters()):
        assert torch.equal(p, q)


def test_refuses_to_save_non_finite_weights(tmp_path):
    from qapprox.dqn.agent import DivergenceError

    agent = DQN(DQNConfig(**QUIET))
    with torch.no_grad():
        next(agent.q.parameters())[0, 0] = float("nan")
    with pytest.raises(DivergenceError, match="non-finite parameter"):
        agent.save(tmp_path / "a.ckpt")
    assert not (tmp_path / "a.ckpt").exists()


def test_a_checkpoint_with_per_tensor_optimizer_state_loads_into_the_flat_w(tmp_path):
    # qapprox before the flat w saved Adam's moments per parameter tensor; they load as one flat state.
    agent = DQN(DQNConfig(**QUIET)).learn(120)
    per_tensor = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in agent.q.parameters()], lr=1e-3)
    for p in per_tensor.param_groups[0]["params"]:
        p.grad = torch.randn_like(p)
    per_tensor.step()
    state, meta = agent.state_dict()
    state["optimizer"] = per_tensor.state_dict()
    path = save_checkpoint(tmp_path / "old.ckpt", state, meta)
    loaded = DQN.load(path)
    moments = loaded.algorithm.optimizer.state_dict()["state"][0]
    expected = per_tensor.state_dict()["state"]
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(moments[key][0, :loaded.algorithm.size],  # a row of w: |w| entries, then padding
                                   torch.cat([expected[i][key].reshape(-1) for i in sorted(expected)]))
    assert moments["exp_avg"].shape == loaded.algorithm.w.shape
    loaded.learn(200)  # and it trains on from there
    assert torch.isfinite(loaded.algorithm.w).all()
