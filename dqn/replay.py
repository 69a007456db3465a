"""Experience replay: a preallocated ring buffer with n-step returns (its prioritized variant: dqn.prioritized).

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

Members: a sequence of K seeds makes K independent buffers of N envs each in one (a population of agents
in lockstep, one per seed), member-major: member k owns envs k·N … (k+1)·N − 1, hence rings k·N … and rows
k·N·slots … (k+1)·N·slots − 1, and has its own count, fill level and sampling generator (prioritized: its
own tree of a SumTree forest and its own largest priority). add() takes all K·N envs' step at once, the
ring logic above run over K·N rings; sample() draws each member's rows from its generator exactly as a
buffer of that member alone would, and gathers the K members' rows, member-major, in one indexing;
member_state(k) is that buffer's state_dict(). One member (an int seed) is K = 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qapprox.approximators.limits import check_memory
from qapprox.dqn.replay_state import check_replay_state
from qapprox.envs.validation import check_float, check_int, check_seed, check_shape, is_int, shown


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


class ReplayBuffer:
    """Uniform experience replay over the last ≈ `capacity` transitions of `n_envs` environments.

    capacity: transitions kept (per env ⌈capacity / n_envs⌉ rows, plus n_step rows for the window
        being filled; an episode end still in the ring holds one row with its final observation).
    obs_dtype: storage dtype of observations (uint8 for images: 4×84×84 costs 28 KB a row).
    n_step: n of the n-step return; 1 is plain one-step DQN.
    seed: the sampling generator's seed, or a sequence of K seeds: K members (module doc), each with
        n_envs envs and capacity transitions of its own.
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
        seed: int | None | Sequence[int] = None,
    ):
        self.capacity = check_int("capacity", capacity, 1)
        self.n_envs = check_int("n_envs", n_envs, 1)
        self.n_step = check_int("n_step", n_step, 1)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0)
        self.obs_shape = check_shape("obs_shape", obs_shape)
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
        if seed is None or is_int(seed):
            seeds = [seed if seed is None else check_seed("seed", seed)]
        elif isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)) and len(seed):
            seeds = [check_seed(f"seed[{k}]", one) for k, one in enumerate(seed)]
        else:
            raise ValueError(f"seed={shown(seed)} must be a seed, None or a non-empty sequence of seeds "
                             "(one per member)")
        self.members = K = len(seeds)

        # Rows per env: capacity / n_envs starts, n − 1 starts waiting for their window, 1 next obs.
        self.slots = math.ceil(self.capacity / self.n_envs) + self.n_step
        self._rings = rings = K * self.n_envs  # one ring per env of every member
        self._member_rows = self.n_envs * self.slots  # member k's rows start at k · _member_rows
        rows = rings * self.slots
        check_memory(f"a replay buffer of capacity={self.capacity}" + (f" for each of {K} members" if K > 1 else ""),
                     self.storage_bytes(self.capacity, self.obs_shape, self.obs_dtype.itemsize, self.n_envs,
                                        self.n_step, K))
        self._obs = np.zeros((rows, *self.obs_shape), dtype=self.obs_dtype)
        self._actions = np.zeros(rows, dtype=np.int64)
        self._step_rewards = np.zeros(rows, dtype=np.float32)  # R_{t+1}, for the n-step window
        self._returns = np.zeros(rows, dtype=np.float32)  # G_{t:t+k}
        self._discounts = np.zeros(rows, dtype=np.float32)  # γ^k or 0
        self._next_rows = np.zeros(rows, dtype=np.int64)  # row holding S_{t+k}
        self._valid = np.zeros(rows, dtype=bool)  # a complete transition starts here
        self._pointer = np.zeros(rings, dtype=np.int64)  # slot of the next S_t, per env
        self._pending = np.zeros(rings, dtype=np.int64)  # starts still waiting, per env
        self._filled = np.zeros(K, dtype=np.int64)  # per member: slots written in its fullest env's ring (≤ slots)
        self._count = np.zeros(K, dtype=np.int64)  # per member: sampleable transitions

        # Per-step index arrays, reused by every add() (derived from pointer and pending: see _derive).
        n = self.n_step
        self._first_row = np.arange(rings, dtype=np.int64) * self.slots
        self._slot_after = (np.arange(self.slots + 1) + 1) % self.slots  # slot p + 1 (p + 2 after an end)
        # Rows of S_t and S_{t+1} this step. This array and `recent` are rewritten by every add(): what
        # keeps their rows past the call (SumTree.update) copies them.
        self._written = np.zeros((2, rings), dtype=np.int64)
        # Rows of the last n starts of every env, in a ring of n lines run backwards (c: the newest,
        # then c + 1, … mod n) and written twice, at c and c + n, so that S_t, S_{t−1}, … S_{t−n+1} are
        # always the lines c … c + n − 1: a view, in the order d = 0 … n−1 of the starts d steps back.
        self._recent = np.zeros((2 * n, rings), dtype=np.int64)
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
        self._step_shapes = (*[(rings, *self.obs_shape)] * 2, *[(rings,)] * 4)
        self._derive()
        self._rngs = [np.random.default_rng(one) for one in seeds]
        self._ones = torch.ones(0, device=self.device)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        """Sampleable transitions, over all members."""
        return int(self._count.sum())

    @property
    def counts(self) -> np.ndarray:
        """Sampleable transitions of each member, (K,)."""
        return self._count.copy()

    def ready(self, batch_size: int) -> bool:
        """May training draw minibatches of batch_size? Once every member has held that many transitions: it
        holds them, or its rings have wrapped. (A ring only a little larger than a batch holds fewer transitions
        than its capacity whenever episodes end in it — each final observation takes a row — and is then
        sampled with replacement from what it holds, the latest transitions, rather than not at all.)"""
        return bool(np.all((self._count >= batch_size) | ((self._filled == self.slots) & (self._count > 0))))

    @classmethod
    def storage_bytes(cls, capacity: int, obs_shape: tuple[int, ...], itemsize: int, n_envs: int = 1,
                      n_step: int = 1, members: int = 1) -> int:
        """An upper bound of the bytes a buffer of this class and these settings allocates (nbytes, plus
        what a subclass keeps beside the storage (_extra_bytes) and the n-step tables), computable before
        allocating it; `members` members of n_envs envs each."""
        member_rows = n_envs * (math.ceil(capacity / n_envs) + n_step)
        per_row = math.prod(obs_shape) * itemsize + 29  # obs; int64 ×2, f32 ×3, bool
        rings = members * n_envs
        return (members * member_rows * per_row + cls._extra_bytes(member_rows, members)
                + 16 * rings * (n_step + 2) + 24 * n_step * n_step)

    @classmethod
    def _extra_bytes(cls, member_rows: int, members: int) -> int:
        """Bytes a subclass keeps beside the storage of `members` members of member_rows rows (a sum-tree's)."""
        return 0

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
        # Returns G[e, d] of every start in the window at once; store those emitted.
        returns = self._window_returns(back_rows)
        starts = back_rows[env, d]
        self._returns[starts] = returns[env, d].astype(np.float32)  # summed in float64, stored as float32
        self._next_rows[starts] = next_row[env]  # S_{t+k} with k = d + 1 is the row just written
        self._discounts[starts] = self._discount_table[ended, d]
        self._commit(written, starts)
        if self._filled.min() < self.slots:  # per member: its fullest ring
            np.minimum(np.maximum(self._filled, pointer.reshape(self.members, -1).max(axis=1) + 2), self.slots,
                       out=self._filled)

    def _window_returns(self, back_rows: np.ndarray) -> np.ndarray:
        """G[e, d] = Σ_{d'} R[e, d'] · return_weights[d', d] of the starts S_{t−d} at back_rows[e, d], in float64,
        summed in the order d' = 0 … n−1 whatever the number of rings (a BLAS product may round a row
        differently in a taller matrix: one member must store what its buffer alone would)."""
        return (self._step_rewards[back_rows][:, :, None] * self._return_weights).sum(axis=1)

    def end_episodes(self) -> None:
        """End every env's episode here, as a time-limit truncation, before the envs are reset (a resumed run):
        each start still waiting for its n-step window is stored with the k rewards it has, G = Σ_{j<k} γ^j R,
        bootstrapping from the last S_{t+1} with γ^k, and the ring steps past that S_{t+1}, as add() does at an
        episode end — so no transition ends in the new episode's first state. A no-op on an unused buffer
        (member: a member not yet written to is left as it is)."""
        used = np.repeat(self._filled > 0, self.n_envs)  # per ring
        if not used.any():
            return
        env = np.repeat(np.arange(self._rings), self._pending)  # one entry per waiting start …
        d = np.arange(len(env)) - np.repeat(np.cumsum(self._pending) - self._pending, self._pending)  # … d steps back
        back_rows = self._first_row[:, None] + (self._pointer[:, None] - 1 - self._window[None, :]) % self.slots
        returns = self._window_returns(back_rows)  # [e, d], as in add()
        starts = back_rows[env, d]
        self._returns[starts] = returns[env, d].astype(np.float32)
        self._next_rows[starts] = (self._first_row + self._pointer)[env]  # the row of the last S_{t+1}
        self._discounts[starts] = self._discount_table[0, d]
        self._commit(np.empty(0, dtype=np.int64), starts)
        self._pending[:] = 0
        self._pointer = np.where(used, self._slot_after[self._pointer], self._pointer)  # keep S_{t+1}: the next
        self._derive()  # S_t goes one slot further

    def _commit(self, written: np.ndarray, emitted: np.ndarray) -> int:
        """Rows overwritten this step stop being transitions; emitted starts become ones. Returns
        how many transitions were overwritten."""
        lost = written[self._valid[written]]
        if self.members == 1:
            self._count += len(emitted) - len(lost)
        else:  # per member: its rows' changes
            self._count += np.bincount(emitted // self._member_rows, minlength=self.members)
            self._count -= np.bincount(lost // self._member_rows, minlength=self.members)
        self._valid[written] = False
        self._valid[emitted] = True
        return len(lost)

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
        Batch of batches · B rows (independent draws: distributed as `batches` calls; Batch.split(B)).
        K members: K · batches · B rows, member-major, member k's drawn from its generator as its buffer
        alone would (the same rows, k · N · slots further on)."""
        self._check_batch_size(batch_size)
        rows = batch_size * check_int("batches", batches, 1)
        return self._gather(np.concatenate([self._uniform_indices(k, rows) for k in range(self.members)]), None)

    def transitions(self) -> Batch:
        """Every sampleable transition, member by member and env by env in storage order, weights 1 (for
        inspection)."""
        return self._gather(np.flatnonzero(self._valid), None)

    def _uniform_indices(self, k: int, batch_size: int) -> np.ndarray:
        """Uniform over member k's sampleable rows: draw uniformly over its written rows, keep the valid
        ones in order (rejection sampling; usually one round, as nearly all written rows are valid)."""
        filled, count, rng = int(self._filled[k]), int(self._count[k]), self._rngs[k]
        first = k * self._member_rows
        valid = self._valid[first : first + self._member_rows]
        span = self.n_envs * filled
        picked = np.empty(0, dtype=np.int64)
        while len(picked) < batch_size:
            missing = batch_size - len(picked)
            draws = int(missing * span / count * 1.25) + 8
            candidates = (rng.random(draws) * span).astype(np.int64)
            if filled < self.slots:  # u ↦ row u mod filled of env u // filled
                candidates = (candidates // filled) * self.slots + candidates % filled
            picked = np.concatenate([picked, candidates[valid[candidates]]])
        return picked[:batch_size] + first

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
                members = f" × members={self.members}" if self.members > 1 else ""
                raise ValueError(f"{name} has shape {shape}; expected {expected} (n_envs={self.n_envs}{members})")

    def _check_batch_size(self, batch_size: int) -> None:
        """Per member: B ≤ max(capacity, its count) (n-step rings can hold a few more transitions than the
        capacity), and at least one transition held."""
        limit = max(self.capacity, int(self._count.min()))
        if not (is_int(batch_size) and 1 <= batch_size <= limit):
            held = "it holds" if self.members == 1 else "each member holds"
            raise ValueError(f"batch_size={batch_size!r} must be an integer in [1, {limit}] (at most the buffer's "
                             f"capacity or the transitions {held})")
        if not self._count.all():
            raise ValueError("the replay buffer holds no transition yet: nothing to sample" if self.members == 1 else
                             f"member {int(np.argmin(self._count))} of the replay buffer holds no transition yet: "
                             "nothing to sample")

    # ------------------------------------------------------------------ state
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "obs": self._obs, "actions": self._actions, "step_rewards": self._step_rewards,
            "returns": self._returns, "discounts": self._discounts, "next_rows": self._next_rows,
            "valid": self._valid, "pointer": self._pointer, "pending": self._pending,
        }  # fmt: skip

    def _settings(self) -> dict:
        return {"capacity": self.capacity, "n_envs": self.n_envs, "n_step": self.n_step, "gamma": self.gamma}

    def _member_arrays(self, k: int) -> dict[str, np.ndarray]:
        """Member k's slices of _arrays() (views; next_rows still numbered as the buffer's rows)."""
        self._check_member(k)
        rows = slice(k * self._member_rows, (k + 1) * self._member_rows)
        envs = slice(k * self.n_envs, (k + 1) * self.n_envs)
        return {name: array[envs if name in ("pointer", "pending") else rows] for name, array in self._arrays().items()}

    def _check_member(self, k: int) -> None:
        if not (is_int(k) and 0 <= k < self.members):
            raise ValueError(f"member={shown(k)} must be an integer in [0, {self.members - 1}] "
                             f"(this replay buffer has {self.members} member{'s' if self.members > 1 else ''})")

    def _one_member(self, what: str) -> None:
        if self.members != 1:
            raise ValueError(f"{what} of a replay buffer of {self.members} members: use member_state(k) / "
                             "load_member_state(k, state) for each member")

    def state_dict(self) -> dict:
        """A one-member buffer's state: member_state(0)."""
        self._one_member("state_dict()")
        return self.member_state(0)

    def load_state_dict(self, state: dict, n_actions: int | None = None) -> None:
        """A one-member buffer's restore: load_member_state(0, state, n_actions)."""
        self._one_member("load_state_dict()")
        self.load_member_state(0, state, n_actions)

    def member_state(self, k: int) -> dict:
        """Member k's storage, waiting n-step windows, counters and sampling RNG: exactly the state_dict of a
        buffer of that member alone (its rows, next_rows numbered from its first row), so a loaded copy
        samples the same batches. The storage tensors share memory with this buffer (save them before the
        next add); next_rows is a copy."""
        arrays = {name: torch.from_numpy(array) for name, array in self._member_arrays(k).items()}
        generator = self._rngs[k].bit_generator.state
        arrays["next_rows"] = arrays["next_rows"] - k * self._member_rows
        return {
            **self._settings(),
            **arrays,
            "count": int(self._count[k]),
            "filled": int(self._filled[k]),
            "rng_state": generator["state"]["state"],
            "rng_inc": generator["state"]["inc"],
            "rng_has_uint32": generator["has_uint32"],
            "rng_uinteger": generator["uinteger"],
        }

    def load_member_state(self, k: int, state: dict, n_actions: int | None = None) -> None:
        """Restore member k from a state_dict() of a one-member buffer built with the same settings (or a
        member_state), after checking all of it: shapes and dtypes, every pointer and row index in range,
        actions in [0, n_actions) when given, finite rewards, discounts in [0, 1], counts that agree with the
        stored rows. A bad state is a one-line ValueError and leaves this buffer unchanged."""
        member = self._member_arrays(k)
        stored, counters = check_replay_state(state, self._settings(), member, self.slots, n_actions)
        for name, array in member.items():
            np.copyto(array, stored[name])
        member["next_rows"] += k * self._member_rows
        self._count[k], self._filled[k] = counters["count"], counters["filled"]
        self._derive()
        self._rngs[k].bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": counters["rng_state"], "inc": counters["rng_inc"]},
            "has_uint32": counters["rng_has_uint32"],
            "uinteger": counters["rng_uinteger"],
        }
