"""Control with tile coding on Mountain Car (S&B §10.1, §10.2, §12.7), batched over runs and configurations.

    q̂(s, a, w) = Σ_t w[i_t(s, a)],   ∇q̂(s, a, w) = x(s, a) ∈ {0, 1}^d        (TileCoder.active_sa's indices)

n-step semi-gradient SARSA (§10.2, boxed algorithm; n = 1 is episodic semi-gradient SARSA, §10.1, eq. 10.1):

    G_{τ:τ+n} = Σ_{i=τ+1}^{min(τ+n, T)} γ^{i−τ−1} R_i  (+ γ^n q̂(S_{τ+n}, A_{τ+n}, w) if τ + n < T)       (10.4)
    w ← w + α [G_{τ:τ+n} − q̂(S_τ, A_τ, w)] ∇q̂(S_τ, A_τ, w)                                             (10.5)

SARSA(λ) with binary features (§12.7, boxed algorithm), each step of an episode, from z = 0:

    δ ← R − Σ_{i∈F(S,A)} w_i;   z_i ← z_i + 1 (accumulating) or z_i ← 1 (replacing) for i ∈ F(S, A)
    S' terminal: w ← w + αδz, next episode;  else A' ~ ε-greedy(q̂(S', ·, w)), δ ← δ + γ Σ_{i∈F(S',A')} w_i,
    w ← w + αδz,  z ← γλz

(the boxed algorithm leaves the traces of the other actions of S alone: no clearing, unlike the first edition).
`alpha` is the book's α: each active weight moves by α·(error), so q̂(S, A) moves by n_tilings · α · (error) —
the book's α = 0.5/8 with 8 tilings moves q̂(S, A) half way to its target.

Actions are ε-greedy in q̂ (approximators.policies.epsilon_greedy, ties at random), ε = 0 by default as in the
book's runs: w = 0 is optimistic (every reward is −1) and does the exploring. An episode cut by a time limit
(max_episode_steps, not the book's task) bootstraps from v̄(S_T) = Σ_a π(a|S_T) q̂(S_T, a, w), taken at the cut.

Rows are (configuration, run) pairs — w has shape (rows, |A|·size) — stepping in lockstep on one
MountainCarVectorEnv; each row runs through its own episodes (the env restarts a finished car) and is frozen
after `episodes` of them, until every row has finished. Row (c, r) is seeded with seed + r in every configuration
(its car and its own stream of tie-breaks, RowGenerator), so a row's episodes do not depend on the other rows:
a batch gives the runs it would give one at a time. Frozen rows leave the batch: whenever the rows still learning
fall to at most half of the rows stepped, only they are kept (their w, the learner's windows or traces, cars and
random streams; origin[k] is kept row k's row of the result), so there are at most log2(rows) compactions, each
about one step's work, and the steps stop when the slowest rows finish rather than the whole batch being carried.
A frozen car no longer meets new tiles, so the coder may number the later tiles in another order than without
compaction: the same q̂ and steps (w permuted), exactly so while the table has no collisions. Dense operations on w and z run over the tiles met so far
(the coder numbers tiles in the order it meets them), which is exact: the other weights and traces are 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.approximators.policies import epsilon_greedy, epsilon_greedy_probabilities
from qapprox.approximators.tile_coding import TileCoder
from qapprox.approximators.traces import check_trace
from qapprox.envs.mountain_car import MountainCarVectorEnv
from qapprox.envs.validation import check_int, check_positive, check_seed, check_unit_interval

N_ACTIONS = 3
LOW, HIGH = (-1.2, -0.07), (0.6, 0.07)  # position × velocity, the box the tilings cover
_GOLDEN, _SALT = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03)


def mountain_car_coder(tilings: int = 8, tiles: int = 8, size: int = 4096) -> TileCoder:
    """The book's coding (§10.1): `tilings` asymmetrically offset tilings of tiles × tiles over position × velocity."""
    return TileCoder(tilings, tiles, low=LOW, high=HIGH, size=size)


# ------------------------------------------------------------------ random numbers, one stream per row
def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea and Flood 2014) on uint64 arrays."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53  # uniform in [0, 1)


class RowGenerator:
    """One SplitMix64 stream per row, drawn for many rows at once with the two methods of np.random.Generator that
    epsilon_greedy uses. random(shape) gives row k the next prod(shape[1:]) numbers of its own stream;
    integers(high, size) reads a second stream at the row's current position without advancing it (whether
    epsilon_greedy asks for random actions depends on the other rows of the call). rows(mask) is a view on some
    rows that advances only theirs: a row's numbers depend on its own history alone; keep(mask) a generator of those
    rows' streams alone, where they are."""

    def __init__(self, keys: np.ndarray, counters: np.ndarray, index: np.ndarray) -> None:
        self.keys, self.counters, self.index = keys, counters, index

    @classmethod
    def from_seeds(cls, seeds: Sequence[int]) -> RowGenerator:
        keys = np.array([np.random.SeedSequence(check_seed("seed", s), spawn_key=(1,)).generate_state(1, np.uint64)[0]
                         for s in seeds], dtype=np.uint64)
        return cls(keys, np.zeros(len(keys), dtype=np.uint64), np.arange(len(keys)))

    def rows(self, mask: np.ndarray) -> RowGenerator:
        return RowGenerator(self.keys, self.counters, self.index[mask])

    def keep(self, mask: np.ndarray) -> RowGenerator:
        index = self.index[mask]
        return RowGenerator(self.keys[index], self.counters[index], np.arange(index.size))

    def random(self, shape) -> np.ndarray:
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        if not shape or shape[0] != self.index.size:
            raise ValueError(f"a draw for {self.index.size} rows needs a shape ({self.index.size}, ...), got {shape}")
        k = math.prod(shape[1:])
        position = self.counters[self.index][:, None] + np.arange(1, k + 1, dtype=np.uint64)
        self.counters[self.index] += np.uint64(k)
        return _unit(_mix(self.keys[self.index][:, None] + position * _GOLDEN)).reshape(shape)

    def integers(self, high: int, size) -> np.ndarray:
        u = _unit(_mix((self.keys[self.index] ^ _SALT) + self.counters[self.index] * _GOLDEN))
        return np.floor(u * high).astype(np.int64).reshape(size)


# ------------------------------------------------------------------ the learners, on index arrays
def _q(w: np.ndarray, rows: np.ndarray, i: np.ndarray) -> np.ndarray:
    """q̂ = Σ_t w[row, i_t] for each row (i: (rows, tilings))."""
    return w[rows[:, None], i].sum(-1)


class NStepSarsa:
    """n-step semi-gradient SARSA (eq. 10.4–10.5) for a batch of rows: w (rows, d), n and alpha per row.
    Ring buffers hold i(S_t, A_t) and R_t for the last n + 1 steps of every row's episode."""

    def __init__(self, w: np.ndarray, alpha: np.ndarray, n: np.ndarray, gamma: float, tilings: int) -> None:
        self.w, self.alpha, self.n, self.gamma = w, alpha, n, gamma
        rows = w.shape[0]
        self.rows, self.span = np.arange(rows), int(n.max()) + 1
        self.i = np.zeros((rows, self.span, tilings), dtype=np.int64)  # i(S_t, A_t) at t mod span
        self.R = np.zeros((rows, self.span))                           # R_t at t mod span
        self.t = np.zeros(rows, dtype=np.int64)

    def start(self, mask: np.ndarray, i0: np.ndarray) -> None:
        """A new episode for the rows in mask: t = 0, i(S_0, A_0) stored."""
        self.t[mask], self.i[mask, 0] = 0, i0

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows in mask, with their weights and windows (span stays: t mod span must not move)."""
        self.w, self.alpha, self.n, self.i, self.R, self.t = (
            v[mask] for v in (self.w, self.alpha, self.n, self.i, self.R, self.t))
        self.rows = np.arange(self.w.shape[0])

    def step(self, reward, i_next, b, done, learning) -> None:
        """Store R_{t+1}, i(S_{t+1}, A_{t+1}); update at τ = t + 1 − n (live rows), or at every remaining τ of the
        episode (rows whose episode ended, T = t + 1). b is q̂(S_{t+1}, A_{t+1}, w) for live rows, the value after
        the end for the others (0 at a terminal state). Rows not `learning` keep w."""
        rows, span, n = self.rows, self.span, self.n
        t1 = self.t + 1
        self.R[rows, t1 % span] = reward
        self.i[rows, t1 % span] = i_next
        k = np.arange(span - 1)
        for j in range(span - 1 if done.any() else 1):
            tau = t1 - n + j
            update = learning & (tau >= 0) & ((j == 0) | (done & (j < n)))
            if not update.any():
                continue
            h = np.where(done, t1 - tau, n)                         # min(n, T − τ) rewards, then γ^h b
            R = self.R[rows[:, None], (tau[:, None] + 1 + k) % span] * (k < h[:, None])
            G = (R * self.gamma ** k).sum(-1) + self.gamma ** h * b  # G_{τ:τ+n} (10.4)
            i_tau = self.i[rows, tau % span]
            error = np.where(update, G - _q(self.w, rows, i_tau), 0.0)
            np.add.at(self.w, (rows[:, None], i_tau), (self.alpha * error)[:, None])  # (10.5), x binary
        self.t = t1


class SarsaLambda:
    """SARSA(λ) with binary features (§12.7's boxed algorithm) for a batch of rows: w and z (rows, d)."""

    def __init__(self, w: np.ndarray, alpha: np.ndarray, lam: np.ndarray, gamma: float, trace: str,
                 tilings: int, size: int) -> None:
        self.w, self.alpha, self.gamma_lam, self.gamma = w, alpha, gamma * lam, gamma
        self.trace, self.size = check_trace(trace, ("accumulating", "replacing")), size
        self.z = np.zeros_like(w)
        self.rows = np.arange(w.shape[0])
        self.i = np.zeros((w.shape[0], tilings), dtype=np.int64)  # F(S, A)
        self.met = 0                                                # tiles 0 .. met − 1 of each block met so far

    def start(self, mask: np.ndarray, i0: np.ndarray) -> None:
        self.z[mask] = 0.0
        self.i[mask] = i0

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows in mask, with their weights, traces and F(S, A)."""
        self.w, self.z, self.alpha, self.gamma_lam, self.i = (
            v[mask] for v in (self.w, self.z, self.alpha, self.gamma_lam, self.i))
        self.rows = np.arange(self.w.shape[0])

    def _blocks(self, a: np.ndarray) -> np.ndarray:
        """(rows, |A|, met): the part of a (rows, |A|·size) array that can be non-zero."""
        return a.reshape(a.shape[0], -1, self.size)[:, :, : self.met]

    def step(self, reward, i_next, b, done, learning) -> None:
        rows, i = self.rows, self.i
        self.met = max(self.met, int((i % self.size).max()) + 1, int((i_next % self.size).max()) + 1)
        delta = reward - _q(self.w, rows, i)                          # δ ← R − Σ_{F(S,A)} w_i
        if self.trace == "accumulating":
            np.add.at(self.z, (rows[:, None], i), 1.0)                # z_i ← z_i + 1
        else:
            self.z[rows[:, None], i] = 1.0                            # z_i ← 1
        delta = np.where(learning, delta + self.gamma * b, 0.0)       # δ ← δ + γ q̂(S', A') (0 at a terminal S')
        z = self._blocks(self.z)
        self._blocks(self.w)[...] += (self.alpha * delta)[:, None, None] * z   # w ← w + αδz
        z *= self.gamma_lam[:, None, None]                            # z ← γλz
        self.i = np.where(done[:, None], self.i, i_next)


# ------------------------------------------------------------------ the driver
@dataclass(frozen=True)
class ControlRun:
    """steps[c, r, e]: the length of episode e of run r under configuration c (nan: not finished by max_steps);
    w: the weights after each row's episodes (configs, runs, |A|·size); snapshots[k]: w after snapshots[k]
    episodes; configs: the (α, n) or (α, λ) of each configuration."""

    steps: np.ndarray
    w: np.ndarray
    snapshots: np.ndarray | None
    coder: TileCoder
    configs: dict[str, list]
    seconds: float

    @property
    def mean_steps(self) -> np.ndarray:
        """Steps per episode averaged over the runs: (configs, episodes)."""
        return self.steps.mean(axis=1)


def control(episodes: int, *, runs: int = 1, alpha: float | Sequence[float] = 0.5 / 8,
            n: int | Sequence[int] | None = None, lam: float | Sequence[float] | None = None,
            trace: str = "replacing", epsilon: float = 0.0, gamma: float = 1.0, coder: TileCoder | None = None,
            seed: int = 0, max_episode_steps: int | None = None, max_steps: int | None = None,
            snapshots: Sequence[int] = (), log_dir: str | Path | None = None) -> ControlRun:
    """n-step semi-gradient SARSA (lam=None; n = 1 by default: §10.1) or SARSA(λ) (lam given; `trace`
    accumulating or replacing) on Mountain Car from w = 0 (module doc). alpha and n (or lam) broadcast to one
    value per configuration; every configuration runs `runs` runs. coder defaults to mountain_car_coder().
    max_steps caps the lockstep steps (episodes not finished by then are nan). log_dir: TensorBoard scalars
    steps_per_episode/<config> (the mean over runs) at step = episode."""
    start_time = time.perf_counter()
    episodes, runs = check_int("episodes", episodes, 1), check_int("runs", runs, 1)
    if n is not None and lam is not None:
        raise ValueError("give n (n-step SARSA) or lam (SARSA(λ)), not both")
    alpha = check_positive("alpha", np.asarray(alpha, dtype=np.float64))
    second = check_unit_interval("lam", np.asarray(lam, dtype=np.float64)) if lam is not None else np.asarray(
        1 if n is None else n)
    if lam is None and (not np.issubdtype(second.dtype, np.integer) or np.any(second < 1)):
        raise ValueError(f"n must be integers ≥ 1, got {n!r:.60}")
    alpha, second = (v.ravel() for v in np.broadcast_arrays(alpha, second))
    epsilon, gamma = float(check_unit_interval("epsilon", epsilon)), float(check_unit_interval("gamma", gamma))
    seed = check_seed("seed", seed)
    snapshots = sorted({check_int("snapshots", k, 1, episodes) for k in snapshots})
    coder = mountain_car_coder() if coder is None else coder
    configs, d = alpha.size, N_ACTIONS * coder.size
    R = configs * runs
    check_memory("the weights, traces and snapshots", 8.0 * R * d * (3 + len(snapshots)))

    row_alpha, row_second = np.repeat(alpha, runs), np.repeat(second, runs)
    w = final = np.zeros((R, d))  # w: the rows stepped; final: every row's weights, written when it leaves
    learner = (NStepSarsa(w, row_alpha, row_second.astype(np.int64), gamma, coder.tilings) if lam is None else
               SarsaLambda(w, row_alpha, row_second, gamma, trace, coder.tilings, coder.size))
    seeds = [seed + r for _ in range(configs) for r in range(runs)]
    env = MountainCarVectorEnv(R, max_episode_steps)
    rng = RowGenerator.from_seeds(seeds)
    steps = np.full((R, episodes), np.nan)
    kept = np.zeros((len(snapshots), R, d)) if snapshots else None
    finished, length, total = np.zeros(R, dtype=np.int64), np.zeros(R, dtype=np.int64), 0

    rows, origin, actions = np.arange(R), np.arange(R), np.arange(N_ACTIONS)  # origin[k]: row k's row of the result

    def tiles(s: np.ndarray) -> np.ndarray:
        """i(s, a) for every action: (rows, |A|, tilings)."""
        return coder.active_sa(s[:, None, :], actions, N_ACTIONS)

    def policy(i_all: np.ndarray, mask: np.ndarray) -> np.ndarray:
        q = w[rows[mask, None, None], i_all[mask]].sum(-1)            # q̂(S, ·, w) of the rows in mask
        return epsilon_greedy(q, epsilon, rng.rows(mask), random_ties=True)

    s, _ = env.reset(seed=seeds)
    every = np.ones(R, dtype=bool)
    i_all = tiles(s)
    a = policy(i_all, every)
    learner.start(every, i_all[rows, a])
    with np.errstate(over="ignore", invalid="ignore"):
        while (finished < episodes).any() and (max_steps is None or total < max_steps):
            s_next, reward, terminated, truncated, info = env.step(a)
            done, learning = terminated | truncated, finished < episodes
            a_next, i_all = np.zeros(rows.size, dtype=np.int64), tiles(s_next)
            a_next[~done] = policy(i_all, ~done)                      # A' ~ ε-greedy(q̂(S', ·, w)), w before the update
            i_next = i_all[rows, a_next]
            b = np.where(done, 0.0, _q(w, rows, i_next))
            if truncated.any():                                       # v̄(S_T) under ε-greedy at a time limit's cut
                s_cut = np.stack(info["final_obs"][truncated])
                q_cut = w[rows[truncated, None, None], tiles(s_cut)].sum(-1)
                b[truncated] = (epsilon_greedy_probabilities(q_cut, epsilon, random_ties=True) * q_cut).sum(-1)
            learner.step(reward, i_next, b, done, learning)
            length += 1
            total += 1
            if done.any():
                ended = done & learning
                steps[origin[ended], finished[ended]] = length[ended]
                finished += ended
                for k, episode in enumerate(snapshots):
                    at = ended & (finished == episode)
                    kept[k, origin[at]] = w[at]
                length[done] = 0
                a_next[done] = policy(i_all, done)                    # the next episode's A_0, with w after the update
                learner.start(done, i_all[done, a_next[done]])
                live = finished < episodes
                if live.any() and 2 * np.count_nonzero(live) <= live.size:  # compact: step the learning rows alone
                    final[origin[~live]] = w[~live]
                    learner.keep(live)
                    env.keep(live)
                    w, rng, rows = learner.w, rng.keep(live), np.arange(np.count_nonzero(live))
                    origin, a_next, finished, length = origin[live], a_next[live], finished[live], length[live]
            a = a_next
    final[origin] = w
    name = "n" if lam is None else "lam"
    result = ControlRun(steps.reshape(configs, runs, episodes), final.reshape(configs, runs, d),
                        None if kept is None else kept.reshape(len(snapshots), configs, runs, d), coder,
                        {"alpha": alpha.tolist(), name: second.tolist()}, time.perf_counter() - start_time)
    if log_dir is not None:
        log_curves(log_dir, result)
    return result


def config_labels(result: ControlRun) -> list[str]:
    """'alpha=0.0625,n=1' for each configuration (α·8 would hide the coder's number of tilings)."""
    (k1, v1), (k2, v2) = result.configs.items()
    return [f"{k1}={a:g},{k2}={b:g}" for a, b in zip(v1, v2)]


def log_curves(log_dir: str | Path, result: ControlRun) -> None:
    """TensorBoard: steps_per_episode/<config> = the mean over runs, at step = episode (1-based)."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for label, curve in zip(config_labels(result), result.mean_steps):
            for e, value in enumerate(curve, start=1):
                if np.isfinite(value):
                    writer.add_scalar(f"steps_per_episode/{label}", float(value), e)
