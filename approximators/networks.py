"""Torch networks from a layer list — the counterpart of the lecture's Keras `Sequential` —
the Q-networks the DQN uses, and a Keras-style `summary()`.

    build([Dense(16, "relu"), Dense(1, "relu")], input_shape=(900,))     # the lecture's regression NN
    summary(model, (900,))                                                # 14,416 + 17 = 14,433 params

Q-networks map a state to one value per action, q̂(s, ·, w) ∈ ℝ^|A|:
    mlp_q_network         x(s) → Dense … Dense → q̂(s, ·)
    nature_cnn_q_network  Mnih et al. (2015): 84×84 frames → 3 convolutions → 512 → q̂(s, ·)
    linear_q_network      q̂(s, a, w) = w_aᵀ x(s); with one-hot x(s) and zero init it is a Q-table
    dueling=True          q̂(s, a) = v̂(s) + â(s, a) − (1/|A|) Σ_a' â(s, a')   (Wang et al., 2016)
Every module is an nn.Sequential of standard layers (plus two small ones defined here), so it is
fast, torch.compile friendly, and uses torch's default initialisation except where stated.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import torch
from torch import nn

from qapprox.approximators.kinds import Q_NETWORK_KINDS
from qapprox.envs.validation import check_choice, check_float, check_int, check_shape

# name → module factory. Softmax is over the last axis (the outputs ŷ_1..ŷ_M).
# leaky_relu uses torch's slope 0.01 (Keras' LeakyReLU defaults to 0.3); elu uses α = 1.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softmax": lambda: nn.Softmax(dim=-1),
    "linear": None,
}
LINEAR_INITS = ("zeros", "default")


def check_activation(activation: str | None) -> None:
    """Refuses an activation that is neither None (no activation, as "linear") nor a name in ACTIVATIONS."""
    if activation is not None:
        check_choice("activation", activation, ACTIVATIONS, label="activation")


# ---------------------------------------------------------------- layer specs
@dataclass(frozen=True)
class Dense:
    """A fully connected layer u = σ(Wᵀx + b) on the last axis: `units` outputs, activation σ."""

    units: int
    activation: str | None = None

    def __post_init__(self) -> None:
        check_int("units", self.units, 1)
        check_activation(self.activation)


@dataclass(frozen=True)
class Dropout:
    """Sets each input to 0 with probability `rate` during training (and scales the rest by 1/(1−rate))."""

    rate: float

    def __post_init__(self) -> None:
        check_float("dropout rate", self.rate, 0.0, 1.0, high_open=True)


def build(layers: Sequence[Dense | Dropout], input_shape: tuple[int, ...]) -> nn.Sequential:
    """Keras `Sequential(layers, input_shape=…)` as an nn.Sequential: Dense → Linear (+ activation)."""
    shape = check_shape("input_shape", input_shape)
    if not layers:
        raise ValueError("layers is empty; give at least one Dense or Dropout")
    modules: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, Dense):
            modules.append(nn.Linear(shape[-1], layer.units))
            if ACTIVATIONS.get(layer.activation) is not None:
                modules.append(ACTIVATIONS[layer.activation]())
            shape = shape[:-1] + (layer.units,)
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        else:
            raise ValueError(f"layer {layer!r} is not a Dense or a Dropout")
    return nn.Sequential(*modules)


# ------------------------------------------------------------ helper modules
class Rescale(nn.Module):
    """x ↦ x / 255 as floating point: uint8 (or float) pixels to [0, 1]."""

    def __init__(self, divisor: float = 255.0) -> None:
        super().__init__()
        # A buffer, so that .to(dtype / device) moves it; not saved in the state dict.
        self.register_buffer("scale", torch.tensor(1.0 / divisor), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.scale.dtype) * self.scale


class DuelingHead(nn.Module):
    """Two streams on a shared representation u, recombined (Wang et al., 2016, eq. 9):

        q̂(s, a) = v̂(s) + â(s, a) − (1/|A|) Σ_a' â(s, a')

    Subtracting the mean advantage makes v̂ and â identifiable: mean_a q̂(s, a) = v̂(s).
    """

    def __init__(self, in_features: int, hidden: Sequence[int], n_actions: int, activation: str | None) -> None:
        super().__init__()
        stream = [Dense(units, activation) for units in hidden]
        self.value = build(stream + [Dense(1)], (in_features,))
        self.advantage = build(stream + [Dense(n_actions)], (in_features,))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        v, a = self.value(u), self.advantage(u)
        return v + a - a.mean(dim=-1, keepdim=True)


# ------------------------------------------------------------------ Q-networks
def _q_head(in_features: int, hidden: Sequence[int], n_actions: int, activation: str | None, dueling: bool) -> list[nn.Module]:
    """Dense layers `hidden` then |A| outputs; with dueling, the last hidden layer splits into the two streams."""
    if not dueling:
        return list(build([Dense(units, activation) for units in hidden] + [Dense(n_actions)], (in_features,)))
    shared, streams = list(hidden[:-1]), list(hidden[-1:])
    trunk = list(build([Dense(units, activation) for units in shared], (in_features,))) if shared else []
    width = shared[-1] if shared else in_features
    return trunk + [DuelingHead(width, streams, n_actions, activation)]


def mlp_q_network(
    obs_dim: int, n_actions: int, hidden: Sequence[int] = (256, 256), activation: str = "relu", dueling: bool = False
) -> nn.Sequential:
    """q̂(s, ·, w): float (N, obs_dim) → (N, n_actions) through Dense(h, activation) for h in hidden.

    With dueling, hidden[:-1] is shared and each stream has its own Dense(hidden[-1]) layer.
    """
    check_int("obs_dim", obs_dim, 1)
    check_int("n_actions", n_actions, 1)
    for units in hidden:
        check_int("hidden units", units, 1)
    check_activation(activation)
    return nn.Sequential(*_q_head(obs_dim, tuple(hidden), n_actions, activation, dueling))


def nature_cnn_q_network(
    in_channels: int, n_actions: int, dueling: bool = False, image_size: tuple[int, int] = (84, 84)
) -> nn.Sequential:
    """The Nature-DQN network (Mnih et al., 2015): uint8 or float (N, C, 84, 84) / 255 →
    Conv 32 8×8 stride 4 → Conv 64 4×4 stride 2 → Conv 64 3×3 stride 1 → Dense 512 → |A|, ReLU between.

    With dueling, the 512-unit layer is doubled into a value and an advantage stream (Wang et al., 2016).
    """
    check_int("in_channels", in_channels, 1)
    check_int("n_actions", n_actions, 1)
    height, width = check_shape("image_size", image_size, ndim=2)
    # Output side of a convolution without padding: ⌊(n − kernel) / stride⌋ + 1.  84 → 20 → 9 → 7.
    for kernel, stride in ((8, 4), (4, 2), (3, 1)):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if height < 1 or width < 1:
        raise ValueError(f"image_size={tuple(image_size)} is too small for the Nature CNN; each side must be ≥ 36")
    convolutions = [
        Rescale(255.0),
        nn.Conv2d(in_channels, 32, kernel_size=8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
        nn.Flatten(),
    ]
    return nn.Sequential(*convolutions, *_q_head(64 * height * width, (512,), n_actions, "relu", dueling))


def linear_q_network(n_features: int, n_actions: int, bias: bool = False, init: str = "zeros") -> nn.Linear:
    """q̂(s, a, w) = w_aᵀ x(s), one weight vector per action (block state-action features).

    W has shape (|A|, d); with one-hot x(s) = e_s, q̂(s, a) = W[a, s], so W is a Q-table.
    init="zeros" starts from q̂ = 0 (as tabular methods do); "default" keeps torch's init.
    """
    check_int("n_features", n_features, 1)
    check_int("n_actions", n_actions, 1)
    check_choice("init", init, LINEAR_INITS, label="init")
    layer = nn.Linear(n_features, n_actions, bias=bias)
    if init == "zeros":
        nn.init.zeros_(layer.weight)
        if bias:
            nn.init.zeros_(layer.bias)
    return layer


def q_network(
    kind: str,
    obs_shape: tuple[int, ...],
    n_actions: int,
    hidden: Sequence[int] = (256, 256),
    activation: str = "relu",
    dueling: bool = False,
) -> nn.Module:
    """A Q-network by kind: "mlp" and "linear" take obs_shape (d,), "cnn" takes (C, H, W).

    hidden and activation shape the "mlp" only; the "cnn" is the Nature network as published.
    """
    check_choice("kind", kind, Q_NETWORK_KINDS, label="Q-network kind")
    check_int("n_actions", n_actions, 1)
    if kind == "cnn":
        channels, height, width = check_shape("obs_shape", obs_shape, ndim=3)
        return nature_cnn_q_network(channels, n_actions, dueling, image_size=(height, width))
    (obs_dim,) = check_shape("obs_shape", obs_shape, ndim=1)
    if kind == "mlp":
        return mlp_q_network(obs_dim, n_actions, hidden, activation, dueling)
    if dueling:
        raise ValueError("dueling=True applies to kind 'mlp' or 'cnn', not 'linear'")
    return linear_q_network(obs_dim, n_actions)


# --------------------------------------------------------------------- summary
# Keras' names for the layers a row is printed for; activations are folded into the layer before.
_LAYER_TYPES = {
    nn.Linear: "Dense",
    nn.Conv2d: "Conv2D",
    nn.Dropout: "Dropout",
    nn.Flatten: "Flatten",
    Rescale: "Rescaling",
    DuelingHead: "Dueling",
}
_ACTIVATION_TYPES = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Softmax)


def _snake(name: str) -> str:
    """Keras' layer names: "Dense" → "dense", "Conv2D" → "conv2d", "DuelingHead" → "dueling_head"."""
    return "".join("_" + c.lower() if c.isupper() and i and name[i - 1].islower() else c.lower() for i, c in enumerate(name))


def summary(model: nn.Module, input_shape: tuple[int, ...], file: TextIO | None = None) -> str:
    """Print (to `file`, default stdout) and return a Keras-style table of `model`.

    One row per layer — Layer (type) / Output Shape / Param # — in the order the forward pass
    runs them, found by one forward pass on zeros of shape (1, *input_shape); shapes show the
    batch axis as None and follow torch's (C, H, W) layout. Param # counts the layer's own
    parameters; the totals count every parameter of the model, non-trainable = requires_grad False.
    """
    shape = check_shape("input_shape", input_shape)
    rows: list[tuple[str, str, int]] = []
    counters: dict[str, int] = {}
    hooks = []

    def add_hook(path: str, module: nn.Module) -> None:
        kind = next((name for cls, name in _LAYER_TYPES.items() if type(module) is cls), None)
        if kind is None and (isinstance(module, _ACTIVATION_TYPES) or any(True for _ in module.children())):
            return  # activations fold into the layer before; containers are not layers
        kind = kind or type(module).__name__
        prefix = ".".join(part for part in path.split(".")[:-1] if not part.isdigit())

        def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            counters[kind] = counters.get(kind, 0) + 1
            label = f"{_snake(kind)}_{counters[kind]}"
            out_shape = "(None, " + ", ".join(str(n) for n in output.shape[1:]) + ")"
            own = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append((f"{prefix + '.' if prefix else ''}{label} ({kind})", out_shape, own))

        hooks.append(module.register_forward_hook(record))

    for path, module in model.named_modules():
        if module is not model or not any(True for _ in model.children()):
            add_hook(path or type(module).__name__.lower(), module)
    parameter = next(model.parameters(), None)
    x = torch.zeros((1, *shape), dtype=parameter.dtype if parameter is not None else torch.get_default_dtype(),
                    device=parameter.device if parameter is not None else None)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    name_width = max([29] + [len(row[0]) + 1 for row in rows])
    width = name_width + 36

    def line(name: str, out_shape: str, params: str) -> str:
        return f"{name:<{name_width}}{out_shape:<26}{params}".rstrip()

    lines = [f'Model: "{type(model).__name__}"', "_" * width, line("Layer (type)", "Output Shape", "Param #"), "=" * width]
    for i, (name, out_shape, params) in enumerate(rows):
        lines += [line(name, out_shape, str(params)), "_" * width if i < len(rows) - 1 else "=" * width]
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}", f"Non-trainable params: {total - trainable:,}", "_" * width]
    text = "\n".join(lines)
    print(text, file=file if file is not None else sys.stdout)
    return text
