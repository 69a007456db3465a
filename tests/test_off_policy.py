"""The exact off-policy tools of chapter 11 on Baird's counterexample and on a random continuing MDP."""

import numpy as np
import pytest

from qapprox.approximators.off_policy import (bellman_error, expected_etd, expected_tdc, pbe, projection_matrix,
                                              semi_gradient_dp, state_distribution, ve)
from qapprox.approximators.off_policy_td import off_policy_td
from qapprox.envs import FiniteMDP, random_walk
from qapprox.envs.baird import BAIRD_FEATURES as X
from qapprox.envs.baird import BAIRD_W0, BEHAVIOUR_POLICY, TARGET_POLICY, baird

MDP = baird()
MU = state_distribution(MDP, BEHAVIOUR_POLICY)
V_PI = np.zeros(7)                                  # R = 0 everywhere
# Xw = 0: 2w_i + w_8 = 0 above, w_7 + 2w_8 = 0 below; X is 7×8 of rank 7, so this line is all of them.
NULL_W = np.array([-1, -1, -1, -1, -1, -1, -4, 2.0])


def random_continuing_mdp(seed: int = 0, n: int = 5) -> tuple[FiniteMDP, np.ndarray, np.ndarray]:
    """A dense continuing MDP (γ = 0.9, random rewards) with a target π and a behaviour b."""
    rng = np.random.default_rng(seed)
    P = rng.random((n, 2, n))
    P /= P.sum(-1, keepdims=True)
    mdp = FiniteMDP(P, rng.normal(size=(n, 2, n)), np.zeros(n, dtype=bool), np.full(n, 1 / n), gamma=0.9)
    pi, b = rng.dirichlet([1, 1], n), rng.dirichlet([1, 1], n)
    return mdp, pi, b


def test_behaviour_distribution_on_baird_is_uniform():
    assert np.allclose(MU, 1 / 7, rtol=0, atol=1e-15)
    mdp, pi, _ = random_continuing_mdp()
    mu = state_distribution(mdp, pi)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    assert np.allclose(mu @ P_pi, mu) and np.isclose(mu.sum(), 1) and np.all(mu > 0)


def test_state_distribution_refuses_episodic_and_reducible_chains():
    with pytest.raises(ValueError, match="needs a continuing task"):
        state_distribution(random_walk(5), random_walk(5).uniform_policy())
    with pytest.raises(ValueError, match="more than one stationary distribution"):
        stay = np.eye(2)[:, None, :]                                      # two absorbing states: two closed classes
        state_distribution(FiniteMDP(stay, 0.0, np.zeros(2, dtype=bool), [0.5, 0.5], gamma=0.9), [[1.0]] * 2)


def test_a_w_with_v_hat_zero_exists_and_its_ve_and_pbe_are_zero():
    assert np.allclose(X @ NULL_W, 0) and np.linalg.matrix_rank(X) == 7
    for w in (np.zeros(8), NULL_W, 3.5 * NULL_W):
        assert ve(w, X, V_PI, MU) == 0.0
        assert np.allclose(bellman_error(w, X, MDP, TARGET_POLICY), 0) and pbe(w, X, MDP, TARGET_POLICY, MU) == 0.0
    # From w_0: v̂ = (3, …, 3, 12), so VE = (6·9 + 144)/7.
    assert np.isclose(ve(BAIRD_W0, X, V_PI, MU), (6 * 9 + 144) / 7)


def test_projection_is_a_mu_weighted_projection():
    # Baird's X spans all of R^7, so Π = I there and PBE = ‖δ̄‖²_μ.
    assert np.allclose(projection_matrix(X, MU), np.eye(7))
    delta_bar = bellman_error(BAIRD_W0, X, MDP, TARGET_POLICY)
    assert np.isclose(pbe(BAIRD_W0, X, MDP, TARGET_POLICY, MU), delta_bar ** 2 @ MU)
    rng = np.random.default_rng(1)
    features, mu = rng.normal(size=(7, 3)), rng.dirichlet(np.ones(7))
    Pi = projection_matrix(features, mu)
    assert np.allclose(Pi @ Pi, Pi) and np.allclose(Pi @ features, features)
    v = rng.normal(size=7)
    assert np.allclose(features.T @ (mu * (v - Pi @ v)), 0)              # the residual is D-orthogonal to X


def test_pbe_is_zero_at_the_td_fixed_point_and_ve_of_v_pi_is_zero():
    mdp, pi, b = random_continuing_mdp()
    mu = state_distribution(mdp, b)
    features = np.random.default_rng(2).normal(size=(5, 2))
    P_pi, r_pi = np.einsum("sa,sat->st", pi, mdp.P), np.einsum("sa,sa->s", pi, mdp.r)
    A = features.T @ (mu[:, None] * (np.eye(5) - mdp.gamma * P_pi) @ features)   # eq. 11.13: w_TD = A⁻¹b
    w_td = np.linalg.solve(A, features.T @ (mu * r_pi))
    assert pbe(w_td, features, mdp, pi, mu) < 1e-25 and pbe(w_td + 0.1, features, mdp, pi, mu) > 1e-4
    v_pi, _ = mdp.evaluate(pi)
    assert ve(v_pi, np.eye(5), v_pi, mu) == 0 and np.allclose(bellman_error(v_pi, np.eye(5), mdp, pi), 0)


def test_semi_gradient_dp_diverges_from_the_books_start():
    W = semi_gradient_dp(BAIRD_W0, X, MDP, TARGET_POLICY, alpha=0.01, sweeps=1400)
    norms = np.linalg.norm(W, axis=1)
    assert np.all(np.diff(norms) > 0)                                     # it grows on every sweep
    assert norms[1000] > 40 * norms[0] and norms[1400] > 100 * norms[0]
    growth = norms[1:] / norms[:-1]
    assert np.isclose(growth[-1], growth[-100], rtol=1e-4) and growth[-1] > 1.001   # geometric: without bound
    assert np.all(W[-1, :6] > 100) and W[-1, 7] > 300                      # w_1..w_6 and w_8 run away
    # μ = uniform is eq. 11.9's 1/|S| weighting.
    assert np.allclose(semi_gradient_dp(BAIRD_W0, X, MDP, TARGET_POLICY, alpha=0.01, sweeps=5, mu=MU), W[:6])


def test_expected_tdc_drives_pbe_towards_zero_but_not_ve():
    W, V = expected_tdc(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=0.005, beta=0.05, sweeps=1000)
    assert W.shape == V.shape == (1001, 8) and np.all(V[0] == 0)
    rmspbe = np.sqrt(pbe(W, X, MDP, TARGET_POLICY, MU))
    rmsve = np.sqrt(ve(W, X, V_PI, MU))
    assert rmspbe[0] > 8 and rmsve[0] > 5
    assert np.argmax(rmspbe < 0.01) == 410                                # the first sweep with √PBE < 0.01
    assert np.all(rmspbe[410:] < 0.01)
    assert np.all(rmsve[400:] > 1.9)                                      # TDC minimises PBE, not VE


def test_expected_etd_settles_on_a_w_with_v_hat_zero():
    W = expected_etd(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=0.03, sweeps=1000)
    rmsve = np.sqrt(ve(W, X, V_PI, MU))
    assert rmsve[:50].max() > 8                                           # it first swings away from w_0 …
    assert rmsve[300:].max() < 1e-3 and rmsve[-1] < 1e-12                 # … then settles where v̂ = v_π = 0
    assert np.allclose(np.diff(W[-10:], axis=0), 0) and np.abs(W).max() <= 10


def test_expected_etd_emphasis_is_the_recursion_on_mu():
    # One sweep: m_0 = μ·i; the second uses m_1 = μ·i + γ P_πᵀ m_0 (all solid: s_7 gains γ Σ m_0 = γ).
    W = expected_etd(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=0.03, sweeps=2, interest=2.0)
    delta_bar = bellman_error(W[:2], X, MDP, TARGET_POLICY)
    m0 = 2 * MU
    m1 = m0 + np.r_[np.zeros(6), 0.99 * 2]
    assert np.allclose(W[1], BAIRD_W0 + 0.03 * X.T @ (m0 * delta_bar[0]))
    assert np.allclose(W[2], W[1] + 0.03 * X.T @ (m1 * delta_bar[1]))


def test_expected_etd_is_the_scalar_emphasis_recursion_of_the_reference_code():
    # The public reference for Figure 11.6 (Zhang's chapter11/counterexample.py) keeps one scalar emphasis e,
    # e ← mean_s (γ ρ(s) e + 1), ρ = 7 in s_7 and 0 above, and weights each state's expected δ̄(s) x(s) by
    # (1/7)(γ ρ(s) e + 1): written out here, it is m_k of expected_etd sweep for sweep (Σ_s m_k(s) = e_{k+1}).
    w, e, trajectory = BAIRD_W0.astype(float), 0.0, [BAIRD_W0.astype(float)]
    for _ in range(1000):
        emphasis = np.array([1.0] * 6 + [0.99 * 7 * e + 1])
        delta_bar = 0.99 * X[6] @ w - X @ w  # R = 0; under π every state moves to s_7
        w = w + 0.03 * X.T @ (emphasis / 7 * delta_bar)
        e = emphasis.mean()
        trajectory.append(w)
    W = expected_etd(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=0.03, sweeps=1000)
    assert np.allclose(W, trajectory, rtol=1e-10, atol=1e-10)
    assert np.sqrt(ve(W[200], X, V_PI, MU)) < 0.05  # both settle by sweep 200 (the book's figure swings longer)


@pytest.mark.parametrize("call, message", [
    (lambda: semi_gradient_dp(BAIRD_W0, X, MDP, TARGET_POLICY, alpha=0, sweeps=1), "alpha=0 must be > 0"),
    (lambda: semi_gradient_dp(BAIRD_W0, X, MDP, TARGET_POLICY, alpha=0.1, sweeps=-1), "sweeps"),
    (lambda: semi_gradient_dp(BAIRD_W0[:7], X, MDP, TARGET_POLICY, alpha=0.1, sweeps=1), "w0 must have shape"),
    (lambda: expected_tdc(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=0.1, beta=-1, sweeps=1), "beta=-1"),
    (lambda: expected_etd(BAIRD_W0, X, MDP, TARGET_POLICY, MU[:6], alpha=0.1, sweeps=1), "mu must be"),
    (lambda: pbe(BAIRD_W0, X[:6], MDP, TARGET_POLICY, MU), "features have shape"),
    (lambda: ve(BAIRD_W0, X, V_PI, np.full(7, 0.5)), "mu must be a distribution"),
])
def test_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("method", ["semi-gradient-td", "tdc", "etd"])
def test_one_expected_sweep_is_the_mean_of_one_sampled_step(method):
    # S_0 ~ start = μ (uniform), so the mean first step of the sampled algorithm is the first expected sweep.
    runs, alpha, beta = 200_000, 0.01, 0.05
    sampled = off_policy_td(MDP, X, TARGET_POLICY, BEHAVIOUR_POLICY, method=method, steps=1, alpha=alpha,
                            beta=beta if method == "tdc" else None, runs=runs, w0=BAIRD_W0, seed=3)
    dw = sampled.w[1] - sampled.w[0]
    if method == "semi-gradient-td":
        expected = semi_gradient_dp(BAIRD_W0, X, MDP, TARGET_POLICY, alpha=alpha, sweeps=1, mu=MU)
    elif method == "tdc":
        expected, expected_v = expected_tdc(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=alpha, beta=beta, sweeps=1)
        dv = sampled.v[1] - sampled.v[0]
        assert np.all(np.abs(dv.mean(0) - expected_v[1]) < 4 * dv.std(0) / np.sqrt(runs) + 1e-15)
    else:
        expected = expected_etd(BAIRD_W0, X, MDP, TARGET_POLICY, MU, alpha=alpha, sweeps=1)
    error = dw.std(axis=0) / np.sqrt(runs)
    assert np.all(np.abs(dw.mean(axis=0) - (expected[1] - expected[0])) < 4 * error + 1e-15)
    assert np.abs(expected[1] - expected[0]).max() > 10 * error.max()      # the test can tell them apart
