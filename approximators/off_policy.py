"""Exact (expected) off-policy linear prediction on a finite MDP (Sutton & Barto chapter 11).

Notation: linear v̂(s, w) = wᵀx(s) with features X (|S⁺|, d), target policy π, behaviour policy b,
state distribution μ (D = diag μ), P_π(s, s') = Σ_a π(a|s) p(s'|s, a), r_π(s) = Σ_a π(a|s) r(s, a).
Terminal states have v̂ = 0 (their rows of X are read as 0).

    VE(w)   = Σ_s μ(s) (v_π(s) − v̂(s, w))²                       eq. 9.1   (√VE = RMSVE)
    Π       = X (XᵀDX)⁻¹ XᵀD                                      eq. 11.14 (pseudo-inverse when X is rank-deficient)
    δ̄_w     = r_π + γ P_π Xw − Xw                                 eq. 11.20 (the Bellman error vector)
    PBE(w)  = ‖Π δ̄_w‖²_μ = (XᵀDδ̄_w)ᵀ (XᵀDX)⁻¹ (XᵀDδ̄_w)         eq. 11.22, 11.27

The expected algorithms update every state at once per sweep, each state weighted by μ: they are
the expectation over S_t ~ μ, A_t ~ b and S_{t+1} ~ p of the sampled updates of chapter 11, where
E_b[ρ_t f(S_t, A_t, S_{t+1}) | S_t = s] = E_π[f | s] with ρ_t = π(A_t|S_t)/b(A_t|S_t) (eq. 11.1).
Each returns the whole trajectory of w, shape (sweeps + 1, d), row 0 being w_0.
"""

from __future__ import annotations

import numpy as np

from qapprox.approximators.features import check_features
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_array, check_float, check_int


# ------------------------------------------------------------------ the model
def _model(mdp: FiniteMDP, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P_π, r_π) of the chain under π."""
    pi = mdp.check_policy(pi)
    return np.einsum("sa,sat->st", pi, mdp.P), np.einsum("sa,sa->s", pi, mdp.r)


def _delta_bar(v_hat: np.ndarray, P_pi: np.ndarray, r_pi: np.ndarray, gamma: float) -> np.ndarray:
    """δ̄ = r_π + γ P_π v̂ − v̂ (eq. 11.20) for v̂ of shape (..., |S⁺|)."""
    return r_pi + gamma * v_hat @ P_pi.T - v_hat


def _features(X: np.ndarray, mdp: FiniteMDP) -> np.ndarray:
    """X checked against |S⁺|, with terminal rows zeroed (v̂(terminal) = 0)."""
    X = check_features(X, mdp.n_states).copy()
    X[mdp.terminal] = 0.0
    return X


def _distribution(mu: np.ndarray, n_states: int) -> np.ndarray:
    mu = check_array("mu", mu, 0.0, 1.0)
    if mu.shape != (n_states,) or not np.isclose(mu.sum(), 1.0):
        raise ValueError(f"mu must be a distribution over the {n_states} states, got shape {mu.shape}")
    return mu


def state_distribution(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """The stationary distribution μ of the chain under `policy`: μᵀP_π = μᵀ, Σ_s μ(s) = 1 (§9.2, §10.3).

    Only for continuing tasks (no terminal state): an episodic task's chain ends absorbed in its
    terminals, and its on-policy distribution (eq. 9.2-9.3) is not computed here. A chain with more
    than one stationary distribution (not irreducible) is refused.
    """
    if mdp.terminal.any():
        raise ValueError("state_distribution needs a continuing task (no terminal states)")
    P_pi, _ = _model(mdp, policy)
    n = mdp.n_states
    system = np.vstack([P_pi.T - np.eye(n), np.ones((1, n))])
    if np.linalg.matrix_rank(system) < n:
        raise ValueError("the chain under this policy has more than one stationary distribution")
    mu = np.linalg.lstsq(system, np.r_[np.zeros(n), 1.0], rcond=None)[0].clip(min=0.0)   # round-off below 0
    return mu / mu.sum()


# ------------------------------------------------------------ the objectives
def ve(w: np.ndarray, X: np.ndarray, v: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """VE(w) = Σ_s μ(s)(v(s) − wᵀx(s))² (eq. 9.1); w of shape (..., d) gives one VE per row."""
    X = np.asarray(X, dtype=np.float64)
    mu = _distribution(mu, X.shape[0])
    return ((np.asarray(v, dtype=np.float64) - np.asarray(w, dtype=np.float64) @ X.T) ** 2) @ mu


def projection_weights(X: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """(XᵀDX)⁻¹ XᵀD, shape (d, |S⁺|): w = (XᵀDX)⁻¹XᵀD v is the μ-weighted least-squares fit of v, argmin VE.

    With rank-deficient X the pseudo-inverse stands for the inverse: w is then the least-norm minimiser.
    """
    X = np.asarray(X, dtype=np.float64)
    XD = X.T * _distribution(mu, X.shape[0])
    return np.linalg.pinv(XD @ X) @ XD


def projection_matrix(X: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Π = X (XᵀDX)⁻¹ XᵀD (eq. 11.14): the μ-weighted least-squares projection onto the span of X.

    With rank-deficient X (more features than independent states, as in Baird's counterexample) the
    pseudo-inverse stands for the inverse; Π is still the projection onto the column space of X.
    """
    return np.asarray(X, dtype=np.float64) @ projection_weights(X, mu)


def bellman_error(w: np.ndarray, X: np.ndarray, mdp: FiniteMDP, pi: np.ndarray) -> np.ndarray:
    """δ̄_w = r_π + γ P_π Xw − Xw (eq. 11.19-11.20), one entry per state; w of shape (..., d)."""
    X = _features(X, mdp)
    P_pi, r_pi = _model(mdp, pi)
    return _delta_bar(np.asarray(w, dtype=np.float64) @ X.T, P_pi, r_pi, mdp.gamma)


def pbe(w: np.ndarray, X: np.ndarray, mdp: FiniteMDP, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """PBE(w) = ‖Π δ̄_w‖²_μ = Σ_s μ(s) (Π δ̄_w)(s)² (eq. 11.22); w of shape (..., d) gives one PBE per row."""
    projected = bellman_error(w, X, mdp, pi) @ projection_matrix(_features(X, mdp), mu).T
    return projected ** 2 @ mu


# ----------------------------------------------------- the expected updates
def _start(w0: np.ndarray, d: int, sweeps: int, name: str = "w0") -> np.ndarray:
    w0 = check_array(name, w0)
    if w0.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), got {w0.shape}")
    trajectory = np.empty((check_int("sweeps", sweeps, 0) + 1, d))
    trajectory[0] = w0
    return trajectory


def semi_gradient_dp(w0: np.ndarray, X: np.ndarray, mdp: FiniteMDP, pi: np.ndarray, *, alpha: float,
                     sweeps: int, mu: np.ndarray | None = None) -> np.ndarray:
    """Semi-gradient DP (eq. 11.9), all states at once each sweep:

        w_{k+1} = w_k + α Σ_s μ(s) (E_π[R_{t+1} + γ v̂(S_{t+1}, w_k) | S_t = s] − v̂(s, w_k)) x(s)
                = w_k + α XᵀD δ̄_{w_k}

    μ defaults to 1/|S| for every state: eq. 11.9 as the book writes it. Returns w_0..w_sweeps.
    """
    X = _features(X, mdp)
    P_pi, r_pi = _model(mdp, pi)
    mu = np.full(mdp.n_states, 1.0 / mdp.n_states) if mu is None else _distribution(mu, mdp.n_states)
    alpha = check_float("alpha", alpha, 0.0, low_open=True)
    XD = X.T * mu
    W = _start(w0, X.shape[1], sweeps)
    for k in range(sweeps):
        delta_bar = _delta_bar(X @ W[k], P_pi, r_pi, mdp.gamma)
        W[k + 1] = W[k] + alpha * XD @ delta_bar
    return W


def expected_tdc(w0: np.ndarray, X: np.ndarray, mdp: FiniteMDP, pi: np.ndarray, mu: np.ndarray, *, alpha: float,
                 beta: float, sweeps: int, v0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Expected TDC / GTD(0) (§11.7, eq. 11.29-11.30), all states at once each sweep. The sampled updates

        v_{t+1} = v_t + β ρ_t (δ_t − v_tᵀx_t) x_t
        w_{t+1} = w_t + α ρ_t (δ_t x_t − γ x_{t+1} x_tᵀ v_t)

    taken in expectation over S_t ~ μ, A_t ~ b, S_{t+1} ~ p, both from (w_k, v_k):

        v_{k+1} = v_k + β (XᵀD δ̄_{w_k} − XᵀDX v_k)
        w_{k+1} = w_k + α (XᵀD δ̄_{w_k} − γ (P_π X)ᵀ D X v_k)

    v_0 defaults to 0. Returns (w_0..w_sweeps, v_0..v_sweeps), each of shape (sweeps + 1, d).
    """
    X = _features(X, mdp)
    P_pi, r_pi = _model(mdp, pi)
    mu = _distribution(mu, mdp.n_states)
    alpha = check_float("alpha", alpha, 0.0, low_open=True)
    beta = check_float("beta", beta, 0.0, low_open=True)
    d = X.shape[1]
    XD = X.T * mu
    XDX, PX_T = XD @ X, (P_pi @ X).T  # XᵀDX and (P_π X)ᵀ: the same every sweep
    W = _start(w0, d, sweeps)
    V = _start(np.zeros(d) if v0 is None else v0, d, sweeps, "v0")
    for k in range(sweeps):
        delta_bar = _delta_bar(X @ W[k], P_pi, r_pi, mdp.gamma)
        V[k + 1] = V[k] + beta * (XD @ delta_bar - XDX @ V[k])
        W[k + 1] = W[k] + alpha * (XD @ delta_bar - mdp.gamma * PX_T @ (mu * (X @ V[k])))
    return W, V


def expected_etd(w0: np.ndarray, X: np.ndarray, mdp: FiniteMDP, pi: np.ndarray, mu: np.ndarray, *, alpha: float,
                 sweeps: int, interest: float = 1.0) -> np.ndarray:
    """Expected one-step emphatic TD (§11.8, eq. 11.25-11.26), all states at once each sweep. The sampled updates

        M_t = γ ρ_{t−1} M_{t−1} + I_t     (M_{−1} = 0)
        w_{t+1} = w_t + α M_t ρ_t δ_t x_t

    in expectation with S_t ~ μ: m_k(s) = E[M_k 1{S_k = s}] follows the emphasis recursion on the
    state distribution, E_b[ρ_{t−1} M_{t−1} 1{S_t = s}] = Σ_s̄ m_{t−1}(s̄) P_π(s̄, s), so

        m_0 = μ·i,   m_k = μ·i + γ P_πᵀ m_{k−1}
        w_{k+1} = w_k + α Xᵀ diag(m_k) δ̄_{w_k}

    with the interest i(s) = `interest` for every state. Returns w_0..w_sweeps.
    """
    X = _features(X, mdp)
    P_pi, r_pi = _model(mdp, pi)
    mu = _distribution(mu, mdp.n_states)
    alpha = check_float("alpha", alpha, 0.0, low_open=True)
    interest = check_float("interest", interest, 0.0)
    W = _start(w0, X.shape[1], sweeps)
    m = mu * interest
    for k in range(sweeps):
        delta_bar = _delta_bar(X @ W[k], P_pi, r_pi, mdp.gamma)
        W[k + 1] = W[k] + alpha * X.T @ (m * delta_bar)
        m = mu * interest + mdp.gamma * P_pi.T @ m
    return W
