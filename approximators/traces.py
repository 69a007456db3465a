"""Semi-gradient TD(λ) with eligibility traces for linear v̂ and q̂ (S&B chapter 12), batched over runs.

One learner, `TDLambda`, with a trace parameter (z_{−1} = 0 at the start of every episode):

    δ_t = R_{t+1} + γ v̂(S_{t+1}, w_t) − v̂(S_t, w_t)                          TD error, §12.2
    accumulating   z_t = γλ z_{t−1} + x_t                                      §12.2  (∇v̂ = x)
    replacing      z_{i,t} = x_{i,t} where x_{i,t} ≠ 0, else γλ z_{i,t−1}      §12.5  (binary x)
    dutch          z_t = γλ z_{t−1} + (1 − αγλ z_{t−1}ᵀx_t) x_t                §12.5
    w_{t+1} = w_t + α δ_t z_t
    true-online    dutch trace, w_{t+1} = w_t + α(δ_t + V − V_old) z_t − α(V − V_old) x_t,
                   V = wᵀx_t, V_old ← wᵀx_{t+1} after each step                 §12.5

TD(0) is λ = 0. With offline=True the increments α δ_t z_t are summed over the episode and
applied at its end (w held fixed during the episode): with accumulating traces this is exactly
the offline λ-return algorithm (§12.1, forward view) with its increments summed the same way.
`td_lambda` runs that algorithm too, as S&B state it: updates applied one after another at the
episode's end.

Drivers:
    td_lambda      prediction from stored episodes; with x(s, a) features and action-value
                   episodes it is SARSA(λ) policy evaluation under the policy that made them.
    sarsa_lambda   SARSA(λ) control (§12.7), ε-greedy in q̂, on-line against a FiniteMDP.

Independent runs — and, in a sweep, (α, λ) configurations — are rows of one array: w has shape
(configs, runs, d). Python loops run only over episodes and time steps; a row whose episode
has ended is masked until every row has finished that episode. Divergent rows (large α) become
inf/nan without warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qapprox.approximators.features import check_features
from qapprox.approximators.linear import q_hat, v_hat
from qapprox.approximators.monte_carlo import MAX_STEPS, episode_lengths, episodes_bytes
from qapprox.approximators.policies import epsilon_greedy
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import as_float, check_choice, check_int, check_positive, check_unit_interval

TRACES = ("accumulating", "replacing", "dutch", "true-online")
METHODS = (*TRACES, "offline-lambda-return")


def check_trace(trace: str, allowed: tuple[str, ...] = TRACES, features: np.ndarray | None = None) -> str:
    """trace, if it is one of allowed (and, for a replacing trace, the features are binary)."""
    check_choice("trace", trace, allowed)
    if trace == "replacing" and features is not None and not np.isin(features, (0.0, 1.0)).all():
        raise ValueError("trace='replacing' needs binary features (every x_i in {0, 1})")
    return trace


def check_offline(trace: str, offline: bool) -> None:
    """Offline TD(λ) sums each episode's increments with w held fixed: no true-online trace."""
    if offline and trace == "true-online":
        raise ValueError("offline=True needs an accumulating, replacing or dutch trace, not trace='true-online'")


# ------------------------------------------------------------------------ data
@dataclass(frozen=True)
class EpisodeBatch:
    """Episodes of many runs as padded arrays of feature-table rows, (runs, episodes, time).

    index[n, e, t]   the feature-table row of S_t (state values) or of (S_t, A_t): s·|A| + a;
                     index[n, e, T] and every padded step point to the zero row `pad`
    reward[n, e, t]  R_{t+1} (0 where padded)
    length[n, e]     T, the episode's number of steps
    """

    index: np.ndarray
    reward: np.ndarray
    length: np.ndarray
    n_states: int
    n_actions: int
    action_values: bool
    gamma: float

    @property
    def pad(self) -> int:
        """Index of the zero row appended to the feature table (x of a terminal, and padding)."""
        return self.n_states * (self.n_actions if self.action_values else 1)

    @classmethod
    def from_episodes(
        cls, mdp: FiniteMDP, episodes: list, runs: int, *, action_values: bool = False
    ) -> EpisodeBatch:
        """Run n gets episodes[n·E : (n+1)·E] of a list as FiniteMDP.episodes returns it."""
        runs = check_int("runs", runs, 1)
        if len(episodes) == 0 or len(episodes) % runs:
            raise ValueError(f"{len(episodes)} episodes cannot be split into runs={runs} runs of equal size")
        length = np.array([len(S) for S, _, _ in episodes])
        S, A, R = (np.concatenate([episode[i] for episode in episodes]) for i in range(3))
        key = S * mdp.n_actions + A if action_values else S
        # Flat step i belongs to episode m at time t: scatter into (episodes, T_max + 1).
        m = np.repeat(np.arange(len(episodes)), length)
        t = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        pad = mdp.n_states * (mdp.n_actions if action_values else 1)
        index = np.full((len(episodes), length.max() + 1), pad)
        reward = np.zeros((len(episodes), length.max()))
        index[m, t], reward[m, t] = key, R
        E = len(episodes) // runs
        return cls(
            index.reshape(runs, E, -1), reward.reshape(runs, E, -1), length.reshape(runs, E),
            mdp.n_states, mdp.n_actions, action_values, mdp.gamma,
        )

    @classmethod
    def sample(
        cls, mdp: FiniteMDP, pi: np.ndarray, runs: int, episodes: int, rng: np.random.Generator,
        *, action_values: bool = False,
    ) -> EpisodeBatch:
        """runs × episodes episodes under π, simulated in lockstep."""
        runs, episodes = check_int("runs", runs, 1), check_int("episodes", episodes, 1)
        return cls.from_episodes(mdp, mdp.episodes(pi, runs * episodes, rng), runs, action_values=action_values)

    def feature_table(self, features: np.ndarray) -> np.ndarray:
        """Rows x(s) (or x(s, a) at row s·|A| + a), then a zero row at `pad`: shape (pad + 1, d)."""
        F = check_features(features, self.n_states, self.n_actions if self.action_values else None)
        F = F.reshape(self.pad, F.shape[-1])
        return np.vstack([F, np.zeros((1, F.shape[-1]))])


def td_lambda_bytes(mdp: FiniteMDP, pi: np.ndarray, runs: int, episodes: int, configs: int, d: int,
                    max_steps: int = MAX_STEPS) -> float:
    """Peak memory of EpisodeBatch.sample(mdp, pi, runs, episodes) and then td_lambda with `configs`
    (α, λ) on d features — what to check before the first array of runs × episodes is allocated.

    Sampling: FiniteMDP.episodes for all runs·episodes episodes (monte_carlo.episodes_bytes), then
    the padded batch (index and reward, 16 B per episode and step of the longest) beside them.
    Learning: the batch, the weights after every episode (episodes × configs × runs × d float64) and
    as much again twice for their RMS errors, and the learner's w, z, Δw, buffer and gathered x_t.
    """
    n = as_float(runs) * as_float(episodes)
    mean, longest = episode_lengths(mdp, pi, runs * episodes, max_steps)
    sampling, kept = episodes_bytes(mdp, pi, runs * episodes, max_steps)
    batch = n * (longest + 1) * 16
    building = kept + batch + n * mean * 64                   # + the flat S, A, R, keys and positions
    rows = as_float(configs) * as_float(runs) * d * 8         # one float64 weight vector per (config, run)
    return max(sampling, building, batch + 3 * as_float(episodes) * rows + 8 * rows)


# --------------------------------------------------------------------- learner
class TDLambda:
    """Semi-gradient TD(λ) state for a batch of rows: w, z, V_old (true online), summed Δw (offline).

    w0 has shape (*rows, d); alpha and lam broadcast to the rows shape (one value per row allowed).
    """

    def __init__(
        self, w0: np.ndarray, *, trace: str = "accumulating", alpha: float | np.ndarray = 0.4,
        lam: float | np.ndarray = 0.8, gamma: float = 1.0, offline: bool = False,
    ) -> None:
        self.trace = check_trace(trace)
        check_offline(trace, offline)
        self.w = np.array(w0, dtype=np.float64)
        rows = self.w.shape[:-1]
        self.alpha, self.lam = check_positive("alpha", alpha), check_unit_interval("lam", lam)
        self.gamma = float(check_unit_interval("gamma", gamma))
        for name, value in (("alpha", self.alpha), ("lam", self.lam)):
            if np.broadcast_shapes(value.shape, rows) != rows:
                raise ValueError(f"{name} has shape {value.shape}, which does not broadcast to the rows {rows}")
        self.offline = offline
        self.z = np.zeros_like(self.w)
        self.v_old = np.zeros(rows)
        self.dw = np.zeros_like(self.w)
        self._buffer = np.empty_like(self.w)

    def start_episode(self) -> None:
        """z_{−1} = 0, V_old = 0."""
        self.z[...] = 0.0
        self.v_old[...] = 0.0

    def step(self, x: np.ndarray, x_next: np.ndarray, reward: np.ndarray, alive: np.ndarray | None = None) -> np.ndarray:
        """One transition (x_t, R_{t+1}, x_{t+1}) for every row; returns δ_t.

        x_{t+1} must be the zero vector when S_{t+1} is terminal. Rows not alive keep w and V_old
        (their trace is cleared at the next episode). Arrays are updated in place: at 10⁵ rows
        the temporaries would cost more than the arithmetic.
        """
        alpha, gl = self.alpha, self.gamma * self.lam
        z, buffer = self.z, self._buffer
        v, v_next = v_hat(self.w, x), v_hat(self.w, x_next)          # V = wᵀx_t,  V' = wᵀx_{t+1}
        delta = reward + self.gamma * v_next - v                      # δ_t = R + γV' − V
        live = 1.0 if alive is None else np.asarray(alive, dtype=np.float64)
        dutch = self.trace in ("dutch", "true-online")
        scale = 1 - alpha * gl * v_hat(z, x) if dutch else None      # 1 − αγλ z_{t−1}ᵀx_t
        z *= gl[..., None]                                            # z ← γλz, then add x_t:
        if self.trace == "accumulating":
            z += x                                                    #   z = γλz + x
        elif self.trace == "replacing":
            np.copyto(z, np.broadcast_to(x, z.shape), where=x != 0)   #   z_i = x_i where x_i ≠ 0
        else:
            z += np.multiply(scale[..., None], x, out=buffer)         #   z = γλz + (1 − αγλ zᵀx) x
        dw = self.dw if self.offline else self.w
        if self.trace == "true-online":
            dv = v - self.v_old                                       # V − V_old
            dw += np.multiply((alpha * (delta + dv) * live)[..., None], z, out=buffer)
            dw -= np.multiply((alpha * dv * live)[..., None], x, out=buffer)
            self.v_old = np.where(live > 0, v_next, self.v_old)       # V_old ← V'
        else:
            dw += np.multiply((alpha * delta * live)[..., None], z, out=buffer)  # α δ z
        return delta

    def end_episode(self) -> None:
        """Offline: w ← w + Σ_t α δ_t z_t, the increments summed over the episode."""
        if self.offline:
            self.w += self.dw
            self.dw[...] = 0.0


def offline_lambda_return(
    w: np.ndarray, F: np.ndarray, index: np.ndarray, reward: np.ndarray,
    alpha: np.ndarray, lam: np.ndarray, gamma: float, *, summed: bool = False,
) -> np.ndarray:
    """The offline λ-return algorithm (§12.1) on one episode per row; returns the weights after it.

    Targets from the weights w the episode was run with, backward from G^λ_T = 0:
        G^λ_t = R_{t+1} + γ[(1 − λ) v̂(S_{t+1}, w) + λ G^λ_{t+1}]
    then, at the episode's end, the updates w_{t+1} = w_t + α[G^λ_t − v̂(S_t, w_t)] x(S_t), t = 0..T−1.
    summed=True holds w fixed in v̂(S_t, w) too and adds the increments up: that is exactly offline
    TD(λ) with accumulating traces. index (runs, T + 1) and reward (runs, T) are padded with the
    zero row and 0, so padded steps change nothing.
    """
    G = np.zeros((reward.shape[1] + 1, *np.broadcast_shapes(w.shape[:-1], reward.shape[:1])))
    for t in reversed(range(reward.shape[1])):
        G[t] = reward[:, t] + gamma * ((1 - lam) * v_hat(w, F[index[:, t + 1]]) + lam * G[t + 1])
    w_t = np.array(np.broadcast_to(w, (*G.shape[1:], w.shape[-1])))
    for t in range(reward.shape[1]):
        x = F[index[:, t]]
        w_t += (alpha * (G[t] - v_hat(w if summed else w_t, x)))[..., None] * x
    return w_t


# --------------------------------------------------------------------- drivers
def _configs(alpha: float | np.ndarray, lam: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha, lam as (configs, 1) arrays: one (α, λ) pair per configuration row."""
    alpha, lam = np.broadcast_arrays(check_positive("alpha", alpha), check_unit_interval("lam", lam))
    if alpha.ndim > 1:
        raise ValueError(f"alpha and lam must be scalars or 1-D arrays, got shape {alpha.shape}")
    return alpha.reshape(-1, 1), lam.reshape(-1, 1)


def td_lambda(
    batch: EpisodeBatch, features: np.ndarray, *, trace: str = "accumulating",
    alpha: float | np.ndarray = 0.4, lam: float | np.ndarray = 0.8, gamma: float | None = None,
    offline: bool = False, on_episode: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """TD(λ) prediction from w = 0; returns w after each episode, shape (episodes, configs, runs, d).

    alpha and lam are scalars or 1-D arrays (one (α, λ) per configuration, broadcast together);
    every configuration learns from the same episodes of each run. trace is one of METHODS.
    offline=True sums each episode's increments with w held fixed and applies them at its end
    (for the λ-return algorithm: instead of applying them one after another).
    gamma defaults to the MDP's. on_episode(e, w) is called after each episode.
    """
    check_trace(trace, METHODS)
    check_offline(trace, offline)
    gamma = float(check_unit_interval("gamma", batch.gamma if gamma is None else gamma))
    alpha, lam = _configs(alpha, lam)
    F = batch.feature_table(features)
    check_trace(trace, METHODS, F)
    runs, episodes = batch.length.shape
    w = np.zeros((alpha.shape[0], runs, F.shape[1]))
    learner = None if trace == "offline-lambda-return" else TDLambda(
        w, trace=trace, alpha=alpha, lam=lam, gamma=gamma, offline=offline)
    history = np.empty((episodes, *w.shape))
    with np.errstate(over="ignore", invalid="ignore"):
        for e in range(episodes):
            index, reward, length = batch.index[:, e], batch.reward[:, e], batch.length[:, e]
            T = int(length.max())
            if learner is None:
                w = offline_lambda_return(w, F, index[:, : T + 1], reward[:, :T], alpha, lam, gamma, summed=offline)
            else:
                learner.start_episode()
                for t in range(T):
                    learner.step(F[index[:, t]], F[index[:, t + 1]], reward[:, t], alive=t < length)
                learner.end_episode()
                w = learner.w
            history[e] = w
            if on_episode is not None:
                on_episode(e, history[e])
    return history


@dataclass(frozen=True)
class ControlResult:
    """SARSA(λ) control: w after each episode (episodes, configs, runs, d), its length T and return G_0."""

    w: np.ndarray
    length: np.ndarray
    G: np.ndarray


def sarsa_lambda(
    mdp: FiniteMDP, features: np.ndarray, *, episodes: int, runs: int = 1, trace: str = "accumulating",
    alpha: float | np.ndarray = 0.1, lam: float | np.ndarray = 0.8, epsilon: float = 0.1,
    gamma: float | None = None, rng: np.random.Generator, max_steps: int = 100_000,
) -> ControlResult:
    """SARSA(λ) control from w = 0 (§12.7): TD(λ) on q̂(s, a, w) = wᵀx(s, a), acting ε-greedily in q̂.

    δ_t = R_{t+1} + γ q̂(S_{t+1}, A_{t+1}, w) − q̂(S_t, A_t, w), A_{t+1} chosen before the update.
    features: x(s, a), shape (|S⁺|, |A|, d). Episodes longer than max_steps are cut there.
    """
    X_sa = check_features(features, mdp.n_states, mdp.n_actions)
    check_trace(trace, TRACES, X_sa)
    epsilon = float(check_unit_interval("epsilon", epsilon))
    gamma = float(check_unit_interval("gamma", mdp.gamma if gamma is None else gamma))
    episodes, runs = check_int("episodes", episodes, 1), check_int("runs", runs, 1)
    max_steps = check_int("max_steps", max_steps, 1)
    alpha, lam = _configs(alpha, lam)
    rows = (alpha.shape[0], runs)
    learner = TDLambda(np.zeros((*rows, X_sa.shape[-1])), trace=trace, alpha=alpha, lam=lam, gamma=gamma)
    history = np.empty((episodes, *learner.w.shape))
    lengths, returns = np.zeros((episodes, *rows), dtype=int), np.zeros((episodes, *rows))

    def policy(s: np.ndarray) -> np.ndarray:
        q = q_hat(learner.w[..., None, :], X_sa[s])  # q̂(s, ·, w)
        return epsilon_greedy(q, epsilon, rng, random_ties=True)

    with np.errstate(over="ignore", invalid="ignore"):
        for e in range(episodes):
            s = mdp.reset(rows[0] * rows[1], rng).reshape(rows)
            a = policy(s)
            alive, discount = np.ones(rows, dtype=bool), 1.0
            learner.start_episode()
            for _ in range(max_steps):
                s_next, reward, done = (v.reshape(rows) for v in mdp.step(s.ravel(), a.ravel(), rng))
                a_next = policy(s_next)
                x_next = np.where(done[..., None], 0.0, X_sa[s_next, a_next])  # q̂(terminal, ·) = 0
                learner.step(X_sa[s, a], x_next, reward, alive)
                returns[e] += alive * discount * reward
                lengths[e] += alive
                discount *= gamma
                alive &= ~done
                if not alive.any():
                    break
                s, a = np.where(alive, s_next, s), np.where(alive, a_next, a)
            history[e] = learner.w
    return ControlResult(history, lengths, returns)
