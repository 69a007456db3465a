"""Experience replay: a preallocated ring buffer with n-step returns, and its prioritized variant.

What one sampled transition i holds (Mnih et al. 2015; n-step: Sutton & Barto §7.1):

    obs        S_t
    actions    A_t
    rewards    G_{t:t+k} = Σ_{j<k} γ^j R_{t+j+1}        k = n, or fewer when the episode ended first
    next_obs   S_{t+k}                                    the true final observation at an episode end
    discounts  γ^k, or 0 when the episode TERMINATED within the window (a time-limit truncation keeps
               γ^k: the state after a timeout still has a value)

so that the target is y = rewards + discounts · max_a q̂(S_{t+k}, a, w⁻).

Layout: one ring of `slots` observation rows per environment, written in time order. Each add()
writes S_t into the row at the env's pointer p and S_{t+1} into row p+1; the next add() overwrites
row p+1 with the same observation, so every observation is stored once. At an episode end the
pointer skips over row p+1, which keeps the final observation, and the reset observation goes to
p+2. Transition starts at row j find S_{t+k} at row j+k of the same ring. The last n−1 starts of each
env wait in the ring (their rewards are stored there too) until their window of n rewards is full
or the episode ends; only then are they sampleable. `len(buffer)` counts sampleable transitions.

add() runs once per environment step, so it does a fixed, small number of numpy operations on
preallocated index arrays, whatever n_envs and n: the common step (no episode end, every window full:
each env emits its oldest waiting start) and the others (episode ends flush a window, windows still
filling) differ only in which starts they select; one code path stores them.

Sampling indexes preallocated numpy arrays with one index array per batch; the batch crosses to
`device` in one place (`_to_device`), zero-copy on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from qapprox.approximators.limits import check_memory


@dataclass
class Batch:
    """A sampled mini-batch; all tensors on the buffer's device, first dimension B. Read-only:
    on the CPU they share memory with nothing the buffer writes, except `weights` of uniform replay
    (one cached tensor of ones)."""

    obs: torch.Tensor  # S_t, obs_dtype
    actions: torch.Tensor  # A_t, int64
    rewards: torch.Tensor  # n-step return Σ_{j<k} γ^j R_{t+j+1}, float32
    next_obs: torch.Tensor  # S_{t+k}, obs_dtype
    discounts: torch.Tensor  # γ^k, 0 after termination, float32
    weights: torch.Tensor  # importance-sampling weights (ones when uniform), float32
    indices: torch.Tensor  # buffer indices for update_priorities, int64

    def split(self, size: int) -> list[Batch]:
        """Consecutive minibatches of `size` rows (views, no copies)."""
        if len(self.actions) <= size:
            return [self]
        columns = [getattr(self, field.name).split(size) for field in dataclasses.fields(self)]
        return [Batch(*parts) for parts in zip(*columns)]


class SumTree:
    """Array-based binary tree over `size` leaves: node 1 is the root, node i has children 2i and
    2i+1, leaf j is node L + j (L = the power of two ≥ size). Each node holds the sum of the leaves
    below it (sampling ∝ priority) and their minimum over positive leaves (the largest importance
    weight). All operations take index arrays: one numpy operation per tree level, none per item.

    update() writes leaves at once and recomputes their ancestors lazily, in one batch before the
    next read (total, min, find): every node is left + right of its final children, so the tree is
    the same as after eager updates, at one pass of the levels per read instead of per write.
    That pass follows the stale leaves' ancestors only in the wide levels near the leaves; a level
    of at most WHOLE_LEVEL nodes (the top ones, where a batch of stale leaves reaches most nodes
    anyway) is recomputed whole, one slice operation per level instead of a dozen gathers.
    """

    WHOLE_LEVEL = 2048  # measured: ≈ 2× cheaper reads than following the leaves on every level

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"size={size} must be ≥ 1")
        self.size = size
        self.first_leaf = 1 << (size - 1).bit_length()  # L
        self.depth = self.first_leaf.bit_length() - 1  # levels above the leaves
        self.sums = np.zeros(2 * self.first_leaf)
        self.mins = np.full(2 * self.first_leaf, np.inf)
        self._stale: list[np.ndarray] = []  # leaves written since the ancestors were recomputed
        self._make_views()

    def _make_views(self) -> None:
        """Views into sums and mins, made again for a copy (see __getstate__).

        Level d holds nodes 2^d … 2^{d+1} − 1; their children are level d + 1 at even (left) and odd
        (right) positions. Levels depth − 1 … 0, bottom-up: the narrow ones are recomputed whole, through
        views (parents, left children, right children) of the sums and of the mins."""
        self._leaf_sums, self._leaf_mins = self.sums[self.first_leaf :], self.mins[self.first_leaf :]  # [j]: leaf j
        whole = [1 << d for d in reversed(range(self.depth)) if 1 << d <= self.WHOLE_LEVEL]
        self._sparse_levels = self.depth - len(whole)  # the wide levels, followed from the stale leaves
        self._whole_levels = [
            (combine, array[first : 2 * first], array[2 * first : 4 * first : 2], array[2 * first + 1 : 4 * first : 2])
            for first in whole
            for combine, array in ((np.add, self.sums), (np.minimum, self.mins))
        ]

    def __getstate__(self) -> dict:
        """deepcopy and pickle copy each array on its own, views too: keep the owners only."""
        return {name: self.__dict__[name] for name in ("size", "first_leaf", "depth", "sums", "mins", "_stale")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    @property
    def total(self) -> float:
        """Σ_j p_j."""
        self._propagate()
        return float(self.sums[1])

    @property
    def min(self) -> float:
        """min_j p_j over positive leaves (inf when all are zero)."""
        self._propagate()
        return float(self.mins[1])

    @property
    def values(self) -> np.ndarray:
        """The leaves p_0 … p_{size−1} (a view: read it, write through update())."""
        return self.sums[self.first_leaf : self.first_leaf + self.size]

    def update(self, indices: np.ndarray, values: np.ndarray | float) -> None:
        """p_j ← value for each j in `indices` (distinct within a call; a later call wins): values
        like indices, or one float for all. Ancestors follow on the next read."""
        leaves = np.array(indices, dtype=np.int64)  # a copy: the caller may reuse its index array
        if isinstance(values, float):
            positive = values if values > 0 else np.inf
        else:
            values = np.asarray(values, dtype=np.float64)
            positive = np.where(values > 0, values, np.inf)
        self._leaf_sums[leaves] = values
        self._leaf_mins[leaves] = positive
        self._stale.append(leaves)
        if len(self._stale) >= 1024:  # bound the backlog during long stretches without reads
            self._propagate()

    def _propagate(self) -> None:
        """Every ancestor of the stale leaves from its two children, level by level: in the wide
        levels only those ancestors, in the narrow top levels every node."""
        if not self._stale:
            return
        nodes = np.concatenate([leaves.ravel() for leaves in self._stale]) + self.first_leaf
        self._stale.clear()
        for _ in range(self._sparse_levels):
            nodes = nodes >> 1  # repeated parents are recomputed to the same value
            left = nodes << 1
            self.sums[nodes] = self.sums[left] + self.sums[left + 1]
            self.mins[nodes] = np.minimum(self.mins[left], self.mins[left + 1])
        for combine, parents, left, right in self._whole_levels:  # node i = 2i (+) 2i+1, a level at once
            combine(left, right, out=parents)

    def set_values(self, values: np.ndarray) -> None:
        """All leaves at once, then every level bottom-up (the same sums update() would give)."""
        values = np.array(values, dtype=np.float64)  # a copy: `values` may be a view of this tree
        if values.shape != (self.size,):
            raise ValueError(f"values has shape {values.shape}; expected ({self.size},)")
        self.sums[:] = 0.0
        self.mins[:] = np.inf
        self._stale.clear()
        self.update(np.arange(self.size), values)

    def find(self, u: np.ndarray) -> np.ndarray:
        """For each u in [0, total): the leaf j with Σ_{i<j} p_i ≤ u < Σ_{i≤j} p_i (prefix-sum search).
        A subtree whose sum is 0 is never entered, so a zero leaf is never returned."""
        self._propagate()
        u = np.array(u, dtype=np.float64)
        nodes = np.ones(len(u), dtype=np.int64)
        for _ in range(self.depth):
            left = nodes << 1
            left_sum = self.sums[left]
            go_right = (u >= left_sum) & (self.sums[left + 1] > 0)
            u -= left_sum * go_right
            nodes = left + go_right
        return nodes - self.first_leaf


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer ≥ {low}")
    return int(value)


def _check_unit(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is outside [0, 1]")
    return float(value)


class ReplayBuffer:
    """Uniform experience replay over the last ≈ `capacity` transitions of `n_envs` environments.

    capacity: transitions kept (per env ⌈capacity / n_envs⌉ rows, plus n_step rows for the window
        being filled; an episode end still in the ring holds one row with its final observation).
    obs_dtype: storage dtype of observations (uint8 for images: 4×84×84 costs 28 KB a row).
    n_step: n of the n-step return; 1 is plain one-step DQN.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype=np.float32,
        n_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ):
        self.capacity = _check_int("capacity", capacity, 1)
        self.n_envs = _check_int("n_envs", n_envs, 1)
        self.n_step = _check_int("n_step", n_step, 1)
        self.gamma = _check_unit("gamma", gamma)
        try:
            self.obs_shape = tuple(int(size) for size in obs_shape)
        except (TypeError, ValueError):
            raise ValueError(f"obs_shape={obs_shape!r} must be a tuple of positive integers") from None
        if any(size < 1 for size in self.obs_shape):
            raise ValueError(f"obs_shape={obs_shape!r} must be a tuple of positive integers")
        try:
            self.obs_dtype = np.dtype(obs_dtype)
        except TypeError:
            raise ValueError(f"obs_dtype={obs_dtype!r} is not a numpy dtype") from None
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not a torch device") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} is not available here (torch.cuda.is_available() is False)")
        if seed is not None:
            _check_int("seed", seed, 0)

        # Rows per env: capacity / n_envs starts, n − 1 starts waiting for their window, 1 next obs.
        self.slots = math.ceil(self.capacity / self.n_envs) + self.n_step
        rows = self.n_envs * self.slots
        check_memory(f"a replay buffer of capacity={self.capacity}", self.storage_bytes(
            self.capacity, self.obs_shape, self.obs_dtype.itemsize, self.n_envs, self.n_step,
            isinstance(self, PrioritizedReplayBuffer)))
        self._obs = np.zeros((rows, *self.obs_shape), dtype=self.obs_dtype)
        self._actions = np.zeros(rows, dtype=np.int64)
        self._step_rewards = np.zeros(rows, dtype=np.float32)  # R_{t+1}, for the n-step window
        self._returns = np.zeros(rows, dtype=np.float32)  # G_{t:t+k}
        self._discounts = np.zeros(rows, dtype=np.float32)  # γ^k or 0
        self._next_rows = np.zeros(rows, dtype=np.int64)  # row holding S_{t+k}
        self._valid = np.zeros(rows, dtype=bool)  # a complete transition starts here
        self._pointer = np.zeros(self.n_envs, dtype=np.int64)  # slot of the next S_t, per env
        self._pending = np.zeros(self.n_envs, dtype=np.int64)  # starts still waiting, per env
        self._filled = 0  # slots written so far in the fullest env's ring (≤ slots)
        self._count = 0

        # Per-step index arrays, reused by every add() (derived from pointer and pending: see _derive).
        n = self.n_step
        self._first_row = np.arange(self.n_envs, dtype=np.int64) * self.slots
        self._slot_after = (np.arange(self.slots + 1) + 1) % self.slots  # slot p + 1 (p + 2 after an end)
        # Rows of S_t and S_{t+1} this step. This array and `recent` are rewritten by every add(): what
        # keeps their rows past the call (SumTree.update) copies them.
        self._written = np.zeros((2, self.n_envs), dtype=np.int64)
        # Rows of the last n starts of every env, in a ring of n lines run backwards (c: the newest,
        # then c + 1, … mod n) and written twice, at c and c + n, so that S_t, S_{t−1}, … S_{t−n+1} are
        # always the lines c … c + n − 1: a view, in the order d = 0 … n−1 of the starts d steps back.
        self._recent = np.zeros((2 * n, self.n_envs), dtype=np.int64)
        self._newest = 0  # c

        # The n-step window as lookup tables. For the current step t and d = 0 … n−1, the start
        # S_{t−d} has return G = Σ_{d'≤d} γ^{d−d'} R_{t−d'+1}: one product with return_weights.
        self._window = np.arange(n, dtype=np.int64)  # d
        power = self._window[None, :] - self._window[:, None]  # d − d'
        self._return_weights = np.where(power >= 0, self.gamma ** np.maximum(power, 0), 0.0)
        # Indexed by key = pending + n · done, per env: with pending + 1 starts not yet emitted (the
        # current one included), [key, d]: emit the start d back when it exists and its window is full
        # or the episode ended; [key]: how many then still wait.
        pending, done = np.tile(np.arange(n), 2), np.repeat([0, 1], n)
        self._emit = (self._window < pending[:, None] + 1) & ((done[:, None] == 1) | (self._window == n - 1))
        self._pending_after = np.where(done == 1, 0, np.minimum(pending + 1, n - 1))
        # Indexed [terminated, d]: the discount of a start d back, whose window has k = d + 1 rewards.
        self._discount_table = np.stack([self.gamma ** (self._window + 1.0), np.zeros(n)]).astype(np.float32)
        self._step_shapes = (*[(self.n_envs, *self.obs_shape)] * 2, *[(self.n_envs,)] * 4)
        self._derive()
        self._rng = np.random.default_rng(seed)
        self._ones = torch.ones(0, device=self.device)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._count

    @staticmethod
    def storage_bytes(capacity: int, obs_shape: tuple[int, ...], itemsize: int, n_envs: int = 1, n_step: int = 1,
                      prioritized: bool = False) -> int:
        """An upper bound of the bytes a buffer of these settings allocates (nbytes, plus the sum-tree's
        two arrays of ≤ 4 float64 per row and the n-step tables), computable before allocating it."""
        rows = n_envs * (math.ceil(capacity / n_envs) + n_step)
        per_row = math.prod(obs_shape) * itemsize + 29 + (64 if prioritized else 0)  # obs; int64 ×2, f32 ×3, bool
        return rows * per_row + 16 * n_envs * (n_step + 2) + 24 * n_step * n_step

    @property
    def nbytes(self) -> int:
        """Bytes allocated up front for storage (observations are stored once, not as obs + next_obs)."""
        return sum(array.nbytes for array in self._arrays().values())

    # ------------------------------------------------------------------ writing
    def add(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """Store one vectorised step: (S_t, A_t, R_{t+1}, S_{t+1}) for every env, leading dim n_envs.

        next_obs must be the true S_{t+1}: the final observation where an episode ended (gymnasium's
        `final_obs`), not the reset one; where it did not end, the next call's obs must equal it.
        Emits every start whose n-step window is now complete; at an episode end (terminated or
        truncated) flushes every waiting start of that env with its shortened window.
        """
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        actions, rewards = np.asarray(actions), np.asarray(rewards)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        shapes = (obs.shape, next_obs.shape, actions.shape, rewards.shape, terminated.shape, truncated.shape)
        if shapes != self._step_shapes:
            self._raise_shape_error(shapes)
        if actions.dtype.kind not in "iu":
            raise ValueError(f"actions has dtype {actions.dtype}; expected integers (discrete actions)")

        pointer, written, recent = self._pointer, self._written, self._recent
        slot_next = self._slot_after[pointer]
        row = np.add(self._first_row, pointer, out=written[0])  # S_t
        next_row = np.add(self._first_row, slot_next, out=written[1])  # S_{t+1}
        self._obs[row] = obs
        self._obs[next_row] = next_obs
        self._actions[row] = actions
        self._step_rewards[row] = rewards.astype(np.float32, copy=False)
        self._newest = newest = (self._newest - 1) % self.n_step
        recent[newest :: self.n_step] = row  # S_t, the start 0 back, at lines c and c + n
        back_rows = recent[newest : newest + self.n_step].T  # [e, d]: row of S_{t−d}

        # Which starts (env, d steps back; `ended`: the episode terminated) are emitted. Common step: no
        # episode ends and every window was already full, so each env emits its oldest start, d = n − 1
        # (all of them when n = 1). Both branches select; the lines after them store.
        if self._windows_full and not (np.count_nonzero(terminated) or np.count_nonzero(truncated)):
            env, d, ended = slice(None), self.n_step - 1, 0
            self._pointer = slot_next
        else:  # episode ends (flush the env's waiting starts) or windows still filling
            done = terminated | truncated
            key = self._pending + self.n_step * done
            env, d = np.nonzero(self._emit[key])
            ended = terminated.view(np.uint8)[env]
            self._pending = self._pending_after[key]
            self._pointer = self._slot_after[pointer + done]  # an episode end keeps its final obs row
            self._windows_full = not np.count_nonzero(self._pending - (self.n_step - 1))
        # Returns G[e, d] of every start in the window in one product; store those emitted.
        returns = self._step_rewards[back_rows].dot(self._return_weights)
        starts = back_rows[env, d]
        self._returns[starts] = returns[env, d].astype(np.float32)  # summed in float64, stored as float32
        self._next_rows[starts] = next_row[env]  # S_{t+k} with k = d + 1 is the row just written
        self._discounts[starts] = self._discount_table[ended, d]
        self._commit(written, starts)
        if self._filled < self.slots:
            self._filled = min(self.slots, max(self._filled, max(pointer.tolist()) + 2))

    def end_episodes(self) -> None:
        """End every env's episode here, as a time-limit truncation, before the envs are reset (a resumed run):
        each start still waiting for its n-step window is stored with the k rewards it has, G = Σ_{j<k} γ^j R,
        bootstrapping from the last S_{t+1} with γ^k, and the ring steps past that S_{t+1}, as add() does at an
        episode end — so no transition ends in the new episode's first state. A no-op on an unused buffer."""
        if self._filled == 0:
            return
        env = np.repeat(np.arange(self.n_envs), self._pending)  # one entry per waiting start …
        d = np.concatenate([np.arange(p) for p in self._pending]).astype(np.int64)  # … d steps back
        back_rows = self._first_row[:, None] + (self._pointer[:, None] - 1 - self._window[None, :]) % self.slots
        returns = self._step_rewards[back_rows].dot(self._return_weights)  # [e, d], as in add()
        starts = back_rows[env, d]
        self._returns[starts] = returns[env, d].astype(np.float32)
        self._next_rows[starts] = (self._first_row + self._pointer)[env]  # the row of the last S_{t+1}
        self._discounts[starts] = self._discount_table[0, d]
        self._commit(np.empty(0, dtype=np.int64), starts)
        self._pending[:] = 0
        self._pointer = self._slot_after[self._pointer]  # keep S_{t+1}: the next S_t goes one slot further
        self._derive()

    def _commit(self, written: np.ndarray, emitted: np.ndarray) -> int:
        """Rows overwritten this step stop being transitions; emitted starts become ones. Returns
        how many transitions were overwritten."""
        overwritten = int(np.count_nonzero(self._valid[written]))
        self._count += len(emitted) - overwritten
        self._valid[written] = False
        self._valid[emitted] = True
        return overwritten

    def _derive(self) -> None:
        """The per-step index state that follows from pointer and pending (after __init__ or a load)."""
        n = self.n_step  # c = 0: the last S_t and the starts d back before it, at slots pointer − 1 − d
        self._newest = 0
        self._recent[:n] = self._first_row + (self._pointer - 1 - self._window[:, None]) % self.slots
        self._recent[n:] = self._recent[:n]
        self._windows_full = bool(np.all(self._pending == self.n_step - 1))

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, batches: int = 1) -> Batch:
        """B transitions drawn uniformly with replacement; `batches` minibatches of B at once as one
        Batch of batches · B rows (independent draws: distributed as `batches` calls; Batch.split(B))."""
        self._check_batch_size(batch_size)
        indices = self._uniform_indices(batch_size * _check_int("batches", batches, 1))
        return self._gather(indices, None)

    def transitions(self) -> Batch:
        """Every sampleable transition, env by env in storage order, weights 1 (for inspection)."""
        return self._gather(np.flatnonzero(self._valid), None)

    def _uniform_indices(self, batch_size: int) -> np.ndarray:
        """Uniform over sampleable rows: draw uniformly over the written rows, keep the valid ones
        in order (rejection sampling; usually one round, as nearly all written rows are valid)."""
        filled = self._filled
        span = self.n_envs * filled
        picked = np.empty(0, dtype=np.int64)
        while len(picked) < batch_size:
            missing = batch_size - len(picked)
            draws = int(missing * span / self._count * 1.25) + 8
            candidates = (self._rng.random(draws) * span).astype(np.int64)
            if filled < self.slots:  # u ↦ row u mod filled of env u // filled
                candidates = (candidates // filled) * self.slots + candidates % filled
            picked = np.concatenate([picked, candidates[self._valid[candidates]]])
        return picked[:batch_size]

    def _gather(self, indices: np.ndarray, weights: np.ndarray | None) -> Batch:
        if weights is None:
            if len(self._ones) != len(indices):
                self._ones = torch.ones(len(indices), device=self.device)
            weights_tensor = self._ones
        else:
            weights_tensor = self._to_device(weights.astype(np.float32))
        return Batch(
            obs=self._to_device(self._obs[indices]),
            actions=self._to_device(self._actions[indices]),
            rewards=self._to_device(self._returns[indices]),
            next_obs=self._to_device(self._obs[self._next_rows[indices]]),
            discounts=self._to_device(self._discounts[indices]),
            weights=weights_tensor,
            indices=self._to_device(indices),
        )

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """The one place a batch crosses to the device (zero-copy on the CPU)."""
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def update_priorities(self, indices, td_errors) -> None:
        """Uniform replay keeps no priorities."""

    # ------------------------------------------------------------------ checks
    def _raise_shape_error(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        names = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")
        for name, shape, expected in zip(names, shapes, self._step_shapes):
            if shape != expected:
                raise ValueError(f"{name} has shape {shape}; expected {expected} (n_envs={self.n_envs})")

    def _check_batch_size(self, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not (
            1 <= batch_size <= self._count
        ):
            raise ValueError(f"batch_size={batch_size!r} must be an integer in [1, len(buffer)={self._count}]")

    # ------------------------------------------------------------------ state
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "obs": self._obs, "actions": self._actions, "step_rewards": self._step_rewards,
            "returns": self._returns, "discounts": self._discounts, "next_rows": self._next_rows,
            "valid": self._valid, "pointer": self._pointer, "pending": self._pending,
        }  # fmt: skip

    def _settings(self) -> dict:
        return {"capacity": self.capacity, "n_envs": self.n_envs, "n_step": self.n_step, "gamma": self.gamma}

    def state_dict(self) -> dict:
        """Storage (tensors sharing memory with the buffer: save them before the next add), waiting
        n-step windows, counters and the sampling RNG: a loaded copy samples the same batches."""
        generator = self._rng.bit_generator.state
        return {
            **self._settings(),
            **{name: torch.from_numpy(array) for name, array in self._arrays().items()},
            "count": self._count,
            "filled": self._filled,
            "rng_state": generator["state"]["state"],
            "rng_inc": generator["state"]["inc"],
            "rng_has_uint32": generator["has_uint32"],
            "rng_uinteger": generator["uinteger"],
        }

    def load_state_dict(self, state: dict, n_actions: int | None = None) -> None:
        """Restore a state_dict() of a buffer built with the same settings, after checking all of it:
        shapes and dtypes, every pointer and row index in range, actions in [0, n_actions) when given,
        finite rewards, discounts in [0, 1], counts that agree with the stored rows. A bad state is a
        one-line ValueError and leaves this buffer unchanged."""
        if not isinstance(state, dict):
            raise ValueError(f"replay state is a {type(state).__name__}, not a dict")
        for name, value in self._settings().items():
            saved = state.get(name)
            if type(saved) not in (int, float) or saved != value:  # plain numbers only: a tensor never compares
                raise ValueError(f"replay state has {name}={_shown(saved)}; this buffer has {name}={value!r}")
        stored = {}
        for name, array in self._arrays().items():
            value = state.get(name)
            value = value.cpu().numpy() if isinstance(value, torch.Tensor) else None
            if value is None or value.shape != array.shape or value.dtype != array.dtype:
                found = None if value is None else f"{value.dtype}{list(value.shape)}"
                raise ValueError(f"replay state '{name}' is {found}; expected {array.dtype}{list(array.shape)}")
            stored[name] = value
        counters = {name: _state_int(state, name, low, high) for name, low, high in (
            ("count", 0, len(self._valid)), ("filled", 0, self.slots), ("rng_state", 0, 2**128 - 1),
            ("rng_inc", 0, 2**128 - 1), ("rng_has_uint32", 0, 1), ("rng_uinteger", 0, 2**32 - 1))}
        if counters["rng_inc"] % 2 == 0:  # numpy's PCG64 increments are odd; an even one can repeat one draw forever
            raise ValueError(f"replay state 'rng_inc'={counters['rng_inc']} must be odd (a PCG64 increment)")
        self._check_rows(stored, counters, n_actions)
        for name, array in self._arrays().items():
            np.copyto(array, stored[name])
        self._count, self._filled = counters["count"], counters["filled"]
        self._derive()
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": counters["rng_state"], "inc": counters["rng_inc"]},
            "has_uint32": counters["rng_has_uint32"],
            "uinteger": counters["rng_uinteger"],
        }

    def _check_rows(self, stored: dict[str, np.ndarray], counters: dict[str, int], n_actions: int | None) -> None:
        """What a loaded state must satisfy for sampling to be correct (and to terminate)."""
        def refuse(what: str) -> None:
            raise ValueError(f"replay state: {what}")

        valid = stored["valid"]
        rows = np.flatnonzero(valid)
        if int(valid.sum()) != counters["count"]:
            refuse(f"count={counters['count']} but {int(valid.sum())} rows hold transitions")
        pointer, pending = stored["pointer"], stored["pending"]
        if not ((pointer >= 0) & (pointer < self.slots)).all():
            refuse(f"a pointer is outside [0, {self.slots})")
        if not ((pending >= 0) & (pending < self.n_step)).all():
            refuse(f"a pending count is outside [0, {self.n_step})")
        waiting = [self._first_row[e] + (pointer[e] - 1 - d) % self.slots
                   for e in range(self.n_envs) for d in range(pending[e])]
        if valid[waiting].any():
            refuse("a start still waiting for its n-step window is marked as a transition")
        if len(rows) and (rows % self.slots).max() >= counters["filled"]:
            refuse(f"a transition lies beyond filled={counters['filled']} slots")
        next_rows = stored["next_rows"][rows]
        ahead = (next_rows - rows) % self.slots  # S_{t+k} lies k = 1 … n slots after S_t, in the same env's ring
        if not ((next_rows >= 0) & (next_rows < len(valid)) & (next_rows // self.slots == rows // self.slots)
                & (ahead >= 1) & (ahead <= self.n_step)).all():
            refuse(f"a next-state row index is not 1 to n_step={self.n_step} rows ahead in its environment's ring")
        actions = stored["actions"]  # every row: a waiting start becomes a transition without its action rewritten
        if len(actions) and (actions.min() < 0 or (n_actions is not None and actions.max() >= n_actions)):
            refuse(f"an action is outside [0, {n_actions if n_actions is not None else 'n_actions'})")
        if not (np.isfinite(stored["returns"]).all() and np.isfinite(stored["step_rewards"]).all()):
            refuse("a reward or return is not finite")
        discounts = stored["discounts"][rows]
        if not ((discounts >= 0) & (discounts <= 1)).all():
            refuse("a discount is outside [0, 1]")
        if stored["obs"].dtype.kind == "f" and not np.isfinite(stored["obs"]).all():
            refuse("an observation is not finite")


def _shown(value) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"a tensor of shape {list(value.shape)}"
    return text if len(text) <= 60 else text[:57] + "..."


def _state_int(state: dict, name: str, low: int, high: int) -> int:
    value = state.get(name)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"replay state '{name}'={value!r} must be an integer in [{low}, {high}]")
    return value


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on a SumTree.

    P(i) = p_i^α / Σ_j p_j^α,   p_i = |δ_i| + eps   (new transitions: the largest p seen so far)
    w_i = (N · P(i))^{−β} / max_j w_j = (p_i^α / min_j p_j^α)^{−β}   (max over the whole buffer)
    Sampling is stratified: one draw from each of B equal segments of [0, Σ p^α).
    β is annealed towards 1 by the caller through set_beta() or anneal_beta(progress).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype=np.float32,
        n_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        alpha: float = 0.6,
        beta0: float = 0.4,
        eps: float = 1e-6,
    ):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0.0 <= alpha < math.inf:
            raise ValueError(f"alpha={alpha!r} must be a number ≥ 0")
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.number)) or not 0.0 < eps < math.inf:
            raise ValueError(f"eps={eps!r} must be a number > 0")
        self.beta0 = _check_unit("beta0", beta0)
        super().__init__(capacity, obs_shape, obs_dtype, n_envs, n_step, gamma, device, seed)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.beta = self.beta0
        self.max_priority = 1.0  # p given to new transitions
        self._tree = SumTree(len(self._valid))

    @property
    def nbytes(self) -> int:
        return super().nbytes + self._tree.sums.nbytes + self._tree.mins.nbytes

    def max_priority_of(self, max_priority: float) -> float:
        """The largest p^α a leaf may hold when the largest priority seen is `max_priority` (rounding aside)."""
        return max(max_priority**self.alpha, 1.0) * (1 + 1e-9)

    def set_beta(self, beta: float) -> None:
        """β of the importance weights, in [0, 1]."""
        self.beta = _check_unit("beta", beta)

    def anneal_beta(self, progress: float) -> None:
        """β = β0 + progress · (1 − β0): linear from β0 at progress 0 to 1 at progress ≥ 1."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float, np.number)) or not progress >= 0:
            raise ValueError(f"progress={progress!r} must be a number ≥ 0")
        self.set_beta(self.beta0 + min(float(progress), 1.0) * (1.0 - self.beta0))

    def _commit(self, written: np.ndarray, emitted: np.ndarray) -> int:
        overwritten = super()._commit(written, emitted)
        if overwritten:  # p = 0 where no transition starts now (other rows without one hold 0 already) …
            self._tree.update(written, 0.0)
        self._tree.update(emitted, self.max_priority**self.alpha)  # … and the largest p for new ones
        return overwritten

    def sample(self, batch_size: int, batches: int = 1) -> Batch:
        """B transitions drawn ∝ p^α (stratified), with importance weights w. One minibatch per call:
        the priorities change after each update."""
        if batches != 1:
            raise ValueError(f"batches={batches!r}: prioritized replay samples one minibatch at a time")
        self._check_batch_size(batch_size)
        total = self._tree.total
        u = (np.arange(batch_size) + self._rng.random(batch_size)) * (total / batch_size)
        indices = self._tree.find(u)
        weights = (self._tree.values[indices] / self._tree.min) ** -self.beta
        return self._gather(indices, weights)

    def update_priorities(self, indices, td_errors) -> None:
        """p_i ← |δ_i| + eps for sampled rows (a row that no longer holds a transition is skipped)."""
        indices = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        if isinstance(td_errors, torch.Tensor):
            td_errors = td_errors.detach().cpu()
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        if indices.shape != priorities.shape or indices.ndim != 1:
            raise ValueError(f"indices {indices.shape} and td_errors {priorities.shape} must be equal 1-d shapes")
        if not np.isfinite(priorities).all():
            raise ValueError("td_errors contain NaN or inf")
        outside = indices[(indices < 0) | (indices >= len(self._valid))]
        if len(outside):
            raise ValueError(f"index {outside[0]} is outside the buffer's rows [0, {len(self._valid)})")
        keep = self._valid[indices]  # rows overwritten since sampling keep their new priority
        indices, first = np.unique(indices[keep], return_index=True)
        priorities = priorities[keep][first]
        if len(indices):
            self.max_priority = max(self.max_priority, float(priorities.max()))
            self._tree.update(indices, priorities**self.alpha)

    def _settings(self) -> dict:
        return {**super()._settings(), "alpha": self.alpha}

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "priorities": torch.from_numpy(self._tree.values),
            "max_priority": self.max_priority,
            "beta": self.beta,
        }

    def load_state_dict(self, state: dict, n_actions: int | None = None) -> None:
        priorities = state.get("priorities") if isinstance(state, dict) else None
        if not isinstance(priorities, torch.Tensor) or tuple(priorities.shape) != (self._tree.size,) or \
                priorities.dtype != torch.float64 or not torch.isfinite(priorities).all():
            raise ValueError(f"replay state 'priorities' must be finite float64 numbers of shape ({self._tree.size},)")
        max_priority, beta = state.get("max_priority"), state.get("beta")
        if type(max_priority) not in (int, float) or not 0 < max_priority < math.inf:
            raise ValueError(f"replay state 'max_priority'={_shown(max_priority)} must be a finite number > 0")
        _check_unit("replay state 'beta'", beta if type(beta) in (int, float) else None)
        valid = state.get("valid")
        if isinstance(valid, torch.Tensor) and valid.shape == self._valid.shape and valid.dtype == torch.bool:
            valid, leaves = valid.numpy(), priorities.numpy()  # p^α > 0 exactly where a transition is
            if (leaves[~valid] != 0).any() or (leaves[valid] <= 0).any() or \
                    (leaves > self.max_priority_of(max_priority)).any():
                raise ValueError("replay state 'priorities' must be > 0 (and ≤ max_priority^alpha) exactly on the "
                                 "rows holding transitions and 0 elsewhere")
        super().load_state_dict(state, n_actions)  # checks the rest (and refuses a `valid` of another shape)
        self._tree.set_values(priorities.cpu().numpy())
        self.max_priority = float(max_priority)
        self.set_beta(beta)
