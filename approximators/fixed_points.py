"""Exact answers for linear on-policy prediction on an episodic finite MDP (Sutton & Barto §9.2-9.4).

Notation: policy π, features X (|S⁺|, d) with x(terminal) = 0, v̂(s, w) = wᵀx(s), on-policy distribution
μ (D = diag μ), P_π(s, s') = Σ_a π(a|s) p(s'|s, a), r_π(s) = Σ_a π(a|s) r(s, a), v_π from mdp.evaluate.

    η(s) = h(s) + Σ_s̄ η(s̄) Σ_a π(a|s̄) p(s|s̄, a),  μ(s) = η(s) / Σ_s' η(s')      eq. 9.2-9.3
    VE(w) = Σ_s μ(s) [v_π(s) − v̂(s, w)]²                                          eq. 9.1
    w_MC = argmin_w VE(w) = (XᵀDX)⁻¹ XᵀD v_π        (gradient MC's fixed point, §9.3)
    A = E[x_t (x_t − γ x_{t+1})ᵀ] = XᵀD (I − γP_π) X,   b = E[R_{t+1} x_t] = XᵀD r_π     eq. 9.11
    w_TD = A⁻¹ b                                    (semi-gradient TD(0)'s fixed point, eq. 9.12)

μ here weighs states as the sampled algorithms visit them (every visit of every episode, eq. 9.2 as
written, no factor γ): it is the D under which sampled gradient MC tends to w_MC and TD(0) / LSTD to w_TD.

The bound. Eq. 9.14, VE(w_TD) ≤ 1/(1−γ) · min_w VE(w), is stated for the continuing discounted case,
where μ is stationary. Its argument (Tsitsiklis & Van Roy 1997) needs only a κ < 1 with ‖γP_π v‖_μ ≤ κ‖v‖_μ:
v̂_TD = Π T v̂_TD and v_π = T v_π, Π is μ-orthogonal and non-expansive, so by Pythagoras
VE(w_TD) = ‖v̂_TD − Πv_π‖²_μ + min VE ≤ κ² VE(w_TD) + min VE, i.e.

    VE(w_TD) ≤ min_w VE(w) / (1 − κ²),    κ = ‖γP_π‖_μ = γ · ‖D^½ P_π D^−½‖₂ on the states μ visits.

For an episodic μ, P_πᵀη = η − h ≤ η, and Jensen's inequality then gives ‖P_π v‖_μ ≤ ‖v‖_μ, so κ ≤ γ:
with γ < 1 (Quiz 9) eq. 9.14 holds as written (1/(1−κ²) ≤ 1/(1−γ²) ≤ 1/(1−γ)). With γ = 1 (the random
walks) eq. 9.14's right side is infinite; the bound that applies is the κ one, finite when κ < 1 (the
1000-state walk), none when κ = 1 (the 19-state walk, which is periodic; a deterministic chain). `FixedPoints`
reports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qapprox.approximators.off_policy import _features, _model, projection_weights, ve
from qapprox.envs.finite import FiniteMDP


def on_policy_distribution(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """μ of an episodic task under `policy` (eq. 9.2-9.3), shape (|S⁺|,), 0 on terminal states.

    η solves (I − P_πᵀ) η = h on the non-terminal states S (h = mdp.start): the expected number of
    visits to each state in an episode. One linear system; a policy under which some state never
    reaches a terminal one leaves it singular and is refused. (Continuing tasks:
    off_policy.state_distribution.)
    """
    P_pi, _ = _model(mdp, policy)
    S = mdp.nonterminal
    try:
        eta = np.linalg.solve(np.eye(S.size) - P_pi[np.ix_(S, S)].T, mdp.start[S])
    except np.linalg.LinAlgError:
        raise ValueError("the on-policy distribution is not defined: under this policy some episode "
                         "never ends (eq. 9.2 has no finite solution)") from None
    mu = np.zeros(mdp.n_states)
    mu[S] = eta.clip(min=0.0)  # round-off below 0
    return mu / mu.sum()


def _mu(mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None) -> np.ndarray:
    return on_policy_distribution(mdp, policy) if mu is None else np.asarray(mu, dtype=np.float64)


def td_system(X: np.ndarray, mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of eq. 9.11: A = XᵀD(I − γP_π)X, b = XᵀD r_π; μ defaults to the on-policy distribution.

    A terminal S_{t+1} contributes x_{t+1} = 0 (its row of X is zero).
    """
    X = _features(X, mdp)
    P_pi, r_pi = _model(mdp, policy)
    XD = X.T * _mu(mdp, policy, mu)
    return XD @ (X - mdp.gamma * P_pi @ X), XD @ r_pi


def td_fixed_point(X: np.ndarray, mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None = None) -> np.ndarray:
    """w_TD = A⁻¹b (eq. 9.12). A singular A (features linearly dependent on the states μ visits: no
    unique fixed point) is refused with a one-line ValueError."""
    A, b = td_system(X, mdp, policy, mu)
    rank = np.linalg.matrix_rank(A)
    if rank < A.shape[0]:
        raise ValueError(f"A = XᵀD(I − γP_π)X has rank {rank} < d = {A.shape[0]}: the features are linearly "
                         f"dependent on the states μ visits, so the TD fixed point is not unique")
    return np.linalg.solve(A, b)


def mc_fixed_point(X: np.ndarray, mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None = None,
                   v_pi: np.ndarray | None = None) -> np.ndarray:
    """w_MC = (XᵀDX)⁻¹XᵀD v_π = argmin VE (off_policy.projection_weights): the μ-weighted projection of
    v_π. With rank-deficient X the pseudo-inverse gives the least-norm minimiser (every minimiser has
    the same v̂ = Πv_π and the same VE). v_π defaults to mdp.evaluate(policy)."""
    X = _features(X, mdp)
    v_pi = mdp.evaluate(policy)[0] if v_pi is None else np.asarray(v_pi, dtype=np.float64)
    return projection_weights(X, _mu(mdp, policy, mu)) @ v_pi


def contraction(mdp: FiniteMDP, policy: np.ndarray, mu: np.ndarray | None = None) -> float:
    """κ = ‖γP_π‖_μ = γ ‖D^½ P_π D^−½‖₂ over the states with μ(s) > 0 (no other state follows them).

    κ = γ exactly for the 19-state walk: v = 1 on the odd states has ‖P_π v‖_μ = ‖v‖_μ (the walk is periodic).
    """
    P_pi, _ = _model(mdp, policy)
    mu = _mu(mdp, policy, mu)
    visited = np.flatnonzero(mu > 0)
    root = np.sqrt(mu[visited])
    kappa = float(mdp.gamma * np.linalg.norm(root[:, None] * P_pi[np.ix_(visited, visited)] / root[None, :], 2))
    return mdp.gamma if kappa > mdp.gamma * (1 - 1e-12) else kappa  # κ ≤ γ; within round-off of γ is γ


@dataclass(frozen=True)
class FixedPoints:
    """Both fixed points of one (MDP, π, X), their errors and the bounds of VE(w_TD) (module docstring)."""

    mu: np.ndarray
    v_pi: np.ndarray
    w_mc: np.ndarray
    w_td: np.ndarray
    ve_mc: float        # min_w VE(w) = VE(w_MC)
    ve_td: float
    gamma: float
    kappa: float        # ‖γP_π‖_μ ≤ γ

    @property
    def rmsve_mc(self) -> float:
        return float(np.sqrt(self.ve_mc))

    @property
    def rmsve_td(self) -> float:
        return float(np.sqrt(self.ve_td))

    @property
    def bound_applies(self) -> bool:
        """Whether eq. 9.14 as written bounds VE(w_TD): γ < 1 (for γ = 1 its right side is infinite)."""
        return self.gamma < 1.0

    @property
    def bound(self) -> float | None:
        """Eq. 9.14's right side, 1/(1−γ) · min VE, where it applies; else None."""
        return self.ve_mc / (1.0 - self.gamma) if self.bound_applies else None

    @property
    def bound_kappa(self) -> float | None:
        """min VE / (1 − κ²), the bound that holds for any γ when κ < 1; else None."""
        return self.ve_mc / (1.0 - self.kappa**2) if self.kappa < 1.0 else None

    def summary(self) -> dict:
        """The JSON-ready numbers: w_mc, w_td (lists), rmsve_mc, rmsve_td, ve_mc, ve_td, the bounds."""
        return {"w_mc": self.w_mc.tolist(), "w_td": self.w_td.tolist(), "rmsve_mc": self.rmsve_mc,
                "rmsve_td": self.rmsve_td, "ve_mc": self.ve_mc, "ve_td": self.ve_td, "gamma": self.gamma,
                "bound_applies": self.bound_applies, "bound": self.bound, "kappa": self.kappa,
                "bound_kappa": self.bound_kappa,
                "bound_note": "bound = VE(w_MC)/(1−γ), eq. 9.14, needs γ < 1; bound_kappa = VE(w_MC)/(1−κ²), "
                              "κ = ‖γP_π‖_μ ≤ γ, holds whenever κ < 1 (episodic γ = 1 included)"}


def fixed_points(X: np.ndarray, mdp: FiniteMDP, policy: np.ndarray) -> FixedPoints:
    """w_MC and w_TD of features X under `policy` with the on-policy μ, v_π, VE of each and κ."""
    mu = on_policy_distribution(mdp, policy)
    v_pi = mdp.evaluate(policy)[0]
    w_mc, w_td = mc_fixed_point(X, mdp, policy, mu, v_pi), td_fixed_point(X, mdp, policy, mu)
    X = _features(X, mdp)
    return FixedPoints(mu, v_pi, w_mc, w_td, float(ve(w_mc, X, v_pi, mu)), float(ve(w_td, X, v_pi, mu)),
                       mdp.gamma, contraction(mdp, policy, mu))
