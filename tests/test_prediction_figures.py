"""n-step semi-gradient TD / gradient MC with dense features (approximators.semi_gradient), Figures 9.1-9.10's
runs (approximators.prediction_figures), the sampler's exact draws (FiniteMDP.step), and `qapprox walk-figures`.

Hand-computed steps of gradient MC and 2-step TD; batched rows equal the plain per-run loop; gradient MC with
state aggregation ends within its sampling error of w_MC; the binary-search sampler draws exactly what the
full-row inverse CDF drew; the command's JSON and its one-line refusals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qapprox.approximators.bases import StateAggregation, on_states
from qapprox.approximators.fixed_points import fixed_points, on_policy_distribution
from qapprox.approximators.linear import rms_error
from qapprox.approximators.off_policy import ve
from qapprox.approximators.prediction_figures import learn, n_step_sweep, rmsve_measure, state_values_figure
from qapprox.approximators.semi_gradient import gradient_mc, n_step_td, n_step_td_loop, stack_features
from qapprox.approximators.traces import EpisodeBatch
from qapprox.envs import FiniteMDP, random_walk, random_walk_1000
from qapprox.scripts import walk_figures as script
from script_calls import exit_status

# random_walk(3): states 0 (terminal, −1), 1, 2, 3, 4 (terminal, +1); x(1) = (1, 0), x(2) = (1, 1), x(3) = (0, 1).
X3 = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)


def episode(states, rewards):
    return np.array(states), np.zeros(len(states), dtype=int), np.array(rewards, dtype=float)


def aggregation(mdp, groups: int) -> np.ndarray:
    n = mdp.nonterminal.size
    return on_states(StateAggregation(groups, 0.5, n + 0.5), mdp, np.arange(mdp.n_states))


# ------------------------------------------------------------------ hand-computed steps
def test_gradient_mc_step_by_hand():
    # S = 2, 3, then the right end (+1): G_0 = G_1 = 1. α = 0.5 from w = 0:
    # t=0: δ = 1 − 0 = 1, w = 0.5·(1, 1) = (0.5, 0.5);  t=1: v̂(3) = 0.5, δ = 0.5, w = (0.5, 0.5 + 0.25).
    batch = EpisodeBatch.from_episodes(random_walk(3), [episode([2, 3], [0, 1])], runs=1)
    np.testing.assert_allclose(gradient_mc(batch, X3, alpha=0.5)[-1, 0, 0], [0.5, 0.75], atol=1e-15)


def test_two_step_td_step_by_hand_with_bootstrap_and_discount():
    # S = 2, 1, 2, 1, then the left end (R_4 = −1); n = 2, γ = 0.9, α = 0.5, w = (0.2, 0.4):
    # τ=0: G = 0.81·v̂(2) = 0.486, δ = 0.486 − 0.6 = −0.114, w = (0.143, 0.343)
    # τ=1: G = 0.81·v̂(1) = 0.11583, δ = 0.11583 − 0.143 = −0.02717, w = (0.129415, 0.343)
    # τ=2: G = 0.9·(−1) = −0.9 (τ + n = T), δ = −0.9 − 0.472415 = −1.372415, w = (−0.5567925, −0.3432075)
    # τ=3: G = −1, δ = −1 + 0.5567925 = −0.4432075, w = (−0.77839625, −0.3432075)
    batch = EpisodeBatch.from_episodes(random_walk(3), [episode([2, 1, 2, 1], [0, 0, 0, -1])], runs=1)
    w = n_step_td(batch, X3, n=2, alpha=0.5, w0=np.array([0.2, 0.4]), gamma=0.9)[-1, 0, 0]
    np.testing.assert_allclose(w, [-0.77839625, -0.3432075], atol=1e-12)


def test_td0_step_by_hand():
    # Same first episode as gradient MC, n = 1: τ=0: G = 0 + v̂(3) = 0, δ = 0; τ=1: G = 1, w = 0.5·(0, 1).
    batch = EpisodeBatch.from_episodes(random_walk(3), [episode([2, 3], [0, 1])], runs=1)
    np.testing.assert_allclose(n_step_td(batch, X3, n=1, alpha=0.5)[-1, 0, 0], [0.0, 0.5], atol=1e-15)


# ------------------------------------------------------------------ batched = one at a time
@pytest.mark.parametrize("n", [1, 3, 16, np.inf])
def test_batched_runs_and_configs_equal_the_plain_per_run_loop(n):
    mdp = random_walk(19)
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 4, 6, np.random.default_rng(3))
    X, alphas = aggregation(mdp, 5), [0.05, 0.2]
    batched = n_step_td(batch, X, n=n, alpha=alphas)                       # (episodes, configs, runs, d)
    for c, alpha in enumerate(alphas):
        np.testing.assert_allclose(batched[:, c], n_step_td_loop(batch, X, n=n, alpha=alpha), rtol=1e-12, atol=1e-14)


def test_stacked_features_learn_as_each_alone():
    mdp = random_walk(19)
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 3, 4, np.random.default_rng(4))
    Xs = [aggregation(mdp, 5), aggregation(mdp, 2)]
    both = n_step_td(batch, stack_features(Xs), n=[np.inf, 2], alpha=[0.1, 0.3])
    np.testing.assert_allclose(both[:, 0], gradient_mc(batch, Xs[0], alpha=0.1)[:, 0], rtol=1e-13)
    np.testing.assert_allclose(both[:, 1, :, :2], n_step_td(batch, Xs[1], n=2, alpha=0.3)[:, 0], rtol=1e-13)
    assert (both[:, 1, :, 2:] == 0).all()                                  # the padding is never updated


def test_refusals_are_one_line():
    batch = EpisodeBatch.from_episodes(random_walk(3), [episode([2, 3], [0, 1])], runs=1)
    for kwargs, fragment in (({"n": 0}, "n=0"), ({"n": 1.5}, "whole numbers"), ({"alpha": -1.0}, "alpha")):
        with pytest.raises(ValueError, match=fragment):
            n_step_td(batch, X3, **kwargs)
    with pytest.raises(ValueError, match="3 matrices for 2"):
        n_step_td(batch, stack_features([X3] * 3), alpha=[0.1, 0.2])


# ------------------------------------------------------------------ gradient MC converges to w_MC
def test_gradient_mc_ends_within_its_sampling_error_of_w_mc():
    # Each run's mean w over episodes 100..199, 20 runs; 4 standard errors of the runs' spread, which is
    # smaller than |w_MC − w_TD| off the middle group, so the test tells the two fixed points apart.
    mdp = random_walk(19)
    pi, X = mdp.uniform_policy(), aggregation(mdp, 5)
    exact = fixed_points(X, mdp, pi)
    batch = EpisodeBatch.sample(mdp, pi, 20, 200, np.random.default_rng(0))
    w = gradient_mc(batch, X, alpha=0.005)[100:, 0].mean(axis=0)          # (runs, d)
    standard_error = w.std(axis=0, ddof=1) / np.sqrt(len(w))
    assert (np.abs(w.mean(axis=0) - exact.w_mc) < 4 * standard_error).all()
    off_middle = [0, 1, 3, 4]
    assert (4 * standard_error[off_middle] < np.abs(exact.w_mc - exact.w_td)[off_middle]).all()


def test_rmsve_measure_is_ve_of_eq_9_1():
    mdp = random_walk(19)
    pi, X = mdp.uniform_policy(), aggregation(mdp, 5)
    v_pi, mu = mdp.evaluate(pi)[0], on_policy_distribution(mdp, pi)
    w = np.random.default_rng(5).normal(size=(3, 1, 2, 5))
    np.testing.assert_allclose(rmsve_measure(X, v_pi, mu)(w), np.sqrt(ve(w, X, v_pi, mu)), rtol=1e-10)
    uniform = np.where(mdp.terminal, 0.0, 1 / 19)                          # Figure 9.2 right's RMS error over S
    np.testing.assert_allclose(rmsve_measure(X, v_pi, uniform)(w), rms_error(w, X, v_pi, mdp.nonterminal), rtol=1e-10)


def test_state_values_figure_numbers_on_the_19_state_walk():
    mdp = random_walk(19)
    X = aggregation(mdp, 5)
    result = state_values_figure(mdp, X, n=np.inf, alpha=0.01, episodes=300, seed=1)
    exact = fixed_points(X, mdp, mdp.uniform_policy())
    np.testing.assert_allclose(result["w_star"], exact.w_mc, atol=1e-12)
    np.testing.assert_allclose(result["rmsve_star"], exact.rmsve_mc, rtol=1e-9)
    assert result["rmsve"] < 2 * exact.rmsve_mc and len(result["v_hat"]) == 19
    np.testing.assert_allclose(result["v_pi"], np.arange(-9, 10) / 10, atol=1e-12)


def test_n_step_sweep_uses_the_same_episodes_for_every_config():
    mdp = random_walk(19)
    X = aggregation(mdp, 5)
    sweep = n_step_sweep(mdp, X, runs=2, seed=0, episodes=3, ns=(1, 4), alphas=(0.1, 0.4))
    # The (n = 4, α = 0.4) cell alone, from the same seed, is the same number.
    alone = n_step_sweep(mdp, X, runs=2, seed=0, episodes=3, ns=(4,), alphas=(0.4,))
    assert np.array(sweep["rms"]).shape == (2, 2)
    np.testing.assert_allclose(sweep["rms"][1][1], alone["rms"][0][0], rtol=1e-12)


def test_learn_in_chunks_continues_the_weights(monkeypatch):
    # Sampled in chunks of 2 episodes per call or all at once, the weights go on from where they were.
    import qapprox.approximators.prediction_figures as pf
    mdp = random_walk(19)
    X = aggregation(mdp, 5)
    monkeypatch.setattr(pf, "CHUNK_EPISODES", 2)
    _, w = learn(mdp, X, n=1, alpha=0.1, runs=1, episodes=5, seed=7, measure=lambda w: w[..., 0])
    rng, pi = np.random.default_rng(7), mdp.uniform_policy()
    w_ref = None
    for size in (2, 2, 1):
        w_ref = n_step_td(EpisodeBatch.sample(mdp, pi, 1, size, rng), X, n=1, alpha=0.1, w0=w_ref)[-1]
    np.testing.assert_array_equal(w, w_ref)


# ------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("mdp", [random_walk_1000(), random_walk(19)])
def test_binary_search_sampler_draws_what_the_full_row_inverse_cdf_drew(mdp):
    rng = np.random.default_rng(11)
    s = rng.choice(mdp.n_states, size=5000)
    a = rng.integers(mdp.n_actions, size=5000)
    new, _, _ = mdp.step(s, a, np.random.default_rng(12))
    u = np.random.default_rng(12).random((s.size, 1))
    old = (u > np.cumsum(mdp.P, axis=-1)[s, a]).sum(-1).clip(max=mdp.n_states - 1)   # the former O(|S⁺|) draw
    np.testing.assert_array_equal(new, old)


def test_sampler_with_zero_probability_states_and_exact_frequencies():
    # Row p(·|0) = (0, ½, 0, 0, ½): never a zero-probability state; frequencies within 5σ of ½.
    P = np.zeros((5, 1, 5))
    P[0, 0, [1, 4]] = 0.5
    P[1:4, 0, 4] = 1.0
    mdp = FiniteMDP(P, 0.0, np.array([0, 0, 0, 0, 1], bool), np.array([1.0, 0, 0, 0, 0]), gamma=1.0)
    s_next, _, _ = mdp.step(np.zeros(40_000, int), np.zeros(40_000, int), np.random.default_rng(0))
    counts = np.bincount(s_next, minlength=5)
    assert counts[[0, 2, 3]].sum() == 0 and abs(counts[1] / 40_000 - 0.5) < 5 * np.sqrt(0.25 / 40_000)
    walk = random_walk_1000()
    jumps = walk.step(np.full(100_000, 500), np.ones(100_000, int), np.random.default_rng(1))[0] - 500
    assert jumps.min() == 1 and jumps.max() == 100
    assert np.abs(np.bincount(jumps)[1:] / 100_000 - 0.01).max() < 5 * np.sqrt(0.01 * 0.99 / 100_000)


# ------------------------------------------------------------------ qapprox walk-figures
def call(argv: list[str], capsys) -> tuple[int, str, str]:
    return exit_status(script.main, argv, capsys)


@pytest.mark.parametrize("figure, flags, keys", [
    ("9.1", ["--episodes", "20"], {"v_pi", "v_hat", "w", "w_star", "v_star", "mu", "rmsve", "rmsve_star"}),
    ("9.5", ["--episodes", "5", "--runs", "2"], {"curves", "alpha", "d", "runs", "episodes"}),
    ("9.10", ["--episodes", "5", "--runs", "2"], {"curves", "alpha", "d", "runs", "episodes"}),
])
def test_command_json(figure, flags, keys, tmp_path, capsys):
    png = tmp_path / "f.png"
    code, out, _ = call(["--figure", figure, *flags, "--json", "--png", str(png)], capsys)
    result = json.loads(out)
    assert code == 0 and png.stat().st_size > 0
    assert {"figure", "protocol", "episodes", "seed", "seconds", "png", "numbers"} <= set(result)
    assert keys <= set(result["numbers"]) and result["numbers"]["episodes"] == int(flags[1])
    if figure != "9.1":
        assert all(len(curve) == 5 for curve in result["numbers"]["curves"].values())
    if figure == "9.10":
        assert result["numbers"]["alpha"] == {"1 tiling": 1e-4, "50 tilings": 1e-4 / 50}
        assert result["numbers"]["d"] == {"1 tiling": 6, "50 tilings": 300}


@pytest.mark.parametrize("argv, fragment", [
    (["--figure", "9.3"], "--figure"),
    (["--figure", "9.1", "--runs", "3"], "--runs is not for --figure 9.1"),
    (["--figure", "9.5", "--alpha", "0.1"], "--alpha is not for --figure 9.5"),
    (["--figure", "9.10", "--episodes", "0"], "--episodes=0"),
    (["--figure", "9.2", "--runs", "-1"], "--runs=-1"),
    (["--figure", "9.1", "--alpha", "0"], "--alpha=0"),
    (["--figure", "9.1", "--png", "x.unknown"], "not a figure format"),
])
def test_command_bad_flags_are_one_line_exit_2(argv, fragment, capsys):
    code, out, err = call(argv, capsys)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1 and out == ""
