"""Backpropagation of an output error ε into ∇_w for torch networks, with w one flat vector.

    w, grad = flatten_parameters(model)        # every parameter becomes a view of w, its .grad a view of grad
    net = backprop(model)                      # by hand for Dense stacks, else autograd
    q = net.forward(x)                         # ŷ, keeping what backward needs
    net.backward(eps)                          # grad ← Σ_i ε_iᵀ ∂ŷ_i/∂w   (ε = ∂L/∂ŷ, one row per input)

The lecture computes ∂L/∂w by backpropagating the output error ε^(2) = ∂L/∂ŷ through the layers
(approximators/mlp.py does it in numpy). `ByHand` does the same on torch tensors for an nn.Sequential
of nn.Linear layers and elementwise activations — the MLP Q-networks — one matrix product per term:

    forward     z^(l) = u^(l−1) W^(l)ᵀ + b^(l),   u^(l) = σ(z^(l)),   u^(0) = x
    backward    ∂L/∂z^(l) = ε^(l) σ'(z^(l))                     σ' read from u^(l) (table below)
                ∂L/∂W^(l) = (∂L/∂z^(l))ᵀ u^(l−1),   ∂L/∂b^(l) = Σ_i ∂L/∂z_i^(l)
                ε^(l−1) = ∂L/∂u^(l−1) = (∂L/∂z^(l)) W^(l)

It gives autograd's gradients (tests/test_backprop.py checks both, and the lecture's 2-2-1 example)
at a fraction of the per-update cost: for a 4-256-256-2 network at batch 64 on one CPU thread an
update of the DQN took 0.53 ms by hand (flat w) against 0.73 ms through autograd with fused Adam
over the per-layer tensors (BENCHMARKS.md, section 3, the floor). Any other module (convolutions,
dueling heads, a linear Q-table) goes through `Autograd`, which has the same two methods.

With the parameters in one flat w, the optimiser step and the gradient-norm clip are one kernel each,
and a target network's update w⁻ ← τ w + (1 − τ) w⁻ is one operation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

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
    parameters = list(model.parameters())
    if not parameters:
        raise ValueError(f"{type(model).__name__} has no parameters to flatten")
    first = parameters[0]
    w = torch.empty(sum(p.numel() for p in parameters), dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(w)
    offset = 0
    for p in parameters:
        n = p.numel()
        w[offset:offset + n].copy_(p.detach().reshape(-1))
        p.data = w[offset:offset + n].view_as(p)
        p.grad = grad[offset:offset + n].view_as(p)
        offset += n
    return w, grad


class Autograd:
    """Backpropagation by torch.autograd, for any module whose parameters' .grad are allocated.

    Like ByHand it writes into the .grad tensors found at construction (the views of ∇w), and points
    each parameter's .grad back at them before every backward (a model.zero_grad() sets them to None)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._parameters = list(model.parameters())
        self._grads = _allocated_grads(model)
        self._output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ = model(x); outside no_grad/inference_mode the graph is kept for backward."""
        self._output = self.model(x)
        return self._output.detach()

    def backward(self, eps: torch.Tensor) -> None:
        """∇w ← Σ_i ε_iᵀ ∂ŷ_i/∂w for the last forward (a vector-Jacobian product)."""
        for p, grad in zip(self._parameters, self._grads):
            p.grad = grad
        torch._foreach_zero_(self._grads)  # autograd adds into existing .grad in place
        self._output.backward(eps)
        self._output = None


class ByHand:
    """The lecture's forward and backward propagation for an nn.Sequential of nn.Linear layers and
    elementwise activations (module doc), writing ∂L/∂W, ∂L/∂b into each parameter's .grad."""

    def __init__(self, model: nn.Sequential) -> None:
        if not supports_by_hand(model):
            layers = ", ".join(type(m).__name__ for m in model) if isinstance(model, nn.Sequential) else type(model).__name__
            raise ValueError(f"ByHand needs an nn.Sequential of nn.Linear (first) and activations "
                             f"({', '.join(t.__name__ for t in _DERIVATIVES)}, slopes and α ≥ 0); got [{layers}]")
        _allocated_grads(model)
        # Per layer what forward and backward read, fetched once: for nn.Linear (W, Wᵀ, b, ∂L/∂W, ∂L/∂b) as
        # detached views of w and ∇w (in-place updates of w show through; no autograd graph is recorded),
        # for an activation the module itself.
        self.layers: list[tuple[torch.Tensor, ...] | nn.Module] = [
            (m.weight.detach(), m.weight.detach().t(), None if m.bias is None else m.bias.detach(),
             m.weight.grad, None if m.bias is None else m.bias.grad) if isinstance(m, nn.Linear) else m
            for m in model
        ]
        self._inputs: list[torch.Tensor] = []  # what each layer read in the last forward: u^(l−1), or z^(l)
        self._output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ for inputs x (rows); ReLU is applied in place (z is not needed: σ' is read from u)."""
        self._inputs = []
        for layer in self.layers:
            self._inputs.append(x)
            if isinstance(layer, tuple):  # z = u Wᵀ + b
                _, W_t, b, _, _ = layer
                x = x @ W_t if b is None else torch.addmm(b, x, W_t)
            elif isinstance(layer, nn.ReLU):
                x = x.relu_()
            else:
                x = layer(x)
        self._output = x
        return x

    def backward(self, eps: torch.Tensor) -> None:
        """∇w ← Σ_i ε_iᵀ ∂ŷ_i/∂w, ε = ∂L/∂ŷ of the last forward's rows, layer by layer from the output."""
        outputs = self._inputs[1:] + [self._output]  # u^(l): what each layer gave
        for l in reversed(range(len(self.layers))):
            layer = self.layers[l]
            if isinstance(layer, tuple):  # eps = ∂L/∂z^(l)
                W, _, b, grad_W, grad_b = layer
                torch.mm(eps.t(), self._inputs[l], out=grad_W)  # ∂L/∂W = (∂L/∂z)ᵀ u^(l−1)
                if b is not None:
                    torch.sum(eps, dim=0, out=grad_b)  # ∂L/∂b = Σ_i ∂L/∂z_i
                if l > 0:
                    eps = eps @ W  # ε^(l−1) = ∂L/∂u^(l−1) = (∂L/∂z) W
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


def backprop(model: nn.Module) -> ByHand | Autograd:
    """ByHand where it applies (module doc), else Autograd: one interface, forward(x) and backward(ε)."""
    return ByHand(model) if supports_by_hand(model) else Autograd(model)
