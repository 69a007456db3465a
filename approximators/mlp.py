"""The lecture's neural network in numpy: forward propagation and backpropagation, by hand.

One hidden layer of H neurons, n inputs, M outputs (the lecture's network):

    z_h^(1) = Σ_{j=0..n} w_jh^(1) x_j    with x_0 = 1,     u_h = σ^(1)(z_h^(1)),     h = 1..H
    z_m^(2) = Σ_{h=0..H} w_hm^(2) u_h    with u_0 = 1,     ŷ_m = σ^(2)(z_m^(2)),     m = 1..M

The weights are the lecture's matrices: W^(1) has rows j = 0..n and columns h = 1..H, row 0
holding the biases w_0h^(1) (because x_0 = 1); W^(2) has rows h = 0..H and columns m = 1..M.
With observations as rows, z^(1) = [1, x] W^(1) and z^(2) = [1, u] W^(2). More hidden layers
repeat the hidden one: z^(l) = [1, u^(l−1)] W^(l), u^(0) = x.

Backpropagation computes the lecture's errors and from them every ∂L/∂w:

    ε^(2)   = ∂L/∂ŷ                                         (from the loss, see losses.py)
    ∂L/∂z^(2) = ε^(2) f'(z^(2))                              (softmax: its Jacobian times ε^(2))
    ∂L/∂w_hm^(2) = ∂L/∂z_m^(2) · u_h,                        h = 0..H
    ε_h^(1) = ∂L/∂u_h = Σ_m ∂L/∂z_m^(2) · w_hm^(2),           h = 1..H
    ∂L/∂w_jh^(1) = ε_h^(1) f'(z_h^(1)) · x_j,                 j = 0..n

Batched over m observations the products become matrix products and the gradients are
summed over rows; pass ∂J/∂ŷ (losses.cost) to get the gradient of the cost J(w).
Everything is float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qapprox.approximators import losses
from qapprox.envs.validation import check_choice, check_int, is_int

LEAKY_SLOPE = 0.01  # σ(z) = 0.01 z for z < 0: torch.nn.LeakyReLU's default (Keras' LeakyReLU uses 0.3)
ELU_ALPHA = 1.0  # σ(z) = α(eᶻ − 1) for z < 0, the lecture's ELU with α = 1 (torch's and Keras' default)


@dataclass(frozen=True)
class Activation:
    """σ and the chain rule through it: backward(z, a, g) = ∂L/∂z given a = σ(z) and g = ∂L/∂a."""

    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _softmax(z: np.ndarray) -> np.ndarray:
    """ŷ_m = e^{z_m} / Σ_k e^{z_k}, row by row (shifted by max z for overflow safety)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# Derivatives at the kink z = 0 are those torch.autograd uses: relu 0, leaky_relu LEAKY_SLOPE, elu α.
ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation(lambda z: z, lambda z, a, g: g),
    # σ(z) = 1/(1 + e^{−z}) computed as e^{−ln(1 + e^{−z})} so no e^{−z} overflows; σ' = σ(1 − σ)
    "sigmoid": Activation(lambda z: np.exp(-np.logaddexp(0.0, -z)), lambda z, a, g: g * a * (1.0 - a)),
    "tanh": Activation(np.tanh, lambda z, a, g: g * (1.0 - a**2)),
    "relu": Activation(lambda z: np.maximum(z, 0.0), lambda z, a, g: g * (z > 0)),
    "leaky_relu": Activation(
        lambda z: np.where(z > 0, z, LEAKY_SLOPE * z), lambda z, a, g: g * np.where(z > 0, 1.0, LEAKY_SLOPE)
    ),
    # σ'(z) = α eᶻ = σ(z) + α for z ≤ 0
    "elu": Activation(
        lambda z: np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
        lambda z, a, g: g * np.where(z > 0, 1.0, a + ELU_ALPHA),
    ),
    # ∂L/∂z_m = Σ_k g_k ∂ŷ_k/∂z_m = ŷ_m (g_m − Σ_k g_k ŷ_k)
    "softmax": Activation(_softmax, lambda z, a, g: a * (g - np.sum(g * a, axis=1, keepdims=True))),
}
HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "softmax")  # softmax is for outputs only


@dataclass(frozen=True)
class Forward:
    """What forward propagation computed, one row per observation, kept for backpropagation.

    x          inputs, shape (m, n)
    z[l − 1]   z^(l) = [1, u^(l−1)] W^(l), layer l = 1..L+1 (one hidden layer: z[0] = z^(1), z[1] = z^(2))
    u[l − 1]   u^(l) = σ(z^(l)), hidden layers l = 1..L (one hidden layer: u[0] = u)
    y_hat      ŷ = σ^(out)(z^(L+1)), shape (m, M)
    """

    x: np.ndarray
    z: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    y_hat: np.ndarray


@dataclass(frozen=True)
class Backward:
    """What backpropagation computed.

    eps[l − 1]    ε^(l) = ∂L/∂(output of layer l), one row per observation: ε^(l) = ∂L/∂u^(l) for
                  hidden layers, ε^(L+1) = ∂L/∂ŷ (one hidden layer: eps[0] = ε_h^(1), eps[1] = ε^(2))
    dz[l − 1]     ∂L/∂z^(l) = ε^(l) σ'(z^(l))
    grads[l − 1]  ∂L/∂W^(l), the shape of W^(l), summed over the observations
    """

    eps: tuple[np.ndarray, ...]
    dz: tuple[np.ndarray, ...]
    grads: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class MLP:
    """n inputs → hidden layers of sizes `hidden` → M outputs, in the lecture's form (see module doc)."""

    n_inputs: int = 2
    hidden: tuple[int, ...] = (2,)
    n_outputs: int = 1
    hidden_activation: str = "relu"
    output_activation: str = "identity"

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, 1)
        check_int("n_outputs", self.n_outputs, 1)
        hidden = tuple(self.hidden) if isinstance(self.hidden, Sequence) else (self.hidden,)
        if not hidden or not all(is_int(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden={self.hidden!r} must list one or more layer sizes, each an integer ≥ 1")
        object.__setattr__(self, "hidden", hidden)
        check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS, label="hidden_activation")
        check_choice("output_activation", self.output_activation, ACTIVATIONS, label="output_activation")

    # ------------------------------------------------------------- weights
    @property
    def sizes(self) -> tuple[int, ...]:
        """(n, H_1, ..., H_L, M)."""
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """Shape of each W^(l): (inputs + 1 for the bias row, units)."""
        return tuple((a + 1, b) for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def n_weights(self) -> int:
        return sum(rows * cols for rows, cols in self.shapes)

    def init(self, rng: np.random.Generator) -> list[np.ndarray]:
        """w_jh ~ U(−1/√fan_in, 1/√fan_in), biases included: torch.nn.Linear's default initialisation."""
        return [rng.uniform(-1.0, 1.0, size=(rows, cols)) / np.sqrt(rows - 1) for rows, cols in self.shapes]

    def flatten(self, W: Sequence[np.ndarray]) -> np.ndarray:
        """w in the lecture's order: layer by layer, unit by unit, bias first —
        w_01^(1), w_11^(1), ..., w_n1^(1), w_02^(1), ..., then w_01^(2), ..., i.e. each W^(l) column by column."""
        return np.concatenate([layer.ravel(order="F") for layer in self._check_weights(W)])

    def unflatten(self, w: np.ndarray) -> list[np.ndarray]:
        """The matrices W^(l) from w in the lecture's order (the inverse of flatten)."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_weights,):
            raise ValueError(f"w has shape {w.shape}; a network of sizes {self.sizes} has ({self.n_weights},)")
        ends = np.cumsum([rows * cols for rows, cols in self.shapes])[:-1]
        return [part.reshape(shape, order="F") for part, shape in zip(np.split(w, ends), self.shapes)]

    # ------------------------------------------------ forward and backward
    def forward(self, W: Sequence[np.ndarray], x: np.ndarray) -> Forward:
        """z^(l) = [1, u^(l−1)] W^(l), u^(l) = σ(z^(l)), for l = 1..L+1, with u^(0) = x and u^(L+1) = ŷ."""
        W = self._check_weights(W)
        x = self._check_inputs(x)
        z, outputs = [], []
        a = x
        for l, layer in enumerate(W):
            z_l = layer[0] + a @ layer[1:]  # Σ_j w_jh a_j with a_0 = 1: row 0 is the bias
            a = self._activation(l).forward(z_l)
            z.append(z_l)
            outputs.append(a)
        return Forward(x=x, z=tuple(z), u=tuple(outputs[:-1]), y_hat=outputs[-1])

    def backward(self, W: Sequence[np.ndarray], forward: Forward, eps_out: np.ndarray) -> Backward:
        """ε^(L+1) = eps_out = ∂L/∂ŷ (one row per observation) → every ε^(l) and ∂L/∂W^(l)."""
        W = self._check_weights(W)
        eps_out = np.asarray(eps_out, dtype=np.float64)
        if eps_out.shape != forward.y_hat.shape:
            raise ValueError(f"eps_out has shape {eps_out.shape}; ŷ has shape {forward.y_hat.shape}")
        inputs = (forward.x, *forward.u)  # what layer l reads: u^(l−1)
        outputs = (*forward.u, forward.y_hat)  # what layer l gives: u^(l)
        n_layers = len(W)
        eps, dz, grads = [None] * n_layers, [None] * n_layers, [None] * n_layers
        eps[-1] = eps_out
        for l in reversed(range(n_layers)):
            dz[l] = self._activation(l).backward(forward.z[l], outputs[l], eps[l])  # ∂L/∂z = ε σ'(z)
            grads[l] = np.vstack([dz[l].sum(axis=0), inputs[l].T @ dz[l]])  # ∂L/∂w_jh = Σ_i ∂L/∂z_h · u_j, u_0 = 1
            if l > 0:
                eps[l - 1] = dz[l] @ W[l][1:].T  # ε_h = ∂L/∂u_h = Σ_m ∂L/∂z_m w_hm, h ≥ 1
        return Backward(eps=tuple(eps), dz=tuple(dz), grads=tuple(grads))

    def cost_and_gradient(self, w: np.ndarray, x: np.ndarray, y: np.ndarray, loss: str) -> tuple[float, np.ndarray]:
        """J(w) = (1/m) Σ_i L(ŷ(x^(i); w), y^(i)) and ∇J(w), flat in the lecture's order (for optim)."""
        losses.check_loss(loss)
        W = self.unflatten(w)
        forward = self.forward(W, x)
        J, eps_out = losses.cost(loss, forward.y_hat, y)
        return J, self.flatten(self.backward(W, forward, eps_out).grads)

    # ------------------------------------------------------------- helpers
    def _activation(self, l: int) -> Activation:
        last = l == len(self.hidden)
        return ACTIVATIONS[self.output_activation if last else self.hidden_activation]

    def _check_weights(self, W: Sequence[np.ndarray]) -> list[np.ndarray]:
        W = [np.asarray(layer, dtype=np.float64) for layer in W]
        if len(W) != len(self.shapes):
            raise ValueError(f"got {len(W)} weight matrices; a network of sizes {self.sizes} has {len(self.shapes)}")
        for l, (layer, shape) in enumerate(zip(W, self.shapes), start=1):
            if layer.shape != shape:
                raise ValueError(f"W^({l}) has shape {layer.shape}; a network of sizes {self.sizes} needs {shape}")
        return W

    def _check_inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_inputs or x.shape[0] == 0:
            raise ValueError(f"x has shape {x.shape}; expected (m, {self.n_inputs}) with m ≥ 1 observations as rows")
        return x
