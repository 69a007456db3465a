"""Monte Carlo: returns G_t, and linear regression of returns (Quiz 9, questions 4 and 5).

G_t = R_{t+1} + γ R_{t+2} + γ² R_{t+3} + … = Σ_k γ^k R_{t+k+1}.
Pairs ⟨x(S_t), G_t⟩ collected under π form a regression data set with E[G_t | S_t = s] = v_π(s),
so a least-squares fit of wᵀx(s) estimates v_π; pairs ⟨x(S_t, A_t), G_t⟩ estimate q_π. With
one-hot features the least-squares fit is the average return of each state (or state-action).
Episodes from many runs may be pooled: the list of episodes is all that is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qapprox.envs.validation import (
    as_float, check_choice, check_float, check_int, check_positive, check_seed, check_unit_interval,
)


def returns(rewards: np.ndarray, gamma: float, lengths: np.ndarray | None = None,
            bootstrap: float | np.ndarray = 0.0) -> np.ndarray:
    """G_t = R_{t+1} + γ G_{t+1} from G_T = bootstrap, for consecutive episodes stored in one flat array.

    rewards holds R_1..R_T of each episode in turn; lengths the T of each (default: one episode).
    bootstrap is G_T of each episode (one value for all, or one each): 0 after a termination, an
    estimate of the unseen tail's value (e.g. max_a q̂(S_T, a)) after a time-limit truncation.
    Vectorised backward: all last steps first, then every step one before its episode's end, …
    """
    R = np.asarray(rewards, dtype=np.float64)
    gamma = float(check_unit_interval("gamma", gamma))
    lengths = np.array([R.size]) if lengths is None else np.asarray(lengths, dtype=int)
    if R.ndim != 1 or lengths.sum() != R.size or np.any(lengths < 1):
        raise ValueError(f"episode lengths sum to {lengths.sum()} but there are {R.size} rewards (each length must be ≥ 1)")
    to_end = np.repeat(np.cumsum(lengths), lengths) - 1 - np.arange(R.size)  # steps to the episode's end
    order = np.argsort(to_end, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(to_end))])
    G = np.empty_like(R)
    last = order[: bounds[1]]
    G[last] = R[last] + gamma * np.broadcast_to(np.asarray(bootstrap, dtype=np.float64), lengths.shape)  # R_T + γ G_T
    for lo, hi in zip(bounds[1:-1], bounds[2:]):
        i = order[lo:hi]
        G[i] = R[i] + gamma * G[i + 1]                                       # G_t = R_{t+1} + γ G_{t+1}
    return G


def regression_data(
    episodes: list, features: np.ndarray, gamma: float, *, action_values: bool = False, first_visit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The training set (X, G): rows x(S_t) (or x(S_t, A_t)) with targets G_t, from every episode.

    episodes: as FiniteMDP.episodes returns them, (S_0..S_{T−1}, A_0..A_{T−1}, R_1..R_T) each.
    features: (|S⁺|, d) for v, (|S⁺|, |A|, d) for q. first_visit keeps only the first occurrence
    of each state (state-action pair) in an episode; otherwise every visit counts.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != (3 if action_values else 2):
        kind = "(|S⁺|, |A|, d) for action values" if action_values else "(|S⁺|, d) for state values"
        raise ValueError(f"features have shape {features.shape}; expected {kind}")
    if len(episodes) == 0:
        raise ValueError("no episodes: regression of returns needs at least one")
    lengths = np.array([len(S) for S, _, _ in episodes])
    S, A, R = (np.concatenate([episode[i] for episode in episodes]) for i in range(3))
    if S.max() >= features.shape[0] or (action_values and A.max() >= features.shape[1]):
        raise ValueError(f"episodes visit state {S.max()} / action {A.max()} beyond features of shape {features.shape}")
    G = returns(R, gamma, lengths)
    keep = np.arange(S.size)
    if first_visit:
        key = S * features.shape[1] + A if action_values else S
        n_keys = features.shape[0] * (features.shape[1] if action_values else 1)
        episode = np.repeat(np.arange(len(episodes)), lengths)
        keep = np.sort(np.unique(episode * n_keys + key, return_index=True)[1])  # first index of each key
    X = features[S[keep], A[keep]] if action_values else features[S[keep]]
    return X, G[keep]


# ------------------------------------------------------------ memory of a batch of episodes
MAX_STEPS = 100_000       # where FiniteMDP.episodes cuts an episode
EPISODE_OBJECT_BYTES = 400  # the Python objects of one stored episode: a tuple of three array views


def episode_lengths(mdp, pi: np.ndarray, n: int, max_steps: int = MAX_STEPS) -> tuple[float, int]:
    """(E[T], about the longest of n episodes) under π, both at most max_steps.

    E[T] = start · (I − Q)⁻¹ 1 with Q = P_π on the non-terminal states (inf if some episode never
    ends); the longest of n is taken as E[T]·ln n, a geometric tail (on the random walks and Quiz 9
    it is 15–40% above the longest actually sampled).
    """
    pi = mdp.check_policy(pi)
    idx = mdp.nonterminal
    Q = np.einsum("sa,sat->st", pi, mdp.P)[np.ix_(idx, idx)]
    try:
        with np.errstate(all="ignore"):
            mean = float(mdp.start[idx] @ np.linalg.solve(np.eye(idx.size) - Q, np.ones(idx.size)))
    except np.linalg.LinAlgError:
        mean = math.inf
    mean = float(max_steps) if not (math.isfinite(mean) and 1 <= mean <= max_steps) else mean
    return mean, min(max_steps, math.ceil(mean * max(1.0, math.log(max(n, 1)))))


def episodes_bytes(mdp, pi: np.ndarray, n: int, max_steps: int = MAX_STEPS) -> tuple[float, float]:
    """(peak, kept): the memory FiniteMDP.episodes(pi, n) needs while it samples, and what its list holds.

    It steps all n episodes in lockstep until the longest ends, keeping S_t, A_t, R_{t+1} of every
    episode at every step (24 B) and stacking them at the end (24 B more); each step's temporaries
    are about 9 B per episode and state; the list keeps the stacked arrays and a tuple per episode.
    """
    _, longest = episode_lengths(mdp, pi, n, max_steps)
    step = 9 * mdp.n_states + 16 * mdp.n_actions + 64
    return as_float(n * (48 * longest + step + EPISODE_OBJECT_BYTES)), as_float(n * (24 * longest + EPISODE_OBJECT_BYTES))


def regression_bytes(mdp, pi: np.ndarray, episodes: int, d: int, max_steps: int = MAX_STEPS) -> float:
    """Peak memory of sampling `episodes` episodes under π, then building and fitting a training set
    ⟨x, G_t⟩ of every visit on d features (d: the features of every training set held at once).

    The set has about episodes·E[T] rows of d float64; building it and a least-squares fit each
    copy it once more (regression_data gathers the rows, lstsq copies X).
    """
    mean, _ = episode_lengths(mdp, pi, episodes, max_steps)
    sampling, kept = episodes_bytes(mdp, pi, episodes, max_steps)
    return max(sampling, kept + as_float(episodes) * mean * (24 * d + 100))


REGRESSION_METHODS = ("lstsq", "sgd", "minibatch")


@dataclass
class LinearRegression:
    """ŷ = wᵀx fitted to J(w) = (1/m) Σ_i (wᵀx_i − y_i)² + (ridge/m) ‖w‖², no intercept.

    lstsq      closed form: (XᵀX + ridge·I) w = Xᵀy (minimum-norm solution when ridge = 0)
    sgd        w := w − α ∇L^(i)(w) on one observation at a time, shuffled every epoch
    minibatch  w := w − α ∇(1/s) Σ_{i ∈ batch} L^(i)(w) on shuffled batches of s = batch_size
    (the lecture's squared-error loss L^(i) = (ŷ^(i) − y^(i))²; add a constant feature for an intercept)
    """

    method: str = "lstsq"
    ridge: float = 0.0
    alpha: float = 0.01
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    w: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_choice("method", self.method, REGRESSION_METHODS)
        check_float("ridge", self.ridge, 0.0)
        check_positive("alpha", self.alpha)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_seed("seed", self.seed)

    def fit(self, X: np.ndarray, G: np.ndarray) -> LinearRegression:
        X, G = np.asarray(X, dtype=np.float64), np.asarray(G, dtype=np.float64)
        if X.ndim != 2 or G.shape != X.shape[:1] or X.shape[0] == 0:
            raise ValueError(f"fit needs X of shape (m, d) and G of shape (m,) with m ≥ 1, got {X.shape} and {G.shape}")
        m, d = X.shape
        if self.method == "lstsq":
            if self.ridge == 0:
                self.w = np.linalg.lstsq(X, G, rcond=None)[0]
            else:
                self.w = np.linalg.solve(X.T @ X + self.ridge * np.eye(d), X.T @ G)
            return self
        batch = 1 if self.method == "sgd" else self.batch_size
        rng = np.random.default_rng(self.seed)
        w = np.zeros(d)
        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(m)
            with np.errstate(over="ignore", invalid="ignore"):
                for start in range(0, m, batch):
                    i = order[start : start + batch]
                    error = X[i] @ w - G[i]                                   # ŷ − y on the batch
                    w -= self.alpha * (2 * X[i].T @ error / i.size + 2 * self.ridge / m * w)  # w := w − α∇J_batch
            if not np.isfinite(w).all():
                raise ValueError(f"{self.method} diverged in epoch {epoch}: w is no longer finite; "
                                 f"alpha={self.alpha:g} is too large for these features and returns")
        self.w = w
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.w is None:
            raise ValueError("predict before fit: call fit(X, G) first")
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] != self.w.size:
            raise ValueError(f"feature vector has size {X.shape[-1]}; the model was fitted with d={self.w.size}")
        return X @ self.w
