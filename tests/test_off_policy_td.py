"""Sampled off-policy linear prediction on Baird's counterexample (S&B chapter 11)."""

import numpy as np
import pytest

from qapprox.approximators.off_policy import expected_tdc, semi_gradient_dp
from qapprox.approximators.off_policy_td import (
    OffPolicyTD, emphasis, importance_ratio, off_policy_td, ratio_table, sample_transitions,
)
from qapprox.envs.baird import BAIRD_FEATURES, BAIRD_W0, BEHAVIOUR_POLICY, TARGET_POLICY, baird
from qapprox.envs.finite import FiniteMDP

X, PI, B = BAIRD_FEATURES, TARGET_POLICY, BEHAVIOUR_POLICY
DASHED, SOLID, LOWER = 0, 1, 6


def test_rho_is_zero_for_dashed_and_seven_for_solid():
    s = np.arange(7).repeat(2)
    a = np.tile([DASHED, SOLID], 7)
    rho = importance_ratio(PI, B, s, a)
    assert rho[a == DASHED].tolist() == [0.0] * 7
    assert rho[a == SOLID] == pytest.approx([7.0] * 7, rel=1e-15)  # 1 / b(solid|s) = 1 / (1/7)


def test_rho_refuses_a_behaviour_policy_that_does_not_cover_pi():
    never_solid = np.tile([1.0, 0.0], (7, 1))
    with pytest.raises(ValueError, match=r"^b\(a\|s\) = 0 where π\(a\|s\) > 0 \(s=0, a=1\)"):
        importance_ratio(PI, never_solid, np.array([0]), np.array([DASHED]))


# One step by hand, with numbers exact in binary: from s_1 (x = 2e_1 + e_8) by solid to s_7 (x' = e_7 + 2e_8),
# R = 1, ρ = 7, γ = 1/2, α = 1/8, β = 1/4, w = (1, 1, 1, 1, 1, 1, 10, 1), v = (1/2, 0, …, 0, 1/4):
# wᵀx = 3, wᵀx' = 12, δ = 1 + 6 − 3 = 4, xᵀv = 5/4.
x, x_next = X[0], X[LOWER]
V0 = np.array([0.5, 0, 0, 0, 0, 0, 0, 0.25])
HAND = {
    # w + αρδx = w + 3.5x
    "semi-gradient-td": [8, 1, 1, 1, 1, 1, 10, 4.5],
    # w + αρ(δx − γx'(xᵀv)) = w + 7/8 (4x − 5/8 x')
    "tdc": [8, 1, 1, 1, 1, 1, 9.453125, 3.40625],
    # w + αρ(x − γx')(xᵀv) = w + 35/32 (x − x'/2)
    "gtd2": [3.1875, 1, 1, 1, 1, 1, 9.453125, 1],
    # M_0 = 1: w + α·1·ρδx, as semi-gradient TD on the first step
    "etd": [8, 1, 1, 1, 1, 1, 10, 4.5],
}


@pytest.mark.parametrize("method", list(HAND))
def test_one_step_equals_the_hand_computed_update(method):
    beta = 0.25 if method in ("tdc", "gtd2") else None
    learner = OffPolicyTD(BAIRD_W0, method=method, alpha=0.125, beta=beta, gamma=0.5)
    if learner.v is not None:
        learner.v = V0.copy()
    rho = importance_ratio(PI, B, np.array(0), np.array(SOLID))
    delta = learner.step(x, np.float64(1.0), x_next, rho)
    assert delta == 4.0
    assert learner.w.tolist() == HAND[method]
    if learner.v is not None:
        # v + βρ(δ − vᵀx)x = v + 7/4 · 11/4 · x
        assert learner.v.tolist() == [10.125, 0, 0, 0, 0, 0, 0, 5.0625]


def test_emphasis_follows_its_recursion_over_three_steps():
    # γ = 1/2, ρ_0 = 7, ρ_1 = 7, ρ_2 = 0, I = 1, M_{−1} = 0:
    # M_0 = 1, M_1 = γρ_0M_0 + 1 = 4.5, M_2 = γρ_1M_1 + 1 = 16.75, M_3 = γρ_2M_2 + 1 = 1.
    assert emphasis(np.float64(0.0), np.float64(0.0), 0.5) == 1.0
    assert emphasis(np.float64(1.0), np.float64(7.0), 0.5) == 4.5
    # The learner keeps M and ρ_{t−1} itself. From w = 0 with x_t = e_1, x' = 0, R = 1, α = 1/16, δ_t = 1 − w_1:
    # w_1 ← 0 + α·1·7·1 = 7/16, then + α·4.5·7·(9/16) = 283.5/256, then + α·16.75·0 = 395.5/256.
    learner = OffPolicyTD(np.zeros(2), method="etd", alpha=0.0625, gamma=0.5)
    e1, zero = np.array([1.0, 0.0]), np.zeros(2)
    for rho, M in ((7.0, 1.0), (7.0, 4.5), (0.0, 16.75)):
        learner.step(e1, np.float64(1.0), zero, np.float64(rho))
        assert learner.M == M
    assert learner.w.tolist() == [395.5 / 256, 0.0]
    learner.step(e1, np.float64(1.0), zero, np.float64(7.0))
    assert learner.M == 1.0


def test_emphasis_starts_afresh_after_a_termination():
    learner = OffPolicyTD(np.zeros(1), method="etd", alpha=0.5, gamma=1.0)
    learner.step(np.ones(1), np.float64(0.0), np.zeros(1), np.float64(2.0), terminated=np.bool_(True))
    learner.step(np.ones(1), np.float64(0.0), np.zeros(1), np.float64(2.0))
    assert learner.M == 1.0


@pytest.mark.parametrize("method", ["semi-gradient-td", "tdc"])
def test_sampled_update_agrees_with_the_expected_update(method):
    """Mean over 200,000 runs of one sampled update from (w_0, v), S ~ μ_b (uniform on Baird), A ~ b, against
    one synchronous expected sweep of approximators.off_policy (for TD: α XᵀD δ̄_w, eq. 11.9), within 4
    standard errors of the mean."""
    mdp, n, mu = baird(), 200_000, np.full(7, 1 / 7)
    alpha, beta = (0.01, None) if method == "semi-gradient-td" else (0.005, 0.05)
    rng = np.random.default_rng(7)
    tr = sample_transitions(mdp, B, ratio_table(PI, B), rng.integers(0, 7, n), rng)
    learner = OffPolicyTD(np.tile(BAIRD_W0, (n, 1)), method=method, alpha=alpha, beta=beta, gamma=mdp.gamma)
    if method == "tdc":
        learner.v = np.tile(V0, (n, 1))
        W, V = expected_tdc(BAIRD_W0, X, mdp, PI, mu, alpha=alpha, beta=beta, sweeps=1, v0=V0)
    else:
        W = semi_gradient_dp(BAIRD_W0, X, mdp, PI, alpha=alpha, sweeps=1, mu=mu)
    learner.step(X[tr.s], tr.reward, X[tr.s_next], tr.rho)
    pairs = [(learner.w - BAIRD_W0, W[1] - W[0])]
    if method == "tdc":
        pairs.append((learner.v - V0, V[1] - V[0]))
    for sampled, expected in pairs:
        error = sampled.std(axis=0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(sampled.mean(axis=0) - expected) <= 4 * error + 1e-15)
        assert np.abs(expected).max() > 10 * error.max()                # the test can tell them apart


def norms(method, **step_sizes):
    result = off_policy_td(baird(), X, PI, B, method=method, steps=1000, runs=50, w0=BAIRD_W0, seed=3,
                           keep="all", **step_sizes)
    return np.linalg.norm(result.w, axis=-1).mean(axis=1)              # mean ‖w_t‖ over runs, (N+1,)


def test_semi_gradient_td_diverges_on_baird():
    norm = norms("semi-gradient-td", alpha=0.01)
    assert norm[1000] > 20 * norm[0]
    assert np.all(norm[[250, 500, 1000]] > norm[[0, 250, 500]] * 2)


def test_tdc_does_not_blow_up_on_baird():
    norm = norms("tdc", alpha=0.005, beta=0.05)
    assert np.all(np.isfinite(norm)) and norm.max() < 1.05 * norm[0] and norm[1000] < 0.9 * norm[0]


def test_keep_mean_is_the_mean_of_the_runs_and_seeded():
    kwargs = dict(method="gtd2", steps=20, runs=4, alpha=0.005, beta=0.05, w0=BAIRD_W0, seed=11)
    full = off_policy_td(baird(), X, PI, B, **kwargs)
    mean = off_policy_td(baird(), X, PI, B, keep="mean", **kwargs)
    assert full.w.shape == full.v.shape == (21, 4, 8) and mean.w.shape == (21, 8)
    np.testing.assert_allclose(mean.w, full.w.mean(axis=1), rtol=1e-15)
    np.testing.assert_allclose(mean.v, full.v.mean(axis=1), rtol=1e-15)
    assert off_policy_td(baird(), X, PI, B, method="semi-gradient-td", steps=3, alpha=0.01).v is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="tdc", alpha=0.01), r"^beta is the step size .*method='tdc' needs one"),
    (dict(method="etd", alpha=0.01, beta=0.1), r"method='etd' takes none"),
    (dict(method="td", alpha=0.01), r"method='td' is not one of"),
    (dict(method="etd", alpha=0.0), r"^alpha=0.0 must be > 0"),
    (dict(method="etd", alpha=0.01, keep="last"), r"keep='last' is not one of"),
    (dict(method="etd", alpha=0.01, seed=-1), r"^seed=-1 must be an integer"),
    (dict(method="etd", alpha=0.01, w0=np.ones(7)), r"^w0 has shape \(7,\); the features need \(8,\)"),
    (dict(method="etd", alpha=0.01, runs=10**12, steps=10**6), r"needs .* of memory"),
])
def test_off_policy_td_refuses_bad_settings_in_one_line(kwargs, message):
    kwargs = {"steps": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        off_policy_td(baird(), X, PI, B, **kwargs)


def test_a_terminal_state_restarts_the_stream():
    """A two-state chain s0 → terminal: every step is an episode of one step, x' = 0, δ = R − wᵀx."""
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = 1.0
    mdp = FiniteMDP(P, np.ones_like(P), np.array([False, True]), np.array([1.0, 0.0]), gamma=1.0)
    result = off_policy_td(mdp, np.array([[1.0], [5.0]]), np.ones((2, 1)), np.ones((2, 1)),
                           method="etd", steps=3, alpha=0.5)
    # M_t = 1 on every step (a new episode each time): w ← w + ½(1 − w): 0, ½, ¾, ⅞.
    assert result.w[:, 0, 0].tolist() == [0.0, 0.5, 0.75, 0.875]
