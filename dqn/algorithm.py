"""The DQN algorithm (Mnih et al., 2015) with Double DQN and n-step returns: acting, targets, the update,
the target update. No environment in here: dqn.agent runs the loop around it.

    algorithm = DQNAlgorithm(config, obs_shape, n_actions, device, seeds=[0, 1, 2])   # K = 3 members
    actions, _ = algorithm.act(obs, epsilon)       # A_t ~ ε-greedy(q̂(S_t, ·, w)), one row per env of every member
    algorithm.train(replay, beta)                  # gradient_steps updates on minibatches of the replay
    algorithm.update_target()                      # w⁻ ← τ w + (1 − τ) w⁻

One update on a minibatch (S_i, A_i, R_i, S'_i, γ_i), i = 1..B, with S'_i = S_{t+n}, R_i the n-step
return r^(n) and γ_i = γ^n (0 if the episode terminated within the n steps; a time-limit truncation keeps
γ^n, since its last state was not terminal):

    a*_i  = argmax_a q̂(S'_i, a, w)      Double DQN: the online net picks, the target net values
            (argmax_a q̂(S'_i, a, w⁻)    plain DQN)
    y_i   = R_i + γ_i q̂(S'_i, a*_i, w⁻)                   held fixed: a semi-gradient method
    δ_i   = y_i − q̂(S_i, A_i, w)
    L(w)  = Σ_i ω_i ℓ(δ_i) / B          ℓ(δ) = ½ δ² ("mse") or Huber; ω = importance weights (1: uniform)
    ε^(2) = ∂L/∂q̂(S_i, a, w) = −ω_i ℓ'(δ_i) / B for a = A_i, 0 for a ≠ A_i      the output error
    ∇L(w) = Σ_i ε^(2)_iᵀ ∂q̂(S_i, ·, w)/∂w                  backpropagated by approximators.backprop
    w     ← w − α ∇L(w)  (SGD; or Adam),  ∇L clipped to ‖∇L‖₂ ≤ max_grad_norm first

With a one-hot linear q̂, batch 1, n = 1, τ = 1 every step, ½ δ² and SGD this is tabular Q-learning,
Q(S, A) ← Q(S, A) + α δ.

Members. The algorithm holds K independent agents (a population, one per seed; one agent is K = 1), each
with its own q̂(·, w_k), q̂(·, w⁻_k), Adam moments and exploration generator, and runs every line above for
all of them at once: a minibatch is (K, B, …), member k's rows only ever meet member k's weights (batched
products: approximators.backprop), and ‖∇L‖, the clip, L and the statistics are per member. Adam is
elementwise, so one fused step over all members is each member's own step. Member k's arithmetic is the
arithmetic of the agent with its seed alone (tests/test_population.py checks it bit for bit).

w and w⁻ are one flat (K, |w|) tensor each (approximators.backprop.flatten_members), row k member k's: the
optimiser step, the clip and the target update are one operation each, and the modules' parameters are
views of them. That
is contained here: a deep copy gets views of its own w, a conversion that would give the parameters new
storage (`q.to(other device)`, `.double()`, …) and re-assigning `q` or `q_target` are refused with one
line. Change weights in place instead (`q.load_state_dict(…)`, `copy_`); pick the device with
config.device (DQN.load(path, device=…) moves a trained agent).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qapprox.approximators.backprop import backprop, flatten_members
from qapprox.approximators.networks import q_network
from qapprox.approximators.policies import epsilon_greedy
from qapprox.dqn.config import DQNConfig
from qapprox.dqn.replay import Batch, ReplayBuffer

ROUND_DRAW_BYTES = 32 * 2**20  # a training round samples its minibatches in draws of at most this many bytes of S, S'
GRADIENT_CLIP_GUARD = 1e-6  # in max_grad_norm / (‖∇L‖ + guard): no division by a zero gradient
STATS = ("loss", "Q-value", "gradient norm", "largest |Q-value|")  # what pop_stats gives per member, in order


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, Q-value or parameter."""


def refuse_assignment(owner: Any, module: nn.Module) -> None:
    raise AttributeError("the Q-networks cannot be re-assigned: their parameters are views of the flat w "
                         "(approximators.backprop); load weights in place: q.load_state_dict(other.state_dict())")


def one_member(name: str, members: list) -> Any:
    """The one member's object, or a one-line AttributeError for a population (which has K of them)."""
    if len(members) != 1:
        raise AttributeError(f"{name} is one agent's; this population has {len(members)} members: "
                             f"use {name}s[k] (or member_* methods) for member k")
    return members[0]


def by_member(batch: Batch, members: int) -> Batch:
    """A sampled Batch of K·R rows, member-major (dqn.replay), as (K, R, …) views."""
    return Batch(*(getattr(batch, f.name).view(members, -1, *getattr(batch, f.name).shape[1:])
                   for f in dataclasses.fields(batch)))


def split_members(batch: Batch, size: int) -> list[Batch]:
    """A (K, m·B, …) Batch as m consecutive (K, B, …) minibatches (views)."""
    if batch.actions.shape[1] <= size:
        return [batch]
    columns = [getattr(batch, f.name).split(size, dim=1) for f in dataclasses.fields(batch)]
    return [Batch(*parts) for parts in zip(*columns)]


class DQNAlgorithm:
    """q̂(·, w) and q̂(·, w⁻) from approximators.networks, their optimiser, and the DQN update (module doc),
    for K members (`seeds`, default [config.seed]): member k's network is initialised by torch.manual_seed(seeds[k])
    and explores with np.random.default_rng(seeds[k]), as the agent of that seed alone."""

    q = property(lambda self: one_member("q", self.qs), refuse_assignment, doc="the online network q̂(·, w) (one member)")
    q_target = property(lambda self: one_member("q_target", self.q_targets), refuse_assignment,
                        doc="the target network q̂(·, w⁻) (one member)")
    rng = property(lambda self: one_member("rng", self.rngs), doc="the exploration generator (one member)")

    def __init__(self, config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, device: torch.device,
                 seeds: Sequence[int] | None = None) -> None:
        self.config, self.n_actions, self.device = config, n_actions, device
        seeds = [config.seed] if seeds is None else list(seeds)
        self.members = len(seeds)
        self.rngs = [np.random.default_rng(seed) for seed in seeds]  # exploration: ε coin flips and random actions
        qs = []
        for seed in seeds:
            torch.manual_seed(seed)
            qs.append(q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation,
                                config.dueling).to(device))
        self._attach(qs, [copy.deepcopy(q).requires_grad_(False) for q in qs])
        self.optimizer = self._make_optimizer()
        self.updates = 0  # gradient steps taken by train() (every member takes each one)
        K = self.members
        self.alive = torch.ones(K, device=device)  # 0 for a member stopped after diverging: its gradients are 0
        self._stats = torch.zeros(K, 3, device=device)  # Σ loss, Σ mean q̂, Σ ‖∇‖ since the last pop_stats()
        self._q_max_abs = torch.zeros(K, device=device)  # max |q̂(S_i, a, w)| over those updates' minibatches
        self._stats_count = 0
        self._diverged: dict[int, str] = {}  # members found non-finite inside a training round (prioritized δ)

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, epsilon: float, values: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """A ~ ε-greedy(q̂(S, ·, w_k)) for a batch of observations S, K·N rows member-major (rows k·N … of
        member k, drawn from member k's generator), from one forward pass; with `values` also q̂(S, A, w_k)
        of the chosen actions. Without `values`, no forward pass at all when every row explores."""
        K = self.members
        shape = (K, len(obs) // K, self.n_actions)
        if not values:  # epsilon_greedy runs the forward pass only if some row acts greedily
            return epsilon_greedy(lambda: self.q_values(obs), epsilon, self.rngs, shape=shape).reshape(-1), None
        q = self.q_values(obs)
        actions = epsilon_greedy(q, epsilon, self.rngs)
        return actions.reshape(-1), np.take_along_axis(q, actions[..., None], axis=2).reshape(-1)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """q̂(S, ·, w_k) of K·N observations as a float (K, N, |A|) NumPy array: one forward pass, no gradient."""
        tensor = torch.from_numpy(obs)  # shares obs' memory on the CPU
        tensor = tensor.view(self.members, -1, *tensor.shape[1:])
        with torch.inference_mode():
            return self.online.forward(tensor.to(self.device, non_blocking=True)).float().cpu().numpy()

    # ------------------------------------------------------------------ the update
    def targets(self, batch: Batch) -> torch.Tensor:
        """y = R + γ_i q̂(S', a*, w⁻) of a (K, B) minibatch, with a* by Double DQN or DQN (module doc); no
        gradient. A batch without the member dimension is one member's."""
        batch, single = self._members_of(batch)
        with torch.no_grad():
            q_next_target = self.target.forward(batch.next_obs)  # q̂(S', ·, w⁻)
            if self.config.double_q:  # a* = argmax_a q̂(S', a, w)
                next_actions = self.online.forward(batch.next_obs).argmax(dim=2, keepdim=True)
            else:  # a* = argmax_a q̂(S', a, w⁻)
                next_actions = q_next_target.argmax(dim=2, keepdim=True)
            next_value = q_next_target.gather(2, next_actions).squeeze(2)  # q̂(S', a*, w⁻)
            y = batch.rewards + batch.discounts * next_value
        return y[0] if single else y

    def update(self, batch: Batch, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """One gradient step of every member on its (K, B) minibatch towards targets y (default
        `targets(batch)`), as the module doc. Returns per member (L, |δ|, mean q̂(S, A, w), ‖∇L‖₂,
        max_{i,a} |q̂(S_i, a, w)|), all on the device: shapes (K,), (K, B), (K,), (K,), (K,). A batch
        without the member dimension is one member's (and gives |δ| of shape (B,))."""
        batch, single = self._members_of(batch)
        y = self.targets(batch) if y is None else (y[None] if single else y)
        q = self.online.forward(batch.obs)  # q̂(S, ·, w), (K, B, |A|), kept for the backward pass
        actions = batch.actions.unsqueeze(2)
        q_taken = q.gather(2, actions).squeeze(2)  # q̂(S, A, w)
        delta = y - q_taken  # δ = y − q̂(S, A, w)
        losses, dloss = self.td_loss(delta)  # ℓ(δ), ℓ'(δ)
        B = delta.shape[1]
        weights = batch.weights / B if self.config.prioritized else 1.0 / B  # ω_i / B
        output_error = torch.zeros_like(q).scatter_(2, actions, (-weights * dloss).unsqueeze(2))  # ε^(2)
        self.online.backward(output_error)  # w.grad ← ∇L(w), one row per member
        grad_norm = torch.linalg.vector_norm(self.w.grad[:, :self.size], dim=1)  # ‖∇L‖₂ per member
        scale = self.alive  # a stopped member's gradient is 0: Adam's zeroed moments then keep its w
        if self.config.max_grad_norm:  # 0 = no clipping
            scale = scale * torch.clamp(self.config.max_grad_norm / (grad_norm + GRADIENT_CLIP_GUARD), max=1.0)
        if scale is not self.alive or self.members != int(self._alive_count):
            self.w.grad.mul_(scale.unsqueeze(1))
        self.optimizer.step()  # w ← w − α ∇L(w), or Adam's step
        loss = (weights * losses).sum(dim=1) if self.config.prioritized else losses.mean(dim=1)
        td_abs = delta.abs()
        return loss, td_abs[0] if single else td_abs, q_taken.mean(dim=1), grad_norm, q.detach().abs().amax(dim=(1, 2))

    def _members_of(self, batch: Batch) -> tuple[Batch, bool]:
        """(batch with a leading member dimension, whether it had none: one member's)."""
        if batch.actions.dim() == 2:
            return batch, False
        if self.members != 1:
            raise ValueError(f"a minibatch of shape {tuple(batch.actions.shape)} has no member dimension; "
                             f"this algorithm has {self.members} members: give (K, B) tensors")
        return Batch(*(getattr(batch, f.name).unsqueeze(0) for f in dataclasses.fields(batch))), True

    def td_loss(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ℓ(δ) and ℓ'(δ) per sample: "mse" ½ δ² and δ; "huber" ½ δ² and δ for |δ| ≤ 1, |δ| − ½ and sign δ
        beyond — both as c (δ − c/2) and c with c = clip(δ, −1, 1)."""
        if self.config.loss == "mse":
            return 0.5 * delta * delta, delta
        clipped = delta.clamp(-1.0, 1.0)
        return clipped * (delta - 0.5 * clipped), clipped

    def update_target(self) -> None:
        """w⁻ ← τ w + (1 − τ) w⁻ (Polyak); τ = 1 is the hard copy w⁻ ← w of Mnih et al."""
        with torch.no_grad():
            if self.config.tau == 1.0:
                self.w_target.copy_(self.w)
            else:
                self.w_target.lerp_(self.w, self.config.tau)
            for q, q_target in zip(self.qs, self.q_targets):
                for target_buffer, buffer in zip(q_target.buffers(), q.buffers()):
                    target_buffer.copy_(buffer)

    def train(self, replay: ReplayBuffer, beta: float) -> None:
        """A training round: gradient_steps updates of every member on minibatches of `replay` (K members:
        dqn.replay samples each member's from its own transitions); prioritized replay's p_i ← |δ_i|.

        Uniform replay draws all minibatches of the round at once (independent uniform draws: the same
        distribution). No update of the round changes w⁻, so DQN's targets for all of them come from one
        forward pass; Double DQN's a* = argmax_a q̂(S', a, w) moves with every update, so its targets are
        computed per minibatch, as are prioritized replay's samples (priorities change).
        """
        config, size, K = self.config, self.config.batch_size, self.members
        if config.prioritized:
            replay.set_beta(beta)
        # Minibatches per draw: all of the round, as far as their S and S' fit in ROUND_DRAW_BYTES (image stacks).
        obs_bytes = replay.obs_dtype.itemsize * math.prod(replay.obs_shape)
        at_once = 1 if config.prioritized else max(1, min(config.gradient_steps, ROUND_DRAW_BYTES // (2 * size * obs_bytes)))
        for first in range(0, config.gradient_steps, at_once):
            batch = by_member(replay.sample(size, batches=min(at_once, config.gradient_steps - first)), K)
            minibatches = split_members(batch, size)
            ys = [None] * len(minibatches) if config.double_q else self.targets(batch).split(size, dim=1)
            for minibatch, y in zip(minibatches, ys):
                loss, td_abs, q_mean, grad_norm, q_max_abs = self._update_step(minibatch, y)
                if config.prioritized:  # the sum-tree lives on the host: this syncs anyway, so check δ here
                    td_abs = td_abs.cpu()
                    finite = torch.isfinite(td_abs).all(dim=1)
                    if not finite.all():
                        td_abs = self._stop_non_finite(td_abs, finite)
                    replay.update_priorities(minibatch.indices.reshape(-1), td_abs.reshape(-1))
                self._stats += torch.stack((loss, q_mean, grad_norm), dim=1)  # on the device: no synchronisation
                torch.maximum(self._q_max_abs, q_max_abs, out=self._q_max_abs)
                self._stats_count += 1
                self.updates += 1

    @property
    def found_divergence(self) -> bool:
        """Did a training round find a member's |δ| non-finite (prioritized replay)? diverged() says which."""
        return bool(self._diverged)

    def _stop_non_finite(self, td_abs: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """Members whose |δ| is not finite (prioritized replay, inside a round) diverged: recorded for
        take_diverged(), stopped when others go on, their priorities given as 1 so the round continues."""
        for k in torch.nonzero(~finite).flatten().tolist():
            if self.alive[k] and k not in self._diverged:
                self._diverged[k] = "non-finite TD error"
        return torch.where(finite.unsqueeze(1), td_abs, torch.ones_like(td_abs))

    def pop_stats(self) -> np.ndarray | None:
        """(K, 4) means of (L, q̂(S, A, w), ‖∇L‖) over the updates since the last call, and the largest
        |q̂(S_i, a, w)| of their minibatches, per member (STATS); None if there were none. The one read of
        the device that training needs."""
        if not self._stats_count:
            return None
        stats = torch.cat((self._stats / self._stats_count, self._q_max_abs[:, None]), dim=1).cpu().numpy()
        self._stats.zero_()
        self._q_max_abs.zero_()
        self._stats_count = 0
        return stats

    def diverged(self, stats: np.ndarray | None = None) -> dict[int, str]:
        """The divergence guard: {member: what is non-finite} over the running members — the values of
        `stats` (pop_stats), any of its w, or what a training round found (then forgotten)."""
        found, self._diverged = self._diverged, {}
        bad_w = (~torch.isfinite(self.w).all(dim=1)).cpu().tolist()
        alive = self.alive.cpu().tolist()
        for k in range(self.members):
            if not alive[k]:
                continue
            bad = [name for name, value in zip(STATS, stats[k] if stats is not None else ()) if not math.isfinite(value)]
            if k in found:
                bad.append(found[k])
            if bad_w[k]:
                bad.append("parameter")
            if bad:
                found[k] = f"non-finite {', '.join(bad)}"
        return {k: found[k] for k in sorted(found) if alive[k]}

    def check_finite(self, loss: float, q_mean: float, grad_norm: float, q_max_abs: float = 0.0) -> None:
        """The guard for one member: DivergenceError naming what is non-finite — these values or any of w."""
        stats = np.array([[loss, q_mean, grad_norm, q_max_abs]] * self.members)
        bad = self.diverged(stats)
        if bad:
            raise DivergenceError(bad[min(bad)])

    def stop(self, member: int) -> None:
        """Stop a member (it diverged): w_k, w⁻_k and its Adam moments become 0 and its gradients are 0 from
        now on, so its rows stay finite and the other members run on unchanged."""
        with torch.no_grad():
            self.alive[member] = 0.0
            self.w[member].zero_()
            self.w.grad[member].zero_()  # its padding too, which a non-finite clip factor made NaN
            self.w_target[member].zero_()
            for state in self.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value) and value.dim() == 2:
                        value[member].zero_()
        self._alive_count -= 1

    # ------------------------------------------------------------------ state
    def state_dict(self, member: int = 0) -> dict[str, Any]:
        """Member k's networks' and optimiser's state dicts (checkpoint entries q, q_target, optimizer): what
        the agent of its seed alone would save."""
        size, step = self.size, {}
        for index, state in self.optimizer.state_dict()["state"].items():
            step[index] = {name: value[member, :size].clone() if torch.is_tensor(value) and value.dim() == 2 else value
                           for name, value in state.items()}
        return {"q": self.qs[member].state_dict(), "q_target": self.q_targets[member].state_dict(), "optimizer": step}

    def load_state_dict(self, q: dict[str, torch.Tensor], q_target: dict[str, torch.Tensor],
                        optimizer_state: dict[int, dict[str, torch.Tensor]], member: int = 0) -> None:
        """Member k's weights copied into its rows of w and w⁻ (in place); its optimiser state (Adam's
        moments into its rows; the step count is shared by all members, which update together)."""
        self.qs[member].load_state_dict(q)
        self.q_targets[member].load_state_dict(q_target)
        current = self.optimizer.state_dict()
        state = {}
        for index, entry in optimizer_state.items():
            state[index] = {}
            for name, value in entry.items():
                if torch.is_tensor(value) and value.dim() == 1:  # a moment of w_k: into row k of the (K, |w|) moment
                    now = current["state"].get(index, {}).get(name)
                    rows = now.clone() if now is not None else torch.zeros(self.w.shape, dtype=value.dtype)
                    rows[member, :len(value)] = value
                    value = rows
                state[index][name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})

    def __deepcopy__(self, memo: dict) -> DQNAlgorithm:
        """A deep copy whose parameters are views of its own w and w⁻ (torch copies each parameter on its own)."""
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        derived = {"w", "w_target", "online", "target", "_update_step", "optimizer"}  # rebuilt by _attach
        for name, value in self.__dict__.items():
            if name not in derived:
                setattr(clone, name, copy.deepcopy(value, memo))
        clone._attach(clone.qs, clone.q_targets)
        clone.optimizer = clone._make_optimizer()
        clone.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict(), memo))
        return clone

    def _attach(self, qs: list[nn.Module], q_targets: list[nn.Module]) -> None:
        """w and w⁻ as (K, |w|) tensors, the modules' parameters views of their rows, ∇L(w) in w.grad;
        forward(x) and backward(ε^(2)) by hand for MLPs (the lecture's backprop), by autograd otherwise."""
        self.qs, self.q_targets = qs, q_targets
        self.size = sum(p.numel() for p in qs[0].parameters())  # |w|; a row of w may end in padding (zeros)
        w, grad = flatten_members(qs)
        self.w = torch.nn.Parameter(w)
        self.w.grad = grad
        self.w_target = flatten_members(q_targets)[0]
        for q in qs:
            _PinnedApply.install(q, self.w)
        for q_target in q_targets:
            _PinnedApply.install(q_target, self.w_target)
        self.online, self.target = backprop(qs, self.w), backprop(q_targets, self.w_target)
        self._alive_count = int(self.alive.sum()) if hasattr(self, "alive") else len(qs)
        self._update_step = torch.compile(self.update) if self.config.compile else self.update

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """Adam on the flat w, fused into one kernel where torch supports it (else foreach), or plain SGD."""
        lr = self.config.learning_rate
        if self.config.optimizer == "sgd":
            return torch.optim.SGD([self.w], lr=lr)
        try:
            return torch.optim.Adam([self.w], lr=lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam([self.w], lr=lr, foreach=True)


class _PinnedApply:
    """Stands in for a module's `_apply` (which .to(), .cuda(), .double(), … call) while the network's
    parameters are views of the flat w: a conversion that would give any of them new storage is refused
    before anything changes; one that returns every tensor as it is (.to() the device it is on) goes
    through. A deep copy of the module alone (parameters of its own, no longer views) converts freely."""

    def __init__(self, module: nn.Module, w: torch.Tensor) -> None:
        self.module, self.w = module, w

    @classmethod
    def install(cls, network: nn.Module, w: torch.Tensor) -> None:
        for module in network.modules():
            module._apply = cls(module, w)  # an instance attribute: found before the class's _apply

    def __call__(self, fn, recurse: bool = True) -> nn.Module:
        storage = self.w.untyped_storage().data_ptr()
        parameters = list(self.module.parameters())
        if any(p.untyped_storage().data_ptr() == storage for p in parameters) and \
                any(fn(t) is not t for t in (*parameters, *self.module.buffers())):
            raise RuntimeError("the Q-network's parameters are views of the DQN's flat w: moving or converting "
                               "the network (.to(), .cuda(), .double(), …) would detach them; set the device with "
                               "config.device (DQN.load(path, device=…) for a trained agent)")
        return type(self.module)._apply(self.module, fn, recurse)
