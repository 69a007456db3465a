"""Backpropagation of an output error ε into ∇_w for torch networks, with w one flat vector.

    w, grad = flatten_parameters(model)        # every parameter becomes a view of w, its .grad a view of grad
    net = backprop(model)                      # by hand for Dense stacks, else autograd
    q = net.forward(x)                         # ŷ, keeping what backward needs
    net.backward(eps)                          # grad ← Σ_i ε_iᵀ ∂ŷ_i/∂w   (ε = ∂L/∂ŷ, one row per input)

    w, grad = flatten_members(models)          # K networks of one architecture: w is (K, |w|), row k network k's
    net = backprop(models, w)                  # the same two methods on a leading member dimension:
    q = net.forward(x)                         # x (K, B, …) → ŷ (K, B, …), member k through network k

The lecture computes ∂L/∂w by backpropagating the output error ε^(2) = ∂L/∂ŷ through the layers
(approximators/mlp.py does it in numpy). `ByHand` does the same on torch tensors for an nn.Sequential
of nn.Linear layers and elementwise activations — the MLP Q-networks — one matrix product per term:

    forward     z^(l) = u^(l−1) W^(l)ᵀ + b^(l),   u^(l) = σ(z^(l)),   u^(0) = x
    backward    ∂L/∂z^(l) = ε^(l) σ'(z^(l))                     σ' read from u^(l) (table below)
                ∂L/∂W^(l) = (∂L/∂z^(l))ᵀ u^(l−1),   ∂L/∂b^(l) = Σ_i ∂L/∂z_i^(l)
                ε^(l−1) = ∂L/∂u^(l−1) = (∂L/∂z^(l)) W^(l)

It gives autograd's gradients (tests/test_backprop.py checks both, and the lecture's 2-2-1 example)
at a fraction of autograd's per-update cost on small networks (BENCHMARKS.md, section 3, the floor,
measures both side by side). Any other module (convolutions,
dueling heads, a linear Q-table) goes through `Autograd`, which has the same two methods.

With the parameters in one flat w, the optimiser step and the gradient-norm clip are one kernel each,
and a target network's update w⁻ ← τ w + (1 − τ) w⁻ is one operation.

Members. K networks of one architecture (a population of agents, one per seed) keep their weights as the
rows of one (K, |w|) tensor. ByHand then runs every term above as a batched product over the members
(`torch.baddbmm`, `torch.bmm`: W^(l) of all members is one (K, out, in) view of w), and Autograd vmaps the
module over the stacked weights (`torch.func.vmap` of `torch.func.functional_call`). A batched product
computes each member's matrix product as the unbatched one does, so member k's forward and backward
equal those of network k alone (tests/test_backprop.py checks it bit for bit); one network is K = 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ROW_ALIGNMENT = 16  # elements: a member's row of w starts on a 64-byte boundary in float32 (flatten_members)

# σ'(z) from u = σ(z), for the activations a Dense layer may have (approximators.networks.ACTIVATIONS),
# in u's dtype. relu, leaky_relu and elu (slope, α ≥ 0: supports_by_hand) are positive exactly where
# z > 0; the derivative at the kink z = 0 is autograd's (relu 0, leaky_relu its slope, elu α).
_DERIVATIVES: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor | float]] = {
    nn.ReLU: lambda module, u: u.sign(),  # u ≥ 0: 1 where u > 0, else 0 (a float tensor: cheaper than u > 0)
    nn.LeakyReLU: lambda module, u: torch.ones_like(u).masked_fill_(u <= 0, module.negative_slope),
    nn.ELU: lambda module, u: torch.where(u > 0, 1.0, u + module.alpha),  # σ' = α eᶻ = σ(z) + α for z ≤ 0
    nn.Tanh: lambda module, u: 1.0 - u * u,
    nn.Sigmoid: lambda module, u: u * (1.0 - u),
    nn.Identity: lambda module, u: 1.0,
}


def flatten_parameters(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every parameter of `model` into one contiguous vector w, and its gradient into one vector ∇w.

    Each parameter becomes a view of w (its values kept) and its .grad a view of ∇w, so that the
    module works as before while an optimiser, a norm or a copy can treat all weights as one tensor.
    Call it after moving the model to its device (.to() would replace the views).
    """
    w, grad = flatten_members([model])
    size = sum(p.numel() for p in model.parameters())
    return w[0, :size], grad[0, :size]


def flatten_members(models: Sequence[nn.Module]) -> tuple[torch.Tensor, torch.Tensor]:
    """flatten_parameters for K models of one architecture: w and ∇w are (K, R), row k holding model k's
    parameters (in model.parameters() order) and gradients in its first |w| entries, each parameter a view
    of its row. R is |w| rounded up to ROW_ALIGNMENT elements (the rest stays 0, gradient 0): every row
    starts as aligned as a single network's w, so that the vectorised kernels take the same path for
    member k as for that network alone (at small shapes an unaligned start can change the rounding)."""
    models = list(models)
    if not models:
        raise ValueError("flatten_members needs at least one model")
    parameters = [list(model.parameters()) for model in models]
    if not parameters[0]:
        raise ValueError(f"{type(models[0]).__name__} has no parameters to flatten")
    shapes = [[p.shape for p in member] for member in parameters]
    if any(member != shapes[0] for member in shapes):
        raise ValueError("flatten_members needs models of one architecture: their parameter shapes differ")
    first = parameters[0][0]
    size = sum(p.numel() for p in parameters[0])
    row = -(-size // ROW_ALIGNMENT) * ROW_ALIGNMENT
    w = torch.zeros(len(models), row, dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(w)
    for k, member in enumerate(parameters):
        offset = 0
        for p in member:
            n = p.numel()
            w[k, offset:offset + n].copy_(p.detach().reshape(-1))
            p.data = w[k, offset:offset + n].view_as(p)
            p.grad = grad[k, offset:offset + n].view_as(p)
            offset += n
    return w, grad


def stacked(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One (K, *shape) view of K equally shaped tensors that are views of the rows of one (K, |w|) tensor
    (flatten_members' parameters or gradients); the tensors of one network give a (1, *shape) view."""
    first = tensors[0]
    step = tensors[1].storage_offset() - first.storage_offset() if len(tensors) > 1 else first.numel()
    same = all(t.shape == first.shape and t.stride() == first.stride() and
               t.untyped_storage().data_ptr() == first.untyped_storage().data_ptr() and
               t.storage_offset() == first.storage_offset() + k * step for k, t in enumerate(tensors))
    if not same:
        raise ValueError("the members' parameters are not rows of one tensor: flatten_members(models) first")
    return first.as_strided((len(tensors), *first.shape), (step, *first.stride()), first.storage_offset())


class Autograd:
    """Backpropagation by torch.autograd, for any module whose parameters' .grad are allocated.

    Like ByHand it writes into the .grad tensors found at construction (the views of ∇w), and points
    each parameter's .grad back at them before every backward (a model.zero_grad() sets them to None).

    Given K models of one architecture and their (K, |w|) parameter `w` (flatten_members), forward(x) takes
    x of shape (K, B, …) and runs member k's rows through model k's weights: torch.func.vmap of
    torch.func.functional_call over the rows of w (the first model lends its structure and buffers),
    and backward writes ∇w into w.grad, (K, |w|)."""

    def __init__(self, model: nn.Module | Sequence[nn.Module], w: torch.Tensor | None = None) -> None:
        self.members = None if isinstance(model, nn.Module) else len(model)
        self.model = model if self.members is None else model[0]
        if self.members is None:
            self._parameters = list(self.model.parameters())
            self._grads = _allocated_grads(self.model)
        else:
            if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] != self.members:
                raise ValueError("Autograd over members needs their (K, |w|) parameter w (flatten_members)")
            self._w, self._grads = w, [] if w.grad is None else [w.grad]  # none: forward only (a target network)
            self._layout, offset = [], 0  # (name, offset, shape) of each parameter in a row of w
            for name, p in self.model.named_parameters():
                self._layout.append((name, offset, p.shape))
                offset += p.numel()
            self._buffers = dict(self.model.named_buffers())
            self._batched = torch.func.vmap(self._member_forward)
        self._output: torch.Tensor | None = None

    def _member_forward(self, parameters: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.model, (parameters, self._buffers), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ = model(x) (members: ŷ_k = model(x_k; w_k)); outside no_grad/inference_mode the graph is kept
        for backward."""
        if self.members is None:
            self._output = self.model(x)
        else:
            K = self.members
            parameters = {name: self._w[:, offset:offset + shape.numel()].view(K, *shape)
                          for name, offset, shape in self._layout}
            self._output = self._batched(parameters, x)
        return self._output.detach()

    def backward(self, eps: torch.Tensor) -> None:
        """∇w ← Σ_i ε_iᵀ ∂ŷ_i/∂w for the last forward (a vector-Jacobian product)."""
        if self.members is None:
            for p, grad in zip(self._parameters, self._grads):
                p.grad = grad
        elif not self._grads:
            raise ValueError("this network has no gradient to write (its w has no .grad: a target network)")
        else:
            self._w.grad = self._grads[0]
        torch._foreach_zero_(self._grads)  # autograd adds into existing .grad in place
        self._output.backward(eps)
        self._output = None


class ByHand:
    """The lecture's forward and backward propagation for an nn.Sequential of nn.Linear layers and
    elementwise activations (module doc), writing ∂L/∂W, ∂L/∂b into each parameter's .grad.

    Given K such models of one architecture whose parameters are the rows of one tensor (flatten_members),
    x is (K, B, in) and member k's rows go through model k: every product is batched over the members."""

    def __init__(self, model: nn.Sequential | Sequence[nn.Sequential]) -> None:
        self.members = None if isinstance(model, nn.Module) else len(model)
        models = [model] if self.members is None else list(model)
        if not supports_by_hand(models[0]):
            first = models[0]
            layers = ", ".join(type(m).__name__ for m in first) if isinstance(first, nn.Sequential) else type(first).__name__
            raise ValueError(f"ByHand needs an nn.Sequential of nn.Linear (first) and activations "
                             f"({', '.join(t.__name__ for t in _DERIVATIVES)}, slopes and α ≥ 0); got [{layers}]")
        for member in models:
            _allocated_grads(member)
        # Per layer what forward and backward read, fetched once: for nn.Linear (W, Wᵀ, b, ∂L/∂W, ∂L/∂b) as
        # detached (K, …) views of w and ∇w (in-place updates of w show through; no autograd graph is
        # recorded; b as (K, 1, out) to broadcast over the rows), for an activation the module itself.
        self.layers: list[tuple[torch.Tensor | None, ...] | nn.Module] = []
        for l, m in enumerate(models[0]):
            if not isinstance(m, nn.Linear):
                self.layers.append(m)
                continue
            W = stacked([member[l].weight.detach() for member in models])
            b = None if m.bias is None else stacked([member[l].bias.detach() for member in models])
            self.layers.append((W, W.transpose(1, 2), None if b is None else b.unsqueeze(1),
                                stacked([member[l].weight.grad for member in models]),
                                None if b is None else stacked([member[l].bias.grad for member in models])))
        self._inputs: list[torch.Tensor] = []  # what each layer read in the last forward: u^(l−1), or z^(l)
        self._output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ for inputs x (rows; members: (K, B, in)); ReLU is applied in place (z is not needed: σ' is
        read from u)."""
        self._inputs = []
        x = x.unsqueeze(0) if self.members is None else x
        for layer in self.layers:
            self._inputs.append(x)
            if isinstance(layer, tuple):  # z = u Wᵀ + b
                _, W_t, b, _, _ = layer
                x = torch.bmm(x, W_t) if b is None else torch.baddbmm(b, x, W_t)
            elif isinstance(layer, nn.ReLU):
                x = x.relu_()
            else:
                x = layer(x)
        self._output = x
        return x[0] if self.members is None else x

    def backward(self, eps: torch.Tensor) -> None:
        """∇w ← Σ_i ε_iᵀ ∂ŷ_i/∂w, ε = ∂L/∂ŷ of the last forward's rows, layer by layer from the output."""
        eps = eps.unsqueeze(0) if self.members is None else eps
        outputs = self._inputs[1:] + [self._output]  # u^(l): what each layer gave
        for l in reversed(range(len(self.layers))):
            layer = self.layers[l]
            if isinstance(layer, tuple):  # eps = ∂L/∂z^(l)
                W, _, b, grad_W, grad_b = layer
                torch.bmm(eps.transpose(1, 2), self._inputs[l], out=grad_W)  # ∂L/∂W = (∂L/∂z)ᵀ u^(l−1)
                if b is not None:
                    torch.sum(eps, dim=1, out=grad_b)  # ∂L/∂b = Σ_i ∂L/∂z_i
                if l > 0:
                    eps = torch.bmm(eps, W)  # ε^(l−1) = ∂L/∂u^(l−1) = (∂L/∂z) W
            else:  # ∂L/∂z = ε σ'(z), σ' from u = σ(z)
                eps = eps * _DERIVATIVES[type(layer)](layer, outputs[l])
        self._inputs, self._output = [], None


def _allocated_grads(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter's .grad, which backward writes into; a missing one is a ValueError."""
    grads = [p.grad for p in model.parameters()]
    if any(g is None for g in grads):
        raise ValueError("allocate every parameter's .grad first (flatten_parameters does)")
    return grads


def supports_by_hand(model: nn.Module) -> bool:
    """Is `model` an nn.Sequential of nn.Linear layers and the activations ByHand differentiates?
    (A negative leaky slope or ELU α would make u > 0 differ from z > 0: those go to Autograd.)"""
    return (isinstance(model, nn.Sequential) and len(model) > 0 and isinstance(model[0], nn.Linear)
            and all(isinstance(m, nn.Linear) or type(m) in _DERIVATIVES for m in model)
            and all(getattr(m, "negative_slope", 0.0) >= 0 and getattr(m, "alpha", 0.0) >= 0 for m in model))


def backprop(model: nn.Module | Sequence[nn.Module], w: torch.Tensor | None = None) -> ByHand | Autograd:
    """ByHand where it applies (module doc), else Autograd: one interface, forward(x) and backward(ε).
    For K models of one architecture (flatten_members), Autograd needs their (K, |w|) parameter `w`."""
    first = model if isinstance(model, nn.Module) else model[0]
    if supports_by_hand(first):
        return ByHand(model)
    return Autograd(model) if isinstance(model, nn.Module) else Autograd(model, w)
