"""Replay: ring wrap-around, n-step targets by hand, vectorised envs, sum-tree sampling, importance
weights, state round trip, bad input. Observations are labels (S_t = t) so every stored S_t and
S_{t+k} can be read back and checked against the hand computation."""

from __future__ import annotations

import copy
import io
import math
import re

import numpy as np
import pytest
import torch

from qapprox.dqn.prioritized import PrioritizedReplayBuffer
from qapprox.dqn.replay import Batch, ReplayBuffer
from qapprox.dqn.schedules import LinearSchedule
from qapprox.dqn.sum_tree import SumTree

# χ²_{0.999} quantiles: a correct sampler fails a test at this threshold with probability 0.001
# (the seeds are fixed, so each test is deterministic; stratified sampling only lowers χ²).
CHI2_999 = {4: 18.47, 11: 31.26}  # by degrees of freedom


def step(buffer, obs, actions, rewards, next_obs, terminated=None, truncated=None):
    """One add() with per-env scalar labels as (n_envs, 1) observations."""
    n = len(obs)
    buffer.add(
        np.asarray(obs, dtype=np.float32)[:, None],
        np.asarray(actions, dtype=np.int64),
        np.asarray(rewards, dtype=np.float32),
        np.asarray(next_obs, dtype=np.float32)[:, None],
        np.zeros(n, bool) if terminated is None else np.asarray(terminated),
        np.zeros(n, bool) if truncated is None else np.asarray(truncated),
    )


def rows(batch: Batch) -> list[tuple]:
    """(S_t, A_t, G, S_{t+k}, discount) per transition, rounded for comparison."""
    return [
        (float(s), int(a), round(float(g), 5), float(s2), round(float(d), 6))
        for s, a, g, s2, d in zip(batch.obs[:, 0], batch.actions, batch.rewards, batch.next_obs[:, 0], batch.discounts)
    ]


# ---------------------------------------------------------------------------- ring buffer
def test_wrap_around_keeps_the_newest_capacity_transitions():
    buffer = ReplayBuffer(capacity=4, obs_shape=(1,), seed=0)
    for t in range(10):
        step(buffer, [t], [t % 2], [1.0], [t + 1])
    assert len(buffer) == 4
    assert sorted(rows(buffer.transitions())) == [(t, t % 2, 1.0, t + 1, 0.99) for t in (6, 7, 8, 9)]
    for _ in range(20):  # only the retained transitions can come out
        batch = buffer.sample(4)
        assert set(batch.obs[:, 0].tolist()) <= {6.0, 7.0, 8.0, 9.0}
        assert torch.equal(batch.next_obs, batch.obs + 1)


def test_an_episode_end_in_the_ring_holds_its_final_observation():
    # Slots: capacity + n_step = 5. Step 8 terminates with final S_9 = 50 (its own row), step 9
    # starts the next episode at S = 60: 3 transitions are left (7, 8, 60), not 4.
    buffer = ReplayBuffer(capacity=4, obs_shape=(1,), gamma=0.5, seed=0)
    for t in range(9):
        step(buffer, [t], [0], [1.0], [t + 1 if t < 8 else 50], terminated=[t == 8])
    step(buffer, [60], [1], [2.0], [61])
    assert sorted(rows(buffer.transitions())) == [(7, 0, 1.0, 8, 0.5), (8, 0, 1.0, 50, 0.0), (60, 1, 2.0, 61, 0.5)]
    assert len(buffer) == 3
    # A batch of the capacity still trains: the ring has wrapped, so its 4 draws (with replacement) come
    # from the 3 transitions it holds, the latest ones. Before the ring wraps, a batch waits for its size.
    assert buffer.ready(4) and set(buffer.sample(4).obs[:, 0].tolist()) <= {7.0, 8.0, 60.0}
    fresh = ReplayBuffer(capacity=4, obs_shape=(1,), seed=0)
    step(fresh, [0], [0], [1.0], [1])
    assert fresh.ready(1) and not fresh.ready(2)
    with pytest.raises(ValueError, match="holds no transition yet"):
        ReplayBuffer(capacity=4, obs_shape=(1,)).sample(1)


# ---------------------------------------------------------------------------- n-step by hand
@pytest.mark.parametrize("ending", ["terminated", "truncated"])
def test_n_step_targets_by_hand_with_an_episode_ending_inside_the_window(ending):
    # n = 3, γ = 0.5, rewards R_1..R_5 = 1, 2, 4, 8, 16; the episode ends after the 5th step with
    # final observation 99 (the reset observation 100 must not be used). Then a 2-step episode.
    gamma, ended = 0.5, {"terminated": [True], "truncated": [False]}[ending]
    buffer = ReplayBuffer(capacity=20, obs_shape=(1,), n_step=3, gamma=gamma, seed=0)
    rewards = [1, 2, 4, 8, 16]
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        step(buffer, [t], [t], [r], [99 if last else t + 1],
             terminated=[last and ended[0]], truncated=[last and not ended[0]])  # fmt: skip
        assert len(buffer) == [0, 0, 1, 2, 5][t]  # a start waits for its 3 rewards or the end
    step(buffer, [100], [7], [32], [101])
    step(buffer, [101], [8], [64], [102], terminated=[True])

    def discount(k):  # terminated: no bootstrap; truncated: bootstrap from the true final obs
        return 0.0 if ended[0] else gamma**k

    expected = [
        (0, 0, 1 + 0.5 * 2 + 0.25 * 4, 3, gamma**3),  # = 3
        (1, 1, 2 + 0.5 * 4 + 0.25 * 8, 4, gamma**3),  # = 6
        (2, 2, 4 + 0.5 * 8 + 0.25 * 16, 99, discount(3)),  # = 12, window ends with the episode
        (3, 3, 8 + 0.5 * 16, 99, discount(2)),  # = 16, flushed with k = 2
        (4, 4, 16, 99, discount(1)),  # flushed with k = 1
        (100, 7, 32 + 0.5 * 64, 102, 0.0),  # the next episode's window does not reach back
        (101, 8, 64, 102, 0.0),
    ]
    assert sorted(rows(buffer.transitions())) == sorted(expected)


@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("n_step", [1, 3])
def test_end_episodes_truncates_the_open_windows_before_a_reset(kind, n_step):
    """A resumed run resets its envs mid-episode: the waiting starts are stored as truncated at the last
    S_{t+1} (never reaching into the new episode), and the new episode's first state gets its own row."""
    gamma = 0.5
    buffer = kind(capacity=20, obs_shape=(1,), n_step=n_step, gamma=gamma, seed=0)
    for t, r in enumerate([1, 2, 4, 8]):  # S_0 … S_3, R_1 … R_4 = 1, 2, 4, 8; the episode is still running at S_4
        step(buffer, [t], [0], [r], [t + 1])
    buffer.end_episodes()
    step(buffer, [100], [1], [32], [101])  # the reset episode: S_0 = 100 must not become anyone's S_{t+n}
    step(buffer, [101], [1], [64], [102], terminated=[True])
    returns = {0: 1 + 0.5 * 2 + 0.25 * 4, 1: 2 + 0.5 * 4 + 0.25 * 8, 2: 4 + 0.5 * 8, 3: 8}  # n = 3
    expected = ([(t, 0, [1, 2, 4, 8][t], t + 1, gamma) for t in range(4)] if n_step == 1 else
                [(0, 0, returns[0], 3, gamma**3), (1, 0, returns[1], 4, gamma**3),
                 (2, 0, returns[2], 4, gamma**2), (3, 0, returns[3], 4, gamma)])
    expected += [(100, 1, 32 + (0.5 * 64 if n_step == 3 else 0), 101 if n_step == 1 else 102,
                  gamma if n_step == 1 else 0.0), (101, 1, 64, 102, 0.0)]
    assert sorted(rows(buffer.transitions())) == sorted(expected)
    fresh = kind(capacity=20, obs_shape=(1,), n_step=n_step, seed=0)
    fresh.end_episodes()  # an unused buffer is left as it is
    assert fresh.state_dict()["pointer"].tolist() == [0] and len(fresh) == 0


def test_one_step_is_plain_dqn():
    buffer = ReplayBuffer(capacity=8, obs_shape=(1,), n_step=1, gamma=0.9, seed=0)
    step(buffer, [0], [1], [5.0], [1])
    step(buffer, [1], [0], [-1.0], [7], truncated=[True])
    step(buffer, [2], [1], [3.0], [8], terminated=[True])
    assert rows(buffer.transitions()) == [(0, 1, 5.0, 1, 0.9), (1, 0, -1.0, 7, 0.9), (2, 1, 3.0, 8, 0.0)]


def test_two_envs_interleave_with_their_own_windows():
    # n = 2, γ = 0.9. env 0: S=0 (R 1), S=1 (R 2, terminated, final 2), reset S=5 (R 3, waiting).
    # env 1: S=10 (R 10), S=11 (R 20), S=12 (R 30, truncated, final 13).
    buffer = ReplayBuffer(capacity=20, obs_shape=(1,), n_envs=2, n_step=2, gamma=0.9, seed=0)
    step(buffer, [0, 10], [0, 1], [1, 10], [1, 11])
    step(buffer, [1, 11], [1, 0], [2, 20], [2, 12], terminated=[True, False])
    step(buffer, [5, 12], [0, 1], [3, 30], [6, 13], truncated=[False, True])
    assert rows(buffer.transitions()) == [
        (0, 0, 1 + 0.9 * 2, 2, 0.0),
        (1, 1, 2, 2, 0.0),
        (10, 1, 10 + 0.9 * 20, 12, 0.81),
        (11, 0, 20 + 0.9 * 30, 13, 0.81),
        (12, 1, 30, 13, 0.9),
    ]
    step(buffer, [6, 20], [1, 1], [4, 0], [7, 21])  # env 0's window fills: S=5 is emitted
    assert (5, 0, 3 + 0.9 * 4, 7, 0.81) in rows(buffer.transitions())
    assert len(buffer) == 6


@pytest.mark.parametrize("n_envs, n_step", [(1, 1), (1, 3), (1, 5), (3, 1), (3, 3), (3, 5), (8, 1), (8, 3), (8, 5)])
@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
def test_matches_a_plain_python_reference_through_wrap_around(kind, n_envs, n_step):
    """Random episodes in phases of rare to frequent ends (terminations and truncations), a ring
    that wraps many times, a state_dict round trip half-way: after every few steps the stored
    transitions are exactly the reference's newest ones, those whose row has not been written over
    (rows per env: ⌈capacity / n_envs⌉ + n_step; each step writes S_t and S_{t+1}; an episode end
    keeps S_{t+1}'s row). Steps without an end where every window is full (each env emits its
    oldest start) and all the others (flushes, windows filling) are both exercised."""
    gamma, capacity, steps = 0.8, 5 * n_envs + 2, 600
    slots = math.ceil(capacity / n_envs) + n_step
    make = lambda: kind(capacity, (1,), n_envs=n_envs, n_step=n_step, gamma=gamma, seed=1)  # noqa: E731
    buffer = make()
    rng = np.random.default_rng(10 * n_envs + n_step)
    labels = iter(range(1, 10**6))
    obs = [next(labels) for _ in range(n_envs)]
    waiting = [[] for _ in range(n_envs)]  # [S, A, [R…], row] of starts not yet emitted
    emitted = [[] for _ in range(n_envs)]  # (row, (S_t, A_t, G, S_{t+k}, discount))
    row = [0] * n_envs  # the row S_t goes to (rows are numbered without wrapping)
    newest = [0] * n_envs
    kinds_of_step = {"common": 0, "other": 0}
    for t in range(steps):
        end_probability = [0.0, 0.02, 0.1, 0.4][t // 50 % 4]
        actions = rng.integers(0, 4, n_envs)
        rewards = rng.normal(0.0, 3.0, n_envs)  # float64, stored as float32
        terminated = rng.random(n_envs) < end_probability
        truncated = ~terminated & (rng.random(n_envs) < end_probability)
        next_obs = [next(labels) for _ in range(n_envs)]
        common = not (terminated | truncated).any() and all(len(w) == n_step - 1 for w in waiting)
        kinds_of_step["common" if common else "other"] += 1
        step(buffer, obs, actions, rewards, next_obs, terminated, truncated)
        for e in range(n_envs):
            waiting[e].append([obs[e], int(actions[e]), [], row[e]])
            for start in waiting[e]:
                start[2].append(float(np.float32(rewards[e])))
            done = terminated[e] or truncated[e]
            while waiting[e] and (done or len(waiting[e][0][2]) == n_step):
                s, a, rs, start_row = waiting[e].pop(0)
                G = sum(gamma**j * r for j, r in enumerate(rs))
                discount = 0.0 if terminated[e] else gamma ** len(rs)
                emitted[e].append((start_row, (float(s), a, G, float(next_obs[e]), discount)))
            newest[e] = row[e] + 1  # the last row written: this step's S_{t+1}
            row[e] += 2 if done else 1
            obs[e] = next(labels) if done else next_obs[e]  # the reset observation after an end
        if t == steps // 2:  # carry on with a copy restored from a checkpoint
            restored = make()
            restored.load_state_dict(buffer.state_dict())
            buffer = restored
        if t % 7 == 0 or t == steps - 1:
            expected = {}
            for e in range(n_envs):
                kept = [transition for start_row, transition in emitted[e] if start_row > newest[e] - slots]
                expected.update({label: rest for label, *rest in kept})
            stored = buffer.transitions()
            assert len(buffer) == len(stored.obs) == len(expected)
            columns = (stored.obs[:, 0], stored.actions, stored.rewards, stored.next_obs[:, 0], stored.discounts)
            for s, a, g, s2, d in zip(*(column.tolist() for column in columns)):
                a_ref, g_ref, s2_ref, d_ref = expected[s]
                assert (a, s2) == (a_ref, s2_ref) and g == pytest.approx(g_ref, rel=1e-5, abs=1e-5)
                assert d == pytest.approx(d_ref, rel=1e-6), (s, d, d_ref)
            if kind is PrioritizedReplayBuffer:  # new transitions get p > 0, every other row 0
                priorities = buffer._tree.values
                np.testing.assert_array_equal(priorities > 0, buffer._valid)
                assert buffer._tree.total == pytest.approx(priorities.sum(), rel=1e-9)
                assert buffer._tree.min == (priorities[priorities > 0].min() if len(buffer) else np.inf)
            if len(buffer):  # samples come from the stored transitions only, next_obs included
                batch = buffer.sample(min(len(buffer), 16))
                for s, s2 in zip(batch.obs[:, 0].tolist(), batch.next_obs[:, 0].tolist()):
                    assert expected[s][2] == s2
    assert len(buffer) > capacity // 2
    assert min(kinds_of_step.values()) > 20, kinds_of_step


# ---------------------------------------------------------------------------- sampling
def chi_square(counts: np.ndarray, probabilities: np.ndarray) -> float:
    expected = counts.sum() * probabilities
    return float(((counts - expected) ** 2 / expected).sum())


def test_uniform_sampling_is_uniform_over_stored_transitions():
    # Two envs filled unevenly (env 0 ends episodes, so its rows include final observations and it
    # holds fewer transitions): every stored transition must still be equally likely.
    buffer = ReplayBuffer(capacity=100, obs_shape=(1,), n_envs=2, n_step=2, seed=3)
    for t in range(7):
        step(buffer, [t, 100 + t], [0, 0], [0, 0], [t + 1, 101 + t], terminated=[t % 2 == 1, False])
    labels = buffer.transitions().obs[:, 0].numpy()
    assert len(labels) == 12  # env 0: 7 starts; env 1: 5 (2 wait for their window)
    draws = np.concatenate([buffer.sample(12).obs[:, 0].numpy() for _ in range(2000)])
    counts = np.array([(draws == label).sum() for label in labels])
    assert chi_square(counts, np.full(12, 1 / 12)) < CHI2_999[11]


def test_batch_types_shapes_and_device():
    buffer = ReplayBuffer(capacity=10, obs_shape=(2, 3), obs_dtype=np.uint8, seed=0)
    for t in range(5):
        buffer.add(np.full((1, 2, 3), t), np.array([1]), np.array([0.5]), np.full((1, 2, 3), t + 1),
                   np.array([False]), np.array([False]))  # fmt: skip
    batch = buffer.sample(3)
    assert batch.obs.shape == batch.next_obs.shape == (3, 2, 3) and batch.obs.dtype == torch.uint8
    assert batch.actions.dtype == batch.indices.dtype == torch.int64
    assert batch.rewards.dtype == batch.discounts.dtype == batch.weights.dtype == torch.float32
    assert batch.weights.tolist() == [1.0, 1.0, 1.0]
    assert all(t.device.type == "cpu" for t in vars(batch).values())
    buffer.update_priorities(batch.indices, torch.ones(3))  # uniform replay: nothing happens
    # 10 + 1 (n_step) rows of 6 observation bytes, once each (no second copy for next_obs), plus
    # action 8, reward 4, return 4, discount 4, next row 8, valid 1 bytes a row; 2 per-env counters.
    assert buffer.nbytes == 11 * 6 + 11 * 29 + 2 * 8


# ---------------------------------------------------------------------------- sum-tree
def test_sum_tree_sums_min_and_prefix_search():
    rng = np.random.default_rng(0)
    tree = SumTree(13)  # not a power of two: 3 padding leaves stay 0
    values = rng.random(13)
    values[[2, 7, 12]] = 0.0  # empty rows
    tree.update(np.arange(13), values)
    tree.update(np.array([4, 9]), np.array([2.5, 0.25]))  # a second, partial update
    values[[4, 9]] = [2.5, 0.25]
    assert tree.total == pytest.approx(values.sum(), rel=1e-12)
    assert tree.min == values[values > 0].min()
    np.testing.assert_array_equal(tree.values, values)
    for node in range(1, tree.first_leaf):  # every node is the sum of the leaves below it
        span = tree.first_leaf >> (node.bit_length() - 1)
        first = node * span - tree.first_leaf
        assert tree.sums[node] == pytest.approx(np.pad(values, (0, 3))[first : first + span].sum(), rel=1e-12)
    u = rng.random(10_000) * tree.total
    found = tree.find(u)
    np.testing.assert_array_equal(found, np.searchsorted(np.cumsum(values), u, side="right"))
    assert not np.isin(found, [2, 7, 12]).any()
    # u at the very top never lands on the empty last leaf
    assert tree.find(np.array([tree.total, np.nextafter(tree.total, 0)])).tolist() == [11, 11]


def test_sum_tree_of_one_leaf():
    tree = SumTree(1)
    tree.update(np.array([0]), np.array([3.0]))
    assert tree.total == 3.0 and tree.find(np.array([0.0, 2.9])).tolist() == [0, 0]



def naive_tree(values: np.ndarray, first_leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums and mins of every node, built bottom-up one node at a time from the padded leaves."""
    sums = np.zeros(2 * first_leaf)
    mins = np.full(2 * first_leaf, np.inf)
    sums[first_leaf : first_leaf + len(values)] = values
    mins[first_leaf : first_leaf + len(values)] = np.where(values > 0, values, np.inf)
    for node in range(first_leaf - 1, 0, -1):
        sums[node] = sums[2 * node] + sums[2 * node + 1]
        mins[node] = min(mins[2 * node], mins[2 * node + 1])
    return sums, mins


@pytest.mark.parametrize("whole_level", [0, 4, SumTree.WHOLE_LEVEL])  # 0: every level follows the stale leaves
@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, 64, 100, 1000, 5000])
def test_sum_tree_equals_a_naive_rebuild_after_random_interleavings(size, whole_level, monkeypatch):
    """After any interleaving of update() (arrays or one float, zeros included), set_values() and
    reads, every node's sum and min equal a naive bottom-up rebuild, and find() equals a search of
    the cumulative sums. Priorities are multiples of 1/4, so every sum, and every u − Σ in the
    descent, is exact: the two searches must agree everywhere, on the boundaries Σ_{i<j} p_i too."""
    monkeypatch.setattr(SumTree, "WHOLE_LEVEL", whole_level)
    rng = np.random.default_rng(size + whole_level)
    tree = SumTree(size)
    values = np.zeros(size)
    for _ in range(60):
        action = rng.random()
        if action < 0.05:
            values = rng.integers(0, 9, size) / 4
            tree.set_values(values)
        elif action < 0.6:
            indices = rng.choice(size, rng.integers(1, min(size, 200) + 1), replace=False)
            value = float(rng.integers(0, 9) / 4) if rng.random() < 0.3 else rng.integers(0, 9, len(indices)) / 4
            tree.update(indices, value)
            values[indices] = value
        else:  # a read (total, min or find) recomputes the stale ancestors first
            (lambda: tree.total, lambda: tree.min, lambda: tree.find(np.zeros(1)))[rng.integers(3)]()
            sums, mins = naive_tree(values, tree.first_leaf)
            np.testing.assert_array_equal(tree.sums, sums)
            np.testing.assert_array_equal(tree.mins, mins)
            assert tree.total == values.sum() and tree.min == (values[values > 0].min() if values.any() else np.inf)
            if values.any():
                prefix = np.cumsum(values)
                u = np.concatenate([[0.0], prefix[prefix < prefix[-1]], rng.random(200) * prefix[-1]])
                np.testing.assert_array_equal(tree.find(u), np.searchsorted(prefix, u, side="right"))
    np.testing.assert_array_equal(tree.values, values)


def test_a_copied_sum_tree_updates_its_own_nodes():
    """deepcopy copies each view on its own: a copy must still write through to its own tree."""
    tree = SumTree(5000)
    tree.update(np.arange(5000), 1.0)
    clone = copy.deepcopy(tree)
    clone.update(np.array([0, 4999]), np.array([5.0, 0.0]))
    assert (tree.total, tree.min) == (5000.0, 1.0)
    assert (clone.total, clone.min) == (5003.0, 1.0)
    sums, mins = naive_tree(clone.values.copy(), clone.first_leaf)
    np.testing.assert_array_equal(clone.sums, sums)
    np.testing.assert_array_equal(clone.mins, mins)

def prioritized(td_errors, alpha=0.6, beta0=0.4, seed=0, priority_eps=1e-6):
    """A prioritized buffer holding len(td_errors) one-step transitions S=0,1,… with p = |δ| + priority_eps."""
    buffer = PrioritizedReplayBuffer(capacity=16, obs_shape=(1,), alpha=alpha, beta0=beta0, priority_eps=priority_eps,
                                     seed=seed)
    for t in range(len(td_errors)):
        step(buffer, [t], [0], [0], [t + 1])
    buffer.update_priorities(np.arange(len(td_errors)), np.asarray(td_errors, dtype=np.float64))
    return buffer


def test_prioritized_sampling_frequencies_match_priorities():
    td = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.0])  # the last has p = priority_eps: P ≈ 1e-5
    buffer = prioritized(td, alpha=0.7, seed=11)
    p_alpha = (np.abs(td) + 1e-6) ** 0.7
    P = p_alpha / p_alpha.sum()
    draws = np.concatenate([buffer.sample(6).obs[:, 0].numpy() for _ in range(10_000)]).astype(int)
    counts = np.bincount(draws, minlength=6)
    assert chi_square(counts[:5], P[:5] / P[:5].sum()) < CHI2_999[4]
    np.testing.assert_allclose(counts / counts.sum(), P, atol=0.005)  # stated tolerance: ½ point
    assert counts[5] <= 4  # expected 60,000 · P_5 ≈ 0.6 draws


def test_importance_weights_by_hand():
    # p = 1, 4, 16; α = ½ → p^α = 1, 2, 4, P = 1/7, 2/7, 4/7; N = 3, β = ½:
    # w_i = (N·P(i))^{−β} / max_j w_j = (p_i^α / min_j p_j^α)^{−β} = 1, 1/√2, 1/2.
    buffer = prioritized(np.array([1.0, 4.0, 16.0]) - 1e-6, alpha=0.5, beta0=0.5)
    batch = buffer.sample(3)  # stratified: one draw from each third of [0, 7): (S 0 or 1), 2, 2
    by_label = {0: 1.0, 1: 2**-0.5, 2: 0.5}
    for label, weight in zip(batch.obs[:, 0].tolist(), batch.weights.tolist()):
        assert weight == pytest.approx(by_label[int(label)], rel=1e-6)
    N, P = 3, np.array([1, 2, 4]) / 7
    w = (N * P) ** -0.5
    np.testing.assert_allclose(w / w.max(), list(by_label.values()), rtol=1e-12)
    buffer.set_beta(1.0)  # β = 1: full correction, w ∝ 1/P
    batch = buffer.sample(3)
    for label, weight in zip(batch.obs[:, 0].tolist(), batch.weights.tolist()):
        assert weight == pytest.approx({0: 1.0, 1: 0.5, 2: 0.25}[int(label)], rel=1e-6)


def test_new_transitions_get_the_largest_priority_and_overwritten_rows_keep_theirs():
    buffer = prioritized(np.array([1.0, 9.0]) - 1e-6, alpha=0.5)  # p^α = 1, 3; max p = 9
    step(buffer, [2], [0], [0], [3])
    np.testing.assert_allclose(buffer._tree.values[:4], [1.0, 3.0, 3.0, 0.0])  # row 3: S=3, no transition
    # Capacity 2 (rows 0-2, one for S_{t+1}): the next add writes S_{t+1} over row 0. A priority
    # computed for row 0 before that must not revive it.
    buffer = PrioritizedReplayBuffer(capacity=2, obs_shape=(1,), alpha=1.0, seed=0)
    step(buffer, [0], [0], [0], [1])
    step(buffer, [1], [0], [0], [2])
    step(buffer, [2], [0], [0], [3])
    buffer.update_priorities(np.array([0, 2]), np.array([50.0, 5.0]))
    np.testing.assert_allclose(buffer._tree.values, [0.0, 1.0, 5.0 + 1e-6])
    assert buffer.max_priority == pytest.approx(5.0) and buffer._tree.total == pytest.approx(6.0)
    assert set(buffer.sample(2).obs[:, 0].tolist()) <= {1.0, 2.0}


def test_beta_schedule():
    buffer = PrioritizedReplayBuffer(capacity=4, obs_shape=(1,), beta0=0.4)
    assert buffer.beta == 0.4
    beta = LinearSchedule(buffer.beta0, 1.0, duration=1.0)  # β from β0 to 1 over the progress of training
    buffer.set_beta(beta(0.5))
    assert buffer.beta == pytest.approx(0.7)
    buffer.set_beta(beta(3.0))
    assert buffer.beta == 1.0


# ---------------------------------------------------------------------------- state
def random_steps(buffers, rng, steps, n_envs):
    """The same random vectorised steps into every buffer (CartPole-like obs, episodes of ~8)."""
    for _ in range(steps):
        obs, next_obs = rng.random((2, n_envs, 4)).astype(np.float32)
        actions, rewards = rng.integers(0, 2, n_envs), rng.random(n_envs).astype(np.float32)
        terminated, truncated = rng.random((2, n_envs)) < 0.06
        for buffer in buffers:
            buffer.add(obs, actions, rewards, next_obs, terminated, truncated)


@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
def test_state_dict_round_trip_samples_the_same_batches(kind):
    settings = dict(capacity=40, obs_shape=(4,), n_envs=2, n_step=3, gamma=0.9)
    rng = np.random.default_rng(5)
    original = kind(**settings, seed=7)
    random_steps([original], rng, 70, n_envs=2)  # wrapped, with n-step windows waiting
    for _ in range(3):
        batch = original.sample(8)
        original.update_priorities(batch.indices, torch.randn(8))
    if kind is PrioritizedReplayBuffer:
        original.set_beta(0.55)
    saved = io.BytesIO()
    torch.save(original.state_dict(), saved)  # a checkpoint that loads without pickle
    saved.seek(0)
    restored = kind(**settings, seed=123)  # another seed: the state must carry the RNG
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert len(restored) == len(original)
    for _ in range(4):  # the waiting windows carry over: further adds emit the same transitions
        random_steps([original, restored], rng, 5, n_envs=2)
        a, b = original.sample(16), restored.sample(16)
        for name in vars(a):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        td = torch.randn(16)
        original.update_priorities(a.indices, td)
        restored.update_priorities(b.indices, td)


def test_state_dict_from_other_settings_is_refused():
    state = ReplayBuffer(capacity=40, obs_shape=(4,), n_step=3).state_dict()
    with pytest.raises(ValueError, match="n_step=3; this buffer has n_step=1"):
        ReplayBuffer(capacity=40, obs_shape=(4,)).load_state_dict(state)
    with pytest.raises(ValueError, match="'obs' is float32\\[43, 4\\]; expected float32\\[43, 2\\]"):
        ReplayBuffer(capacity=40, obs_shape=(2,), n_step=3).load_state_dict(state)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ReplayBuffer(0, (4,)), "capacity=0"),
        (lambda: ReplayBuffer(2.5, (4,)), "capacity=2.5"),
        (lambda: ReplayBuffer(10, (0,)), "obs_shape=(0,)"),
        (lambda: ReplayBuffer(10, "four"), "obs_shape='four'"),
        (lambda: ReplayBuffer(10, (4,), obs_dtype="pixels"), "obs_dtype='pixels'"),
        (lambda: ReplayBuffer(10, (4,), n_envs=0), "n_envs=0"),
        (lambda: ReplayBuffer(10, (4,), n_step=0), "n_step=0"),
        (lambda: ReplayBuffer(10, (4,), gamma=1.5), "gamma=1.5 is outside [0, 1]"),
        (lambda: ReplayBuffer(10, (4,), gamma=-0.1), "gamma=-0.1 is outside [0, 1]"),
        (lambda: ReplayBuffer(10, (4,), device="abacus"), "device='abacus'"),
        (lambda: PrioritizedReplayBuffer(10, (4,), alpha=-1), "alpha=-1"),
        (lambda: PrioritizedReplayBuffer(10, (4,), beta0=1.5), "beta0=1.5 is outside [0, 1]"),
        (lambda: PrioritizedReplayBuffer(10, (4,), priority_eps=0), "priority_eps=0"),
        (lambda: PrioritizedReplayBuffer(10, (4,)).set_beta(2), "beta=2 is outside [0, 1]"),
        (lambda: ReplayBuffer(10**9, (4, 84, 84), np.uint8), "capacity=1000000000 needs"),
    ],
)
def test_bad_settings_are_one_line_errors(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_steps_and_batches_are_one_line_errors():
    buffer = PrioritizedReplayBuffer(capacity=10, obs_shape=(4,), n_envs=2)
    good = dict(obs=np.zeros((2, 4)), actions=np.zeros(2, np.int64), rewards=np.zeros(2), next_obs=np.zeros((2, 4)),
                terminated=np.zeros(2, bool), truncated=np.zeros(2, bool))  # fmt: skip
    buffer.add(**good)
    bad = [
        (dict(obs=np.zeros((1, 4))), "obs has shape (1, 4); expected (2, 4)"),
        (dict(next_obs=np.zeros((2, 3))), "next_obs has shape (2, 3); expected (2, 4)"),
        (dict(actions=np.zeros(2)), "actions has dtype float64; expected integers"),
        (dict(rewards=np.zeros(3)), "rewards has shape (3,); expected (2,)"),
        (dict(terminated=False), "terminated has shape (); expected (2,)"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            buffer.add(**{**good, **change})
    assert len(buffer) == 2  # nothing was written by the refused steps
    for batch_size in (0, 11, 2.0):
        message = f"batch_size={batch_size!r} must be an integer in [1, 10] (at most the buffer's capacity"
        with pytest.raises(ValueError, match=re.escape(message)):
            buffer.sample(batch_size)
    with pytest.raises(ValueError, match="td_errors contain NaN or inf"):
        buffer.update_priorities(torch.tensor([0, 1]), torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="must be equal 1-d shapes"):
        buffer.update_priorities(np.array([0, 1]), np.array([0.5]))
    with pytest.raises(ValueError, match=re.escape("index 99 is outside the buffer's rows [0, 12)")):
        buffer.update_priorities(np.array([0, 99]), np.array([0.5, 0.5]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_device_is_a_one_line_error():
    with pytest.raises(ValueError, match="device='cuda' is not available here"):
        ReplayBuffer(10, (4,), device="cuda")


# ---------------------------------------------------------------- members: a population's buffer
@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("n_step", [1, 3])
def test_each_member_of_a_population_buffer_is_its_own_buffer(kind, n_step):
    # Three members (seeds 5, 6, 7) of 2 envs each, fed what three single buffers are fed: episodes end at
    # other times in every env (terminations and truncations), and a capacity of 40 makes the rings wrap.
    seeds, N = [5, 6, 7], 2
    settings = dict(capacity=40, obs_shape=(3,), n_envs=N, n_step=n_step, gamma=0.9)
    population = kind(**settings, seed=seeds)
    singles = [kind(**settings, seed=seed) for seed in seeds]
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3 * N, 3)).astype(np.float32)
    for t in range(90):
        next_obs = rng.normal(size=(3 * N, 3)).astype(np.float32)
        actions, rewards = rng.integers(2, size=3 * N), rng.normal(size=3 * N).astype(np.float32)
        terminated, truncated = rng.random(3 * N) < 0.08, rng.random(3 * N) < 0.04
        population.add(obs, actions, rewards, next_obs, terminated, truncated)
        for k, single in enumerate(singles):
            part = slice(k * N, (k + 1) * N)
            single.add(obs[part], actions[part], rewards[part], next_obs[part], terminated[part], truncated[part])
        obs = next_obs
    assert population.counts.tolist() == [len(single) for single in singles] and len(population) == sum(map(len, singles))
    for draw in range(3):
        batches = 1 if kind is PrioritizedReplayBuffer else 1 + draw
        together = population.sample(8, batches=batches)
        rows = 8 * batches
        for k, single in enumerate(singles):
            alone = single.sample(8, batches=batches)
            part = slice(k * rows, (k + 1) * rows)
            for name in ("obs", "actions", "rewards", "next_obs", "discounts", "weights"):
                assert torch.equal(getattr(together, name)[part], getattr(alone, name)), name
            assert torch.equal(together.indices[part] - k * population._member_rows, alone.indices)
        td = torch.from_numpy(rng.random(len(together.indices)) * 3)
        population.update_priorities(together.indices, td)
        for k, single in enumerate(singles):
            single.update_priorities(together.indices[k * rows:(k + 1) * rows] - k * population._member_rows,
                                     td[k * rows:(k + 1) * rows])
    for k, single in enumerate(singles):
        mine, theirs = population.member_state(k), single.state_dict()
        assert mine.keys() == theirs.keys()
        for key in theirs:
            assert torch.equal(mine[key], theirs[key]) if torch.is_tensor(theirs[key]) else mine[key] == theirs[key], key
    fresh = kind(**settings, seed=[0, 1, 2])
    for k in range(3):
        fresh.load_member_state(k, population.member_state(k))
    for _ in range(2):  # the same rows and weights from the same generators and trees
        a, b = fresh.sample(8), population.sample(8)
        for name in vars(a):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_a_population_buffer_refuses_in_one_line():
    with pytest.raises(ValueError, match="non-empty sequence of seeds"):
        ReplayBuffer(10, (2,), seed=[])
    with pytest.raises(ValueError, match="3 members: use member_state"):
        ReplayBuffer(10, (2,), seed=[1, 2, 3]).state_dict()
    with pytest.raises(ValueError, match=r"expected \(6, 2\) \(n_envs=2 × members=3\)"):
        ReplayBuffer(10, (2,), n_envs=2, seed=[1, 2, 3]).add(*[np.zeros((2, 2))] * 2, *[np.zeros(2, int)] * 4)


def feed(buffers_and_parts, rng, steps, envs, rewards_of=None):
    """The same random steps (CartPole-like obs, episodes ending by termination and truncation at other
    times in every env) into each (buffer, envs slice); rewards_of(rewards) may change a copy's rewards."""
    obs = rng.normal(size=(envs, 3)).astype(np.float32)
    for _ in range(steps):
        next_obs = rng.normal(size=(envs, 3)).astype(np.float32)
        actions, rewards = rng.integers(2, size=envs), rng.normal(size=envs).astype(np.float32)
        terminated, truncated = rng.random(envs) < 0.08, rng.random(envs) < 0.04
        for buffer, part, changed in buffers_and_parts:
            r = rewards_of(rewards) if changed else rewards
            buffer.add(obs[part], actions[part], r[part], next_obs[part], terminated[part], truncated[part])
        obs = next_obs


def assert_same_state(mine: dict, theirs: dict) -> None:
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        if torch.is_tensor(value):
            assert mine[key].dtype == value.dtype and torch.equal(mine[key], value), key
        else:
            assert type(mine[key]) is type(value) and mine[key] == value, key


@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
def test_a_member_depends_on_its_own_seed_and_steps_only(kind):
    # Populations that differ only in member 1's seed, or only in member 1's rewards: members 0 and 2 draw
    # the same rows (and weights) in all of them; member 1's draws or returns differ.
    settings = dict(capacity=30, obs_shape=(3,), n_envs=2, n_step=3, gamma=0.9)
    base, other_seed, other_rewards = (kind(**settings, seed=seeds) for seeds in ([5, 6, 7], [5, 60, 7], [5, 6, 7]))
    every = slice(None)
    feed([(base, every, False), (other_seed, every, False), (other_rewards, every, True)], np.random.default_rng(1),
         60, envs=6, rewards_of=lambda r: np.where(np.arange(6) // 2 == 1, r + 1, r).astype(np.float32))
    for _ in range(3):
        a, b, c = (buffer.sample(8) for buffer in (base, other_seed, other_rewards))
        for name in ("obs", "actions", "rewards", "next_obs", "discounts", "weights", "indices"):
            for k in (0, 2):
                rows = slice(8 * k, 8 * k + 8)
                assert torch.equal(getattr(a, name)[rows], getattr(b, name)[rows]), name
                assert torch.equal(getattr(a, name)[rows], getattr(c, name)[rows]), name
        assert not torch.equal(a.indices[8:16], b.indices[8:16])  # member 1's own generator
        assert torch.equal(a.indices[8:16], c.indices[8:16]) and not torch.equal(a.rewards[8:16], c.rewards[8:16])
        td = torch.arange(24.0) % 5
        for buffer, batch in ((base, a), (other_seed, b), (other_rewards, c)):
            buffer.update_priorities(batch.indices, td)
    for k in (0, 2):
        assert_same_state(other_seed.member_state(k), base.member_state(k))
        assert_same_state(other_rewards.member_state(k), base.member_state(k))


@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
def test_one_member_by_a_list_of_one_seed_is_the_buffer_of_that_seed(kind):
    settings = dict(capacity=30, obs_shape=(3,), n_envs=2, n_step=2, gamma=0.9)
    listed, plain = kind(**settings, seed=[11]), kind(**settings, seed=11)
    assert (listed.members, plain.members) == (1, 1) and listed.nbytes == plain.nbytes
    feed([(listed, slice(None), False), (plain, slice(None), False)], np.random.default_rng(2), 50, envs=2)
    assert listed.counts.tolist() == [len(listed)] == [len(plain)]
    for _ in range(3):
        a, b = listed.sample(8), plain.sample(8)
        for name in vars(a):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        listed.update_priorities(a.indices, a.rewards.abs())
        plain.update_priorities(b.indices, b.rewards.abs())
    assert_same_state(listed.state_dict(), plain.state_dict())
    assert_same_state(listed.member_state(0), plain.state_dict())
    if kind is PrioritizedReplayBuffer:
        assert type(listed.max_priority) is float and listed.max_priority == plain.max_priority > 1.0


def test_end_episodes_leaves_a_member_not_yet_written_to_as_it_is():
    # Member 0 restored from a used buffer, member 1 from an unused one: end_episodes() ends member 0's
    # episodes as its buffer alone would and leaves member 1 as an unused buffer (a no-op there).
    settings = dict(capacity=20, obs_shape=(3,), n_envs=2, n_step=3)
    used, unused = ReplayBuffer(**settings, seed=1), ReplayBuffer(**settings, seed=2)
    feed([(used, slice(None), False)], np.random.default_rng(3), 13, envs=2)
    population = ReplayBuffer(**settings, seed=[8, 9])
    population.load_member_state(0, used.state_dict())
    population.load_member_state(1, unused.state_dict())
    assert population.counts.tolist() == [len(used), 0]
    for buffer in (population, used, unused):
        buffer.end_episodes()
    assert_same_state(population.member_state(0), used.state_dict())
    assert_same_state(population.member_state(1), unused.state_dict())
    assert population.counts.tolist() == [len(used), 0] and len(used) > 0


@pytest.mark.parametrize("members", [2, 3, 5])
def test_population_storage_bound_and_sizes(members):
    for kind in (ReplayBuffer, PrioritizedReplayBuffer):
        buffer = kind(capacity=37, obs_shape=(3,), n_envs=2, n_step=3, seed=list(range(members)))
        one = kind(capacity=37, obs_shape=(3,), n_envs=2, n_step=3, seed=0)
        assert len(buffer._valid) == members * len(one._valid)  # capacity is per member
        assert kind.storage_bytes(37, (3,), 4, 2, 3, members) >= buffer.nbytes
        assert ReplayBuffer.storage_bytes(37, (3,), 4, 2, 3, members) == \
            members * (ReplayBuffer.storage_bytes(37, (3,), 4, 2, 3) - 24 * 9) + 24 * 9  # rows and rings × K


@pytest.mark.parametrize("size", [1, 5, 8, 13])
@pytest.mark.parametrize("trees", [1, 2, 3, 5])
def test_a_sum_tree_forest_is_its_trees_side_by_side(size, trees):
    """Each tree of SumTree(size, trees) has the sums, mins, totals, minima and searches of a SumTree(size) fed
    its leaves: the same floats, bit for bit."""
    rng = np.random.default_rng(size * 10 + trees)
    forest, alone = SumTree(size, trees), [SumTree(size) for _ in range(trees)]
    for round in range(12):
        indices = rng.choice(trees * size, rng.integers(1, trees * size + 1), replace=False)
        values = rng.random(len(indices)) * (rng.random(len(indices)) < 0.8)  # zeros too
        if round == 5:  # one tree's leaves at once
            t, values = int(rng.integers(trees)), rng.random(size)
            forest.set_values(values, t)
            alone[t].set_values(values)
        else:
            forest.update(indices, values)
            for t, tree in enumerate(alone):
                mine = indices // size == t
                tree.update(indices[mine] - t * size, values[mine])
        assert forest.totals.tolist() == [tree.total for tree in alone]
        assert forest.minima.tolist() == [tree.min for tree in alone]
        np.testing.assert_array_equal(forest.values, np.concatenate([tree.values for tree in alone]))
        for t, tree in enumerate(alone):
            assert np.array_equal(forest.tree_values(t), tree.values)
            first = forest.first_leaf + t * forest.tree_leaves  # tree t's nodes, level by level
            for level in range(tree.depth + 1):
                width = 1 << level
                node = (forest.first_root + t) * width
                np.testing.assert_array_equal(forest.sums[node : node + width], tree.sums[width : 2 * width])
                np.testing.assert_array_equal(forest.mins[node : node + width], tree.mins[width : 2 * width])
            assert first == (forest.first_root + t) * tree.first_leaf
        live = [t for t, tree in enumerate(alone) if tree.total > 0]
        if live:
            member = np.repeat(live, 50)
            u = rng.random(len(member)) * forest.totals[member]
            expected = np.concatenate([alone[t].find(u[member == t]) + t * size for t in live])
            np.testing.assert_array_equal(forest.find(u, member), expected)
            np.testing.assert_array_equal(forest.get(expected), np.concatenate(
                [alone[t].values[alone[t].find(u[member == t])] for t in live]))
    assert SumTree.storage_bytes(size, trees) == forest.sums.nbytes + forest.mins.nbytes


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ReplayBuffer(10, (2,), seed=()), "seed=() must be a seed, None or a non-empty sequence"),
        (lambda: ReplayBuffer(10, (2,), seed="7"), "seed='7' must be a seed, None or a non-empty sequence"),
        (lambda: ReplayBuffer(10, (2,), seed=1.5), "seed=1.5 must be a seed"),
        (lambda: ReplayBuffer(10, (2,), seed=[1, 2.5]), "seed[1]=2.5 must be an integer in [0, "),
        (lambda: ReplayBuffer(10, (2,), seed=[1, None]), "seed[1]=None must be an integer in [0, "),
        (lambda: ReplayBuffer(10, (2,), seed=[-1]), "seed[0]=-1 must be an integer in [0, "),
        (lambda: ReplayBuffer(10, (2,), seed=[True]), "seed[0]=True must be an integer"),
        (lambda: ReplayBuffer(10, (2,), seed=[1, 2]).load_state_dict(ReplayBuffer(10, (2,)).state_dict()),
         "load_state_dict() of a replay buffer of 2 members: use member_state(k) / load_member_state(k, state)"),
        (lambda: ReplayBuffer(10, (2,), seed=[1, 2]).member_state(2), "member=2 must be an integer in [0, 1]"),
        (lambda: PrioritizedReplayBuffer(10, (2,), seed=[1, 2]).load_member_state(-1, {}),
         "member=-1 must be an integer in [0, 1]"),
        (lambda: PrioritizedReplayBuffer(10, (2,), seed=[1, 2]).state_dict(),
         "state_dict() of a replay buffer of 2 members"),
    ],
)
def test_bad_members_are_one_line_errors(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_population_samples_only_once_every_member_can():
    buffer = PrioritizedReplayBuffer(capacity=4, obs_shape=(2,), seed=[1, 2])
    state = PrioritizedReplayBuffer(capacity=4, obs_shape=(2,), seed=3)
    step_one = (np.zeros((1, 2)), np.zeros(1, np.int64), np.ones(1), np.ones((1, 2)), np.zeros(1, bool),
                np.zeros(1, bool))
    state.add(*step_one)
    buffer.load_member_state(0, state.state_dict())  # member 0 holds a transition, member 1 none
    assert buffer.counts.tolist() == [1, 0] and not buffer.ready(1)
    with pytest.raises(ValueError, match="member 1 of the replay buffer holds no transition yet: nothing to sample"):
        buffer.sample(1)
    buffer.load_member_state(1, state.state_dict())
    assert buffer.ready(1) and buffer.sample(1).indices.tolist() == [0, len(state._valid)]
    with pytest.raises(ValueError, match=re.escape("batch_size=5 must be an integer in [1, 4] (at most the buffer's "
                                                   "capacity or the transitions each member holds)")):
        buffer.sample(5)
    bad = state.state_dict()
    bad["count"] = 3
    before = buffer.member_state(1)
    before = {key: value.clone() if torch.is_tensor(value) else value for key, value in before.items()}
    with pytest.raises(ValueError, match="count=3 but 1 rows hold transitions"):
        buffer.load_member_state(1, bad)
    assert_same_state(buffer.member_state(1), before)  # unchanged
