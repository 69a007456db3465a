"""The DQN algorithm (Mnih et al., 2015) with Double DQN and n-step returns: acting, targets, the update,
the target update. No environment in here: dqn.agent runs the loop around it.

    algorithm = DQNAlgorithm(config, obs_shape, n_actions, device)
    actions, _ = algorithm.act(obs, epsilon)       # A_t ~ ε-greedy(q̂(S_t, ·, w)), one row per env
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

w and w⁻ are one flat vector each (approximators.backprop.flatten_parameters): the optimiser step, the
clip and the target update are one operation each, and the modules' parameters are views of them. That
is contained here: a deep copy gets views of its own w, a conversion that would give the parameters new
storage (`q.to(other device)`, `.double()`, …) and re-assigning `q` or `q_target` are refused with one
line. Change weights in place instead (`q.load_state_dict(…)`, `copy_`); pick the device with
config.device (DQN.load(path, device=…) moves a trained agent).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from qapprox.approximators.backprop import backprop, flatten_parameters
from qapprox.approximators.networks import q_network
from qapprox.approximators.policies import epsilon_greedy
from qapprox.dqn.config import DQNConfig
from qapprox.dqn.replay import Batch, ReplayBuffer

ROUND_DRAW_BYTES = 32 * 2**20  # a training round samples its minibatches in draws of at most this many bytes of S, S'
GRADIENT_CLIP_GUARD = 1e-6  # in max_grad_norm / (‖∇L‖ + guard): no division by a zero gradient


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, Q-value or parameter."""


def refuse_assignment(owner: Any, module: nn.Module) -> None:
    raise AttributeError("the Q-networks cannot be re-assigned: their parameters are views of the flat w "
                         "(approximators.backprop); load weights in place: q.load_state_dict(other.state_dict())")


class DQNAlgorithm:
    """q̂(·, w) and q̂(·, w⁻) from approximators.networks, their optimiser, and the DQN update (module doc)."""

    q = property(lambda self: self._q, refuse_assignment, doc="the online network q̂(·, w)")
    q_target = property(lambda self: self._q_target, refuse_assignment, doc="the target network q̂(·, w⁻)")

    def __init__(self, config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, device: torch.device) -> None:
        self.config, self.n_actions, self.device = config, n_actions, device
        self.rng = np.random.default_rng(config.seed)  # exploration: ε coin flips and random actions
        q = q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation,
                      config.dueling).to(device)
        self._attach(q, copy.deepcopy(q).requires_grad_(False))
        self.optimizer = self._make_optimizer()
        self.updates = 0  # gradient steps taken by train()
        self._stats = torch.zeros(3, device=device)  # Σ loss, Σ mean q̂, Σ ‖∇‖ since the last pop_stats()
        self._q_max_abs = torch.zeros((), device=device)  # max |q̂(S_i, a, w)| over those updates' minibatches
        self._stats_count = 0

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, epsilon: float, values: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """A ~ ε-greedy(q̂(S, ·, w)) for a batch of observations S (approximators.policies), from one forward
        pass; with `values` also q̂(S, A, w) of the chosen actions. Without `values`, no forward pass at
        all when every row explores."""
        if not values:  # epsilon_greedy runs the forward pass only if some row acts greedily
            actions = epsilon_greedy(lambda: self._q_values(obs), epsilon, self.rng, shape=(len(obs), self.n_actions))
            return actions, None
        q = self._q_values(obs)
        actions = epsilon_greedy(q, epsilon, self.rng)
        return actions, q[np.arange(len(obs)), actions]

    def _q_values(self, obs: np.ndarray) -> np.ndarray:
        """q̂(S, ·, w) of a batch of observations as a float NumPy array: one forward pass, no gradient."""
        tensor = torch.from_numpy(obs)  # shares obs' memory on the CPU
        with torch.inference_mode():
            return self.online.forward(tensor.to(self.device, non_blocking=True)).float().cpu().numpy()

    # ------------------------------------------------------------------ the update
    def targets(self, batch: Batch) -> torch.Tensor:
        """y = R + γ_i q̂(S', a*, w⁻) of a minibatch, with a* by Double DQN or DQN (module doc); no gradient."""
        with torch.no_grad():
            q_next_target = self.target.forward(batch.next_obs)  # q̂(S', ·, w⁻)
            if self.config.double_q:  # a* = argmax_a q̂(S', a, w)
                next_actions = self.online.forward(batch.next_obs).argmax(dim=1, keepdim=True)
            else:  # a* = argmax_a q̂(S', a, w⁻)
                next_actions = q_next_target.argmax(dim=1, keepdim=True)
            next_value = q_next_target.gather(1, next_actions).squeeze(1)  # q̂(S', a*, w⁻)
            return batch.rewards + batch.discounts * next_value

    def update(self, batch: Batch, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """One gradient step on a minibatch towards targets y (default `targets(batch)`), as the module doc.
        Returns (L, |δ|, mean q̂(S, A, w), ‖∇L‖₂, max_{i,a} |q̂(S_i, a, w)|), all on the device."""
        y = self.targets(batch) if y is None else y
        q = self.online.forward(batch.obs)  # q̂(S, ·, w), kept for the backward pass
        actions = batch.actions.unsqueeze(1)
        q_taken = q.gather(1, actions).squeeze(1)  # q̂(S, A, w)
        delta = y - q_taken  # δ = y − q̂(S, A, w)
        losses, dloss = self.td_loss(delta)  # ℓ(δ), ℓ'(δ)
        weights = batch.weights / len(delta) if self.config.prioritized else 1.0 / len(delta)  # ω_i / B
        output_error = torch.zeros_like(q).scatter_(1, actions, (-weights * dloss).unsqueeze(1))  # ε^(2)
        self.online.backward(output_error)  # w.grad ← ∇L(w)
        grad_norm = torch.linalg.vector_norm(self.w.grad)  # ‖∇L‖₂
        if self.config.max_grad_norm:  # 0 = no clipping
            self.w.grad.mul_(torch.clamp(self.config.max_grad_norm / (grad_norm + GRADIENT_CLIP_GUARD), max=1.0))
        self.optimizer.step()  # w ← w − α ∇L(w), or Adam's step
        loss = (weights * losses).sum() if self.config.prioritized else losses.mean()
        return loss, delta.abs(), q_taken.mean(), grad_norm, q.detach().abs().max()

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
            for target_buffer, buffer in zip(self._q_target.buffers(), self._q.buffers()):
                target_buffer.copy_(buffer)

    def train(self, replay: ReplayBuffer, beta: float) -> None:
        """A training round: gradient_steps updates on minibatches of `replay`; prioritized replay's p_i ← |δ_i|.

        Uniform replay draws all minibatches of the round at once (independent uniform draws: the same
        distribution). No update of the round changes w⁻, so DQN's targets for all of them come from one
        forward pass; Double DQN's a* = argmax_a q̂(S', a, w) moves with every update, so its targets are
        computed per minibatch, as are prioritized replay's samples (priorities change).
        """
        config, size = self.config, self.config.batch_size
        if config.prioritized:
            replay.set_beta(beta)
        # Minibatches per draw: all of the round, as far as their S and S' fit in ROUND_DRAW_BYTES (image stacks).
        obs_bytes = replay.obs_dtype.itemsize * math.prod(replay.obs_shape)
        at_once = 1 if config.prioritized else max(1, min(config.gradient_steps, ROUND_DRAW_BYTES // (2 * size * obs_bytes)))
        for first in range(0, config.gradient_steps, at_once):
            batch = replay.sample(size, batches=min(at_once, config.gradient_steps - first))
            minibatches = batch.split(size)
            ys = [None] * len(minibatches) if config.double_q else self.targets(batch).split(size)
            for minibatch, y in zip(minibatches, ys):
                loss, td_abs, q_mean, grad_norm, q_max_abs = self._update_step(minibatch, y)
                if config.prioritized:  # the sum-tree lives on the host: this syncs anyway, so check δ here
                    td_abs = td_abs.cpu()
                    if not torch.isfinite(td_abs).all():
                        self.check_finite(math.nan, q_mean.item(), grad_norm.item())
                    replay.update_priorities(minibatch.indices, td_abs)
                self._stats += torch.stack((loss, q_mean, grad_norm))  # on the device: no synchronisation here
                torch.maximum(self._q_max_abs, q_max_abs, out=self._q_max_abs)
                self._stats_count += 1
                self.updates += 1

    def pop_stats(self) -> tuple[float, float, float, float] | None:
        """Means of (L, q̂(S, A, w), ‖∇L‖) over the updates since the last call, and the largest |q̂(S_i, a, w)|
        of their minibatches; None if there were none. The one read of the device that training needs.
        Non-finite values are a DivergenceError."""
        if not self._stats_count:
            return None
        loss, q_mean, grad_norm, q_max_abs = torch.cat((self._stats / self._stats_count, self._q_max_abs[None])).tolist()
        self.check_finite(loss, q_mean, grad_norm, q_max_abs)
        self._stats.zero_()
        self._q_max_abs.zero_()
        self._stats_count = 0
        return loss, q_mean, grad_norm, q_max_abs

    def check_finite(self, loss: float, q_mean: float, grad_norm: float, q_max_abs: float = 0.0) -> None:
        """Divergence guard: DivergenceError naming what is non-finite — these values or any of w."""
        values = (("loss", loss), ("Q-value", q_mean), ("gradient norm", grad_norm), ("largest |Q-value|", q_max_abs))
        bad = [name for name, value in values if not math.isfinite(value)]
        if not torch.isfinite(self.w).all():
            bad.append("parameter")
        if bad:
            raise DivergenceError(f"non-finite {', '.join(bad)}")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The networks' and the optimiser's state dicts (checkpoint entries q, q_target, optimizer)."""
        return {"q": self._q.state_dict(), "q_target": self._q_target.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, q: dict[str, torch.Tensor], q_target: dict[str, torch.Tensor],
                        optimizer_state: dict[int, dict[str, torch.Tensor]]) -> None:
        """Weights copied into w and w⁻ (in place); the optimiser's state, its hyper-parameters kept."""
        self._q.load_state_dict(q)
        self._q_target.load_state_dict(q_target)
        self.optimizer.load_state_dict({"state": optimizer_state, "param_groups": self.optimizer.state_dict()["param_groups"]})

    def __deepcopy__(self, memo: dict) -> DQNAlgorithm:
        """A deep copy whose parameters are views of its own w and w⁻ (torch copies each parameter on its own)."""
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        derived = {"w", "w_target", "online", "target", "_update_step", "optimizer"}  # rebuilt by _attach
        for name, value in self.__dict__.items():
            if name not in derived:
                setattr(clone, name, copy.deepcopy(value, memo))
        clone._attach(clone._q, clone._q_target)
        clone.optimizer = clone._make_optimizer()
        clone.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict(), memo))
        return clone

    def _attach(self, q: nn.Module, q_target: nn.Module) -> None:
        """w and w⁻ flat, the modules' parameters views of them, ∇L(w) in w.grad; forward(x) and
        backward(ε^(2)) by hand for MLPs (the lecture's backprop), by autograd otherwise."""
        self._q, self._q_target = q, q_target
        w, grad = flatten_parameters(q)
        self.w = torch.nn.Parameter(w)
        self.w.grad = grad
        self.w_target = flatten_parameters(q_target)[0]
        _PinnedApply.install(q, self.w)
        _PinnedApply.install(q_target, self.w_target)
        self.online, self.target = backprop(q), backprop(q_target)
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
