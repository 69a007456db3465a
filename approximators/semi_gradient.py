"""n-step semi-gradient TD and gradient Monte Carlo for a linear v̂ with dense features (S&B §9.3-9.4, §9.5),
batched over runs and configurations.

For every stored episode S_0, R_1, S_1, …, R_T, S_T and each τ = 0, 1, …, T − 1 in turn:

    G_{τ:τ+n} = Σ_{i=τ+1}^{min(τ+n, T)} γ^{i−τ−1} R_i  +  γ^n v̂(S_{τ+n}, w)   (the last term only if τ + n < T)  eq. 9.16
    w ← w + α [G_{τ:τ+n} − v̂(S_τ, w)] x(S_τ)                                    eq. 9.15, ∇v̂(S_τ, w) = x(S_τ)

n = 1 is semi-gradient TD(0) (§9.3's box, U_t = R_{t+1} + γ v̂(S_{t+1}, w)); n = ∞ (any n ≥ T) is gradient
Monte Carlo (§9.3's box, eq. 9.7 with U_t = G_t). The book makes update τ at time τ + n − 1, after updates
0..τ−1 and with the w they left; from stored episodes, iterating over τ directly gives the same weights and
takes T steps whatever n is. v̂(S_{τ+n}, w) is 0 at and beyond the terminal state (x(terminal) = 0).

The truncated sums Σ_n(τ) = Σ_{k=0}^{n−1} γ^k R_{τ+k+1} (rewards past T are 0) come from one backward pass:
Σ_n(τ) = R_{τ+1} + γ Σ_n(τ+1) − γ^n R_{τ+n+1}.

Rows: w has shape (configs, runs, d); n and alpha are one value or one per configuration (broadcast together);
features are one (|S⁺|, d) matrix for every configuration, or one per configuration (configs, |S⁺|, d), e.g.
different bases zero-padded to one d (`stack_features`). Every configuration learns from the same episodes of
each run. Python loops run over episodes and time steps only; rows whose episode has ended are masked.
`n_step_td_loop` is the same algorithm as a plain loop over configurations, runs, episodes and steps: the
reference the batched one is checked and timed against.
"""

from __future__ import annotations

import numpy as np

from qapprox.approximators.linear import v_hat
from qapprox.approximators.traces import EpisodeBatch
from qapprox.envs.validation import check_array, check_positive, check_unit_interval


def stack_features(matrices: list[np.ndarray]) -> np.ndarray:
    """Feature matrices (|S⁺|, d_c) zero-padded to (configs, |S⁺|, max d_c): the padding changes no v̂ and
    receives no update (its x_i is 0), so configuration c learns exactly as with its own matrix."""
    d = max(X.shape[-1] for X in matrices)
    stacked = np.zeros((len(matrices), matrices[0].shape[0], d))
    for c, X in enumerate(matrices):
        stacked[c, :, : X.shape[-1]] = X
    return stacked


def _configs(n, alpha) -> tuple[np.ndarray, np.ndarray]:
    """n (≥ 1, inf allowed) and alpha as (configs, 1) arrays, one pair per configuration row."""
    n = np.asarray(n, dtype=np.float64)
    check_array("n", np.where(n == np.inf, 1.0, n), 1.0)              # n = ∞ is gradient MC; else finite ≥ 1
    if np.any(n != np.floor(n)):
        raise ValueError(f"n must be whole numbers of steps (or inf), got {n.tolist()}")
    n, alpha = np.broadcast_arrays(n, check_positive("alpha", alpha))
    if n.ndim > 1:
        raise ValueError(f"n and alpha must be scalars or 1-D arrays, got shape {n.shape}")
    return n.reshape(-1, 1), alpha.reshape(-1, 1)


def _tables(batch: EpisodeBatch, features: np.ndarray, configs: int) -> np.ndarray:
    """The feature tables (C, pad + 1, d), C = 1 or configs, each with the zero row at `pad`."""
    if batch.action_values:
        raise ValueError("n_step_td predicts state values: give an EpisodeBatch of states (action_values=False)")
    features = np.asarray(features, dtype=np.float64)
    many = features.ndim == 3
    tables = np.stack([batch.feature_table(X) for X in (features if many else [features])])
    if many and tables.shape[0] != configs:
        raise ValueError(f"features hold {tables.shape[0]} matrices for {configs} configurations")
    return tables


def reward_sums(reward: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """Σ_m(τ) = Σ_{k=0}^{m−1} γ^k R_{τ+k+1} for each m (k,) and τ < T: reward (runs, T) holding R_{τ+1} at τ,
    0 past each episode's end → (k, runs, T)."""
    runs, T = reward.shape
    R = np.concatenate([reward, np.zeros((runs, 1))], axis=1)        # R_{T+1} = 0 (and every later one)
    late = np.minimum(np.arange(T)[None, :] + m[:, None], T)         # the index of R_{τ+m+1}
    gamma_m = (gamma ** m)[:, None]
    S = np.zeros((m.size, runs, T + 1))
    for tau in reversed(range(T)):
        S[:, :, tau] = R[:, tau] + gamma * S[:, :, tau + 1] - gamma_m * R[:, late[:, tau]].T
    return S[:, :, :T]


def n_step_td(
    batch: EpisodeBatch, features: np.ndarray, *, n: float | np.ndarray = 1, alpha: float | np.ndarray = 1e-4,
    w0: np.ndarray | None = None, gamma: float | None = None,
) -> np.ndarray:
    """n-step semi-gradient TD (eq. 9.15-9.16) from w0 (default 0); returns w after each episode,
    shape (episodes, configs, runs, d). n = np.inf is gradient Monte Carlo. gamma defaults to the MDP's."""
    gamma = float(check_unit_interval("gamma", batch.gamma if gamma is None else gamma))
    n, alpha = _configs(n, alpha)
    F = _tables(batch, features, n.shape[0])
    runs, episodes = batch.length.shape
    w = np.zeros((n.shape[0], runs, F.shape[-1]))
    if w0 is not None:
        w[...] = w0
    distinct, which = np.unique(n, return_inverse=True)              # Σ_n depends on n alone, not on α
    which = which.ravel()
    table = np.arange(F.shape[0])[:, None]                           # each configuration's own table (or the one)
    run = np.arange(runs)[None, :]
    history = np.empty((episodes, *w.shape))
    with np.errstate(over="ignore", invalid="ignore"):
        for e in range(episodes):
            index, length = batch.index[:, e], batch.length[:, e]
            T = int(length.max())
            m = np.minimum(distinct, T).astype(np.int64)              # n ≥ T never bootstraps: n = T is the same
            sums = reward_sums(batch.reward[:, e, :T], m, gamma).transpose(2, 0, 1).copy()  # (T, distinct n, runs)
            m_row, gamma_n = m[which, None], gamma ** m[which, None]  # (configs, 1)
            bootstraps = bool((m_row < T).any())                     # else every row is Monte Carlo here
            step_size = alpha * (np.arange(T)[:, None, None] < length)  # α at (τ, config, run); 0 once its episode ended
            for tau in range(T):
                x = F[:, index[:, tau]]                                       # x(S_τ): (1 or configs, runs, d)
                G = sums[tau].take(which, axis=0)                             # G_{τ:τ+n}, eq. 9.16 ...
                if bootstraps:                                                # ... + γ^n v̂(S_{τ+n}, w)
                    G = G + gamma_n * v_hat(w, F[table, index[run, np.minimum(tau + m_row, T)]])
                w += (step_size[tau] * (G - v_hat(w, x)))[..., None] * x   # eq. 9.15
            history[e] = w
    return history


def gradient_mc(batch: EpisodeBatch, features: np.ndarray, *, alpha: float | np.ndarray = 2e-5,
                w0: np.ndarray | None = None, gamma: float | None = None) -> np.ndarray:
    """Gradient Monte Carlo (eq. 9.7 with U_t = G_t): n_step_td with n = ∞."""
    return n_step_td(batch, features, n=np.inf, alpha=alpha, w0=w0, gamma=gamma)


def n_step_td_loop(batch: EpisodeBatch, X: np.ndarray, *, n: float, alpha: float, gamma: float | None = None
                   ) -> np.ndarray:
    """The same algorithm, one configuration, as a plain Python loop over runs, episodes and steps (the reference
    for tests and timing): returns w after each episode, shape (episodes, runs, d)."""
    gamma = batch.gamma if gamma is None else gamma
    F = batch.feature_table(X)
    runs, episodes = batch.length.shape
    history = np.empty((episodes, runs, F.shape[1]))
    for r in range(runs):
        w = np.zeros(F.shape[1])
        for e in range(episodes):
            T = int(batch.length[r, e])
            states, rewards = batch.index[r, e, : T + 1], batch.reward[r, e, :T]
            returns = [0.0] * (T + 1)                                  # G_t = R_{t+1} + γ G_{t+1}, G_T = 0
            for t in reversed(range(T)):
                returns[t] = rewards[t] + gamma * returns[t + 1]
            for tau in range(T):
                end = int(min(tau + n, T))
                G = returns[tau] - gamma ** (end - tau) * returns[end]   # Σ_{i=τ+1}^{end} γ^{i−τ−1} R_i
                if end < T:
                    G += gamma**n * (w @ F[states[end]])
                w = w + alpha * (G - w @ F[states[tau]]) * F[states[tau]]
            history[e, r] = w
    return history
