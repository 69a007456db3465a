"""The exact fixed points of linear prediction (approximators.fixed_points) and `qapprox fixed-points`.

μ by hand on the 19-state walk and Quiz 9; with one-hot features both fixed points are v_π; with Example 9.1's
state aggregation they differ, w_MC being each group's μ-weighted mean of v_π; the bounds of VE(w_TD); a
batched gradient-MC run ends within its sampling error of w_MC; the command prints the library's numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qapprox.approximators.bases import StateAggregation, on_states
from qapprox.approximators.features import state_features
from qapprox.approximators.fixed_points import (contraction, fixed_points, mc_fixed_point, on_policy_distribution,
                                                td_fixed_point, td_system)
from qapprox.approximators.off_policy import ve
from qapprox.approximators.traces import EpisodeBatch, td_lambda
from qapprox.envs import FiniteMDP, quiz9_mdp, random_walk, random_walk_1000
from qapprox.scripts import fixed_points as script
from script_calls import exit_status


def aggregation(mdp, groups: int) -> np.ndarray:
    """Example 9.1's features on a walk's states 1..n (at positions s on [0.5, n + 0.5])."""
    n = mdp.nonterminal.size
    return on_states(StateAggregation(groups, 0.5, n + 0.5), mdp, np.arange(mdp.n_states))


@pytest.fixture(scope="module")
def walk_1000():
    mdp = random_walk_1000()
    return mdp, aggregation(mdp, 10), fixed_points(aggregation(mdp, 10), mdp, mdp.uniform_policy())


# ------------------------------------------------------------------ μ
def test_on_policy_distribution_of_the_19_state_walk_is_the_triangle_of_visits():
    # From the middle state 10 of a symmetric walk absorbed at 0 and 20, the expected visits are
    # η(s) = s for s ≤ 10 and 20 − s above: 100 steps per episode on average.
    mdp = random_walk(19)
    eta = np.r_[0, np.arange(1, 11), np.arange(9, 0, -1), 0]
    assert np.allclose(on_policy_distribution(mdp, mdp.uniform_policy()), eta / 100, atol=1e-14)


def test_on_policy_distribution_of_quiz9_by_hand():
    # Uniform π: η_A = 1 + ½η_B, η_B = ½η_A + 0.1η_C, η_C = ¼η_A + ½η_B  →  η = (76, 42, 40)/55.
    mdp = quiz9_mdp()
    assert np.allclose(on_policy_distribution(mdp, mdp.uniform_policy()), np.r_[76, 42, 40, 0] / 158, atol=1e-14)


def test_a_policy_that_never_terminates_is_refused_in_one_line():
    mdp = quiz9_mdp()
    pi = mdp.uniform_policy()
    pi[0], pi[1] = (1.0, 0.0), (0.0, 1.0)             # s_A → s_B → s_A … forever
    with pytest.raises(ValueError, match="some episode never ends") as error:
        on_policy_distribution(mdp, pi)
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ one-hot: both fixed points are v_π
@pytest.mark.parametrize("mdp", [random_walk(19), quiz9_mdp()], ids=["random-walk-19", "quiz9"])
def test_with_one_hot_features_both_fixed_points_are_v_pi(mdp):
    result = fixed_points(state_features(mdp), mdp, mdp.uniform_policy())
    v_pi = mdp.evaluate(mdp.uniform_policy())[0][mdp.nonterminal]
    assert np.abs(result.w_mc - v_pi).max() < 1e-10
    assert np.abs(result.w_td - v_pi).max() < 1e-10
    assert result.rmsve_mc < 1e-10 and result.rmsve_td < 1e-10
    if mdp.n_states == 21:
        assert np.allclose(v_pi, np.arange(-9, 10) / 10, atol=1e-12)   # the walk's v_π(s) = (s − 10)/10


# ------------------------------------------------------------------ state aggregation of the 1000-state walk
def test_aggregation_mc_fixed_point_is_the_mu_weighted_mean_of_v_pi_in_each_group(walk_1000):
    mdp, X, result = walk_1000
    v, mu = result.v_pi, result.mu
    for g in range(10):
        group = slice(1 + 100 * g, 101 + 100 * g)                      # states 100g+1 .. 100g+100
        assert result.w_mc[g] == pytest.approx(mu[group] @ v[group] / mu[group].sum(), abs=1e-12)


def test_aggregation_fixed_points_differ_and_mc_has_the_least_ve(walk_1000):
    mdp, X, result = walk_1000
    assert np.abs(result.w_mc - result.w_td).max() > 0.1
    assert result.ve_mc < result.ve_td
    # min VE: no perturbation of w_MC does better.
    perturbed = result.w_mc + 0.01 * np.random.default_rng(0).standard_normal((50, 10))
    assert (ve(perturbed, X, result.v_pi, result.mu) > result.ve_mc).all()
    assert result.rmsve_mc == pytest.approx(np.sqrt(ve(result.w_mc, X, result.v_pi, result.mu)))


def test_aggregation_looks_like_figure_9_1(walk_1000):
    mdp, X, result = walk_1000
    v_hat = X @ result.w_mc
    # A staircase: constant within each group of 100 states, rising from group to group ...
    steps = v_hat[1:1001].reshape(10, 100)
    assert np.ptp(steps, axis=1).max() == 0.0 and (np.diff(steps[:, 0]) > 0.15).all()
    # ... under v_π, which runs from about −0.92 at state 1 to +0.92 at state 1000; the first step
    # sits near −0.83, above v_π at the left end and below it at the group's right end.
    assert result.v_pi[1] == pytest.approx(-0.922, abs=1e-3) and result.v_pi[1000] == pytest.approx(0.922, abs=1e-3)
    assert result.w_mc[0] == pytest.approx(-0.830, abs=1e-3) and result.w_mc[9] == pytest.approx(0.830, abs=1e-3)
    assert result.v_pi[1] < result.w_mc[0] < result.v_pi[100]


# ------------------------------------------------------------------ the bound
def test_bound_9_14_does_not_apply_at_gamma_1_and_the_kappa_bound_does(walk_1000):
    mdp, X, result = walk_1000
    assert not result.bound_applies and result.bound is None
    assert 0.99 < result.kappa < 1.0
    assert result.ve_td <= result.bound_kappa == pytest.approx(result.ve_mc / (1 - result.kappa**2))


def test_kappa_is_1_on_the_periodic_19_state_walk():
    # v = 1 on the odd states: P_π v = 1 on every even state (both neighbours odd) and 0 on the odd ones,
    # and μ puts mass ½ on each parity, so ‖P_π v‖_μ = ‖v‖_μ: no contraction, no bound at γ = 1.
    mdp = random_walk(19)
    result = fixed_points(aggregation(mdp, 5), mdp, mdp.uniform_policy())
    assert result.kappa == 1.0 and result.bound_kappa is None and result.bound is None


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_bounds_hold_with_discounting(gamma):
    walk = random_walk(19)
    mdp = FiniteMDP(walk.P.copy(), walk.R.copy(), walk.terminal, walk.start, gamma=gamma)
    result = fixed_points(aggregation(mdp, 4), mdp, mdp.uniform_policy())
    assert result.bound_applies and result.kappa <= gamma
    assert result.ve_mc <= result.ve_td <= result.bound_kappa <= result.ve_mc / (1 - gamma**2) <= result.bound
    assert result.bound == pytest.approx(result.ve_mc / (1 - gamma))


def test_quiz9_with_two_features_satisfies_9_14():
    mdp = quiz9_mdp()
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])    # s_B and s_C share a weight
    result = fixed_points(X, mdp, mdp.uniform_policy())
    assert result.ve_mc > 0.1 and result.kappa < 0.9
    assert result.ve_mc <= result.ve_td <= result.bound_kappa <= result.bound


# ------------------------------------------------------------------ the systems, and rank deficiency
def test_td_system_for_one_hot_is_d_times_i_minus_gamma_p():
    mdp = quiz9_mdp()
    pi = mdp.uniform_policy()
    A, b = td_system(state_features(mdp), mdp, pi)
    mu = on_policy_distribution(mdp, pi)[:3]
    P = np.einsum("sa,sat->st", pi, mdp.P)[:3, :3]
    r = np.einsum("sa,sa->s", pi, mdp.r)[:3]
    assert np.allclose(A, np.diag(mu) @ (np.eye(3) - 0.9 * P), atol=1e-15) and np.allclose(b, mu * r, atol=1e-15)
    assert np.allclose(td_fixed_point(state_features(mdp), mdp, pi), np.linalg.solve(np.eye(3) - 0.9 * P, r))


def test_rank_deficient_features_mc_by_pseudo_inverse_td_refused():
    mdp = random_walk(19)
    pi = mdp.uniform_policy()
    X = aggregation(mdp, 5)
    doubled = np.hstack([X, X])                                        # every feature twice
    assert np.allclose(doubled @ mc_fixed_point(doubled, mdp, pi), X @ mc_fixed_point(X, mdp, pi), atol=1e-12)
    with pytest.raises(ValueError, match="rank 5 < d = 10") as error:
        td_fixed_point(doubled, mdp, pi)
    assert "\n" not in str(error.value)


def test_contraction_is_at_most_gamma_on_quiz9():
    mdp = quiz9_mdp()
    assert 0.0 < contraction(mdp, mdp.uniform_policy()) <= mdp.gamma


# ------------------------------------------------------------------ gradient MC converges to w_MC
def test_gradient_mc_ends_within_its_sampling_error_of_the_projection():
    # Gradient MC as offline TD(1) (traces.td_lambda, λ = 1, increments α Σ_t (G_t − v̂(S_t, w)) x_t applied at
    # each episode's end): the expected increment is affine in w and zero at w_MC, so E[w_k] → w_MC exactly.
    # The estimate: each run's mean of w over episodes 100..199, averaged over 20 independent runs; the
    # tolerance: 4 standard errors from the spread of the runs — smaller than |w_MC − w_TD| off the middle.
    mdp = random_walk(19)
    pi, X = mdp.uniform_policy(), aggregation(mdp, 5)
    exact = fixed_points(X, mdp, pi)
    batch = EpisodeBatch.sample(mdp, pi, 20, 200, np.random.default_rng(0))
    w = td_lambda(batch, X, alpha=0.005, lam=1.0, offline=True)[100:, 0].mean(axis=0)   # (runs, d)
    standard_error = w.std(axis=0, ddof=1) / np.sqrt(len(w))
    assert (np.abs(w.mean(axis=0) - exact.w_mc) < 4 * standard_error).all()
    off_middle = [0, 1, 3, 4]
    assert (4 * standard_error[off_middle] < np.abs(exact.w_mc - exact.w_td)[off_middle]).all()


# ------------------------------------------------------------------ qapprox fixed-points
def call(argv: list[str], capsys) -> tuple[int, str, str]:
    return exit_status(script.main, argv, capsys)


def test_command_json_is_the_library_s(walk_1000, capsys):
    mdp, X, result = walk_1000
    code, out, _ = call(["--env", "random-walk-1000", "--features", "aggregation", "--groups", "10", "--json"], capsys)
    printed = json.loads(out)
    assert code == 0 and printed == {"env": "random-walk-1000", "features": "aggregation", "d": 10, **result.summary()}
    assert {"w_mc", "w_td", "rmsve_mc", "rmsve_td", "bound", "bound_applies"} <= printed.keys()
    assert printed["bound"] is None and printed["bound_applies"] is False


def test_command_quiz9_defaults_to_one_hot_and_the_table_prints(capsys):
    code, out, _ = call(["--env", "quiz9", "--json"], capsys)
    assert code == 0 and json.loads(out)["features"] == "one-hot" and json.loads(out)["bound_applies"] is True
    code, out, _ = call(["--env", "random-walk-19", "--features", "fourier", "--order", "3"], capsys)
    assert code == 0 and "√VE(w_TD)" in out and "does not apply" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--groups", "0"], "groups=0"),
    (["--features", "one-hot", "--groups", "3"], "--groups is for --features aggregation"),
    (["--features", "aggregation", "--order", "3"], "--order is for --features polynomial or fourier"),
    (["--env", "baird"], "env='baird'"),
    (["--env", "random-walk-0"], "env='random-walk-0'"),
    (["--env", "quiz9", "--features", "polynomial"], "use one-hot"),
    (["--features", "tiles"], "features='tiles'"),
    (["--features", "fourier", "--order", "-1"], "order=-1"),
])
def test_command_bad_flags_are_one_line_exit_2(argv, fragment, capsys):
    code, out, err = call(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err
