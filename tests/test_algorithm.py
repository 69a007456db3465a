"""The DQN algorithm behind its interface: acting draws as the loop always did, and the flat w stays
contained — a deep copy trains on its own w, moving or converting a network and re-assigning one are
refused in one line (or, where nothing would change, go through)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from qapprox.dqn.agent import DQN
from qapprox.dqn.algorithm import DivergenceError, DQNAlgorithm
from qapprox.dqn.config import DQNConfig
from qapprox.dqn.replay import Batch

QUIET = dict(logdir="", eval_interval=0, learning_starts=0, threads=1, device="cpu", hidden=(8, 8))


def algorithm(**changes) -> DQNAlgorithm:
    return DQNAlgorithm(DQNConfig(**{**QUIET, **changes}).validate(), (4,), 2, torch.device("cpu"))


def batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(8, 4, generator=g), actions=torch.randint(0, 2, (8,), generator=g),
                 rewards=torch.randn(8, generator=g), next_obs=torch.randn(8, 4, generator=g),
                 discounts=torch.full((8,), 0.99), weights=torch.ones(8), indices=torch.arange(8))


def views_of(network: torch.nn.Module, w: torch.Tensor) -> bool:
    end = w.data_ptr() + w.numel() * w.element_size()
    return all(w.data_ptr() <= p.data_ptr() < end for p in network.parameters())


def weights(network: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in network.parameters()]


# -------------------------------------------------------------- acting
def test_act_draws_as_the_loop_always_did():
    """explore = rng.random(N) < ε, then one uniform action per env if any explores, else the greedy argmax."""
    agent = algorithm()
    obs = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)
    greedy = agent.q(torch.from_numpy(obs)).argmax(1).numpy()
    reference = np.random.default_rng(0)  # the algorithm's exploration RNG is seeded with config.seed
    for epsilon in (1.0, 0.5, 0.0, 0.3, 1.0):
        actions, values = agent.act(obs, epsilon)
        explore = reference.random(6) < epsilon
        expected = np.where(explore, reference.integers(2, size=6), greedy) if explore.any() else greedy
        np.testing.assert_array_equal(actions, expected)
        assert values is None


def test_act_skips_the_forward_pass_when_every_env_explores_unless_values_are_wanted():
    agent = algorithm()
    forward, calls = agent.online.forward, []
    agent.online.forward = lambda x: calls.append(tuple(x.shape[:-1])) or forward(x)
    obs = np.zeros((5, 4), np.float32)
    actions, values = agent.act(obs, 1.0)
    assert calls == [] and values is None and actions.shape == (5,)
    actions, values = agent.act(obs, 1.0, values=True)  # the overestimation view reads q̂(S_t, A_t, w)
    assert calls == [(1, 5)]  # one forward pass: (members, envs)
    np.testing.assert_allclose(values, agent.q(torch.from_numpy(obs)).detach().numpy()[np.arange(5), actions])


# -------------------------------------------------------------- the flat w, contained
def test_a_deep_copy_trains_on_its_own_w_and_optimiser_state():
    original = algorithm()
    original.update(batch(0))  # Adam holds moments now
    clone = copy.deepcopy(original)
    w, moments = original.w.detach().clone(), original.optimizer.state[original.w]["exp_avg"].clone()
    clone.update(batch(1))
    clone.update_target()
    assert torch.equal(original.w, w) and torch.equal(original.optimizer.state[original.w]["exp_avg"], moments)
    assert not torch.equal(clone.w, w)
    assert views_of(clone.q, clone.w) and views_of(clone.q_target, clone.w_target)
    assert all(torch.equal(p, p_target) for p, p_target in zip(clone.q.parameters(), clone.q_target.parameters()))


CONVERSIONS = {
    "double": lambda network: network.double(),
    "to(float64)": lambda network: network.to(torch.float64),
    "one layer's half()": lambda network: network[0].half(),
    "to_empty": lambda network: network.to_empty(device="cpu"),
}
if torch.cuda.is_available():
    CONVERSIONS["to(cuda)"] = lambda network: network.to("cuda")


@pytest.mark.parametrize("which", ["q", "q_target"])
@pytest.mark.parametrize("conversion", CONVERSIONS.values(), ids=CONVERSIONS.keys())
def test_moving_or_converting_a_network_is_refused_in_one_line(which, conversion):
    agent = algorithm()
    network, w = getattr(agent, which), agent.w if which == "q" else agent.w_target
    before = weights(network)
    with pytest.raises(RuntimeError, match="views of the DQN's flat w") as error:
        conversion(network)
    assert "\n" not in str(error.value)
    assert views_of(network, w) and all(torch.equal(p, p0) for p, p0 in zip(network.parameters(), before))
    agent.update(batch())
    agent.update_target()  # the update still reaches both networks through w and w⁻
    assert not all(torch.equal(p, p0) for p, p0 in zip(network.parameters(), before))


def test_a_conversion_that_changes_nothing_goes_through_and_keeps_the_views():
    agent = algorithm()
    for network in (agent.q, agent.q_target):
        assert network.to("cpu") is network and network.float() is network and network.cpu() is network
    assert views_of(agent.q, agent.w) and views_of(agent.q_target, agent.w_target)
    before = weights(agent.q)
    agent.update(batch())
    assert not all(torch.equal(p, p0) for p, p0 in zip(agent.q.parameters(), before))


def test_a_deep_copy_of_a_network_alone_converts_freely():
    agent = algorithm()
    alone = copy.deepcopy(agent.q).double()
    assert all(p.dtype == torch.float64 for p in alone.parameters())
    assert all(p.dtype == torch.float32 for p in agent.q.parameters()) and views_of(agent.q, agent.w)


def test_re_assigning_a_network_is_refused_in_one_line_and_loading_weights_in_place_works():
    agent = DQN(DQNConfig(**QUIET))
    other = copy.deepcopy(agent.q)
    for owner, name in ((agent, "q"), (agent, "q_target"), (agent.algorithm, "q"), (agent.algorithm, "q_target")):
        with pytest.raises(AttributeError, match="cannot be re-assigned") as error:
            setattr(owner, name, other)
        assert "\n" not in str(error.value) and getattr(owner, name) is not other
    with torch.no_grad():
        for p in other.parameters():
            p.fill_(0.5)
    agent.q.load_state_dict(other.state_dict())  # what the message suggests
    assert torch.all(agent.algorithm.w[:, :agent.algorithm.size] == 0.5) and views_of(agent.q, agent.algorithm.w)


# -------------------------------------------------------------- divergence
def test_non_finite_values_or_weights_are_named_and_the_loop_adds_where():
    agent = algorithm()
    agent.check_finite(1.0, 2.0, 3.0)
    with pytest.raises(DivergenceError, match=r"^non-finite loss, gradient norm$"):
        agent.check_finite(float("nan"), 2.0, float("inf"))
    dqn = DQN(DQNConfig(**QUIET))
    with torch.no_grad():
        next(dqn.q.parameters())[0, 0] = float("nan")
    with pytest.raises(DivergenceError, match=r"training diverged at step 0: non-finite parameter .*no checkpoint"):
        dqn.save("unused.ckpt")
