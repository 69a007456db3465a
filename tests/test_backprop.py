"""approximators.backprop: the lecture's backpropagation on torch networks (ByHand) against torch.autograd,
the worked 2-2-1 example, the ReLU kink, flat parameters (flatten_parameters), the ByHand/Autograd choice,
bad input, and one DQN update end to end against a plain-autograd reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from qapprox.approximators.backprop import (Autograd, ByHand, backprop, flatten_members, flatten_parameters,
                                           supports_by_hand)
from qapprox.approximators.mlp import MLP
from qapprox.approximators.networks import (Dense, Dropout, build, linear_q_network, mlp_q_network,
                                    nature_cnn_q_network)
from qapprox.dqn.config import DQNConfig
from qapprox.dqn.replay import Batch
from qapprox.approximators.worked_example import DEFAULT_WEIGHTS, worked_example

F64 = torch.float64

# approximators/backprop.py, _DERIVATIVES[nn.LeakyReLU]: torch.where(u > 0, 1.0, negative_slope) with two Python
# scalars is a float32 tensor whatever u's dtype, so a float64 model's slope is rounded to float32 (relative
# error ≈ 1e-8) and a float16/bfloat16 model's backward fails (torch.mm out= dtype mismatch).
# ---------------------------------------------------------------------------- helpers
def flat(model: nn.Module) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model in float64 with flat parameters: (model, w, ∇w)."""
    model = model.double()
    w, grad = flatten_parameters(model)
    return model, w, grad


def autograd_gradient(model: nn.Module, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Σ_i ε_iᵀ ∂ŷ_i/∂w by torch.autograd.grad of (ŷ · ε).sum(), flat in parameter order."""
    parameters = list(model.parameters())
    grads = torch.autograd.grad((model(x) * eps).sum(), parameters)
    return torch.cat([g.reshape(-1) for g in grads])


def check_matches_autograd(model: nn.Module, x: torch.Tensor, eps: torch.Tensor, kind: type) -> None:
    """Run backprop(model) on (x, ε): right implementation, ŷ = model(x), ∇w = autograd's, x untouched."""
    net = backprop(model)
    assert type(net) is kind
    x_before = x.clone()
    with torch.no_grad():
        expected_output = model(x)
    expected_grad = autograd_gradient(model, x, eps)
    for p in model.parameters():
        p.grad.fill_(123.0)  # stale values: backward must overwrite them all
    output = net.forward(x)
    torch.testing.assert_close(output, expected_output, rtol=1e-12, atol=1e-12)
    net.backward(eps)
    got = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(got, expected_grad, rtol=1e-6, atol=1e-9)
    assert got.abs().max() > 0  # a real gradient, not an all-zero one
    assert torch.equal(x, x_before)  # in-place activations never touch the caller's input


# ------------------------------------------------------------- 1. ByHand = autograd
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "linear")


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("hidden", [(7,), (6, 5)])
@pytest.mark.parametrize("batch", [1, 3, 17])
def test_by_hand_equals_autograd_for_mlp_q_networks(activation, hidden, batch):
    torch.manual_seed(100 * ACTIVATION_NAMES.index(activation) + 10 * len(hidden) + batch)
    model, _, grad = flat(mlp_q_network(4, 3, hidden, activation))
    assert supports_by_hand(model)
    x = torch.randn(batch, 4, dtype=F64)
    eps = torch.randn(batch, 3, dtype=F64)
    check_matches_autograd(model, x, eps, ByHand)
    # the gradients sit in the flat ∇w returned by flatten_parameters
    torch.testing.assert_close(grad, autograd_gradient(model, x, eps), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "elu", "leaky_relu", None])
@pytest.mark.parametrize("output_activation", [None, "sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("batch", [1, 8])
def test_by_hand_equals_autograd_for_built_networks(activation, output_activation, batch):
    torch.manual_seed(7 * batch + len(str(activation)) + 13 * len(str(output_activation)))
    layers = [Dense(6, activation), Dense(5, activation), Dense(2, output_activation)]
    model, _, _ = flat(build(layers, input_shape=(3,)))
    last = [m for m in model if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias.fill_(1.0)  # a ReLU output is active: the gradient is not trivially 0
    x = 2.0 * torch.randn(batch, 3, dtype=F64)
    eps = torch.randn(batch, 2, dtype=F64)
    check_matches_autograd(model, x, eps, ByHand)


def test_by_hand_equals_autograd_without_bias_and_with_explicit_slopes():
    torch.manual_seed(3)
    model, _, _ = flat(nn.Sequential(nn.Linear(3, 5, bias=False), nn.LeakyReLU(0.2), nn.Linear(5, 4),
                                     nn.ELU(alpha=0.5), nn.Linear(4, 2, bias=False), nn.Identity()))
    x = torch.randn(9, 3, dtype=F64)
    check_matches_autograd(model, x, torch.randn(9, 2, dtype=F64), ByHand)


def test_by_hand_equals_autograd_with_two_activations_in_a_row():
    # ReLU is applied in place on the tanh output ByHand reads σ' from; where ReLU zeroes it, ε is 0 anyway.
    torch.manual_seed(4)
    for first in (nn.Tanh(), nn.ELU(), nn.Sigmoid(), nn.LeakyReLU()):
        model, _, _ = flat(nn.Sequential(nn.Linear(3, 8), first, nn.ReLU(), nn.Linear(8, 2)))
        check_matches_autograd(model, torch.randn(6, 3, dtype=F64), torch.randn(6, 2, dtype=F64), ByHand)


@pytest.mark.parametrize("hidden, hidden_activation, output_activation", [
    ((4,), "relu", "identity"), ((4,), "tanh", "sigmoid"), ((4, 3), "elu", "identity"),
    ((4, 3), "leaky_relu", "relu"), ((5,), "sigmoid", "tanh"), ((3,), "identity", "identity"),
])
def test_by_hand_equals_the_numpy_lecture_network(hidden, hidden_activation, output_activation):
    """approximators.mlp.MLP (the lecture's layout: W^(l) is (inputs + 1, units), row 0 = bias) vs ByHand."""
    torch_activation = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU,
                        "leaky_relu": nn.LeakyReLU, "identity": nn.Identity}
    net = MLP(n_inputs=3, hidden=hidden, n_outputs=2, hidden_activation=hidden_activation,
              output_activation=output_activation)
    rng = np.random.default_rng(11)
    W = net.init(rng)
    modules = []
    for l, (rows, cols) in enumerate(net.shapes):
        linear = nn.Linear(rows - 1, cols).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W[l][1:].T))
            linear.bias.copy_(torch.from_numpy(W[l][0]))
        last = l == len(net.shapes) - 1
        modules += [linear, torch_activation[output_activation if last else hidden_activation]()]
    model = nn.Sequential(*modules)
    flatten_parameters(model)
    x = rng.normal(size=(5, 3))
    eps = rng.normal(size=(5, 2))
    forward = net.forward(W, x)
    backward = net.backward(W, forward, eps)

    by_hand = ByHand(model)
    y_hat = by_hand.forward(torch.from_numpy(x))
    np.testing.assert_allclose(y_hat.numpy(), forward.y_hat, rtol=1e-12, atol=1e-14)
    by_hand.backward(torch.from_numpy(eps))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for linear, G in zip(linears, backward.grads):
        np.testing.assert_allclose(linear.weight.grad.numpy(), G[1:].T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(linear.bias.grad.numpy(), G[0], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------- 2. the lecture's 2-2-1 example
def lecture_network(w9, activation: type = nn.ReLU) -> nn.Sequential:
    """The 2-2-1 network with f in every unit, weights in the lecture's order
    (w_01, w_11, w_21, w_02, w_12, w_22 of layer 1; w_0, w_1, w_2 of layer 2), float64, flattened."""
    w01, w11, w21, w02, w12, w22, w0, w1, w2 = w9
    model = nn.Sequential(nn.Linear(2, 2), activation(), nn.Linear(2, 1), activation()).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[w11, w21], [w12, w22]], dtype=F64))
        model[0].bias.copy_(torch.tensor([w01, w02], dtype=F64))
        model[2].weight.copy_(torch.tensor([[w1, w2]], dtype=F64))
        model[2].bias.copy_(torch.tensor([w0], dtype=F64))
    flatten_parameters(model)
    return model


def lecture_order(model: nn.Sequential, attribute: str = "grad") -> list[float]:
    """The model's gradients (or weights, attribute="data") in the lecture's order."""
    first, second = model[0], model[2]
    W1, b1 = getattr(first.weight, attribute), getattr(first.bias, attribute)
    W2, b2 = getattr(second.weight, attribute), getattr(second.bias, attribute)
    return [b1[0], W1[0, 0], W1[0, 1], b1[1], W1[1, 0], W1[1, 1], b2[0], W2[0, 0], W2[0, 1]]


def test_worked_example_by_hand_gives_the_lectures_numbers():
    # The numbers worked by hand in tests/test_backprop_example.py: f = ReLU, L = (ŷ − y)², x = (1, 2), y = 1.
    model = lecture_network(DEFAULT_WEIGHTS)
    net = backprop(model)
    assert isinstance(net, ByHand)
    y_hat = net.forward(torch.tensor([[1.0, 2.0]], dtype=F64))
    assert y_hat.shape == (1, 1) and y_hat.item() == 0.25
    eps2 = 2.0 * (y_hat - 1.0)  # ε^(2) = ∂L/∂ŷ = 2(ŷ − y)
    assert eps2.item() == -1.5
    net.backward(eps2)
    assert [float(g) for g in lecture_order(model)] == [-1.5, -1.5, -3.0, 0.75, 0.75, 1.5, -1.5, -0.75, -2.25]
    # torch's layout of the same numbers
    assert model[0].weight.grad.tolist() == [[-1.5, -3.0], [0.75, 1.5]]
    assert model[0].bias.grad.tolist() == [-1.5, 0.75]
    assert model[2].weight.grad.tolist() == [[-0.75, -2.25]]
    assert model[2].bias.grad.tolist() == [-1.5]
    # one SGD step on the flat vectors, w := w − 0.1 ∇L, gives the lecture's weights after the step
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    parameters = list(model.parameters())
    with torch.no_grad():
        for p in parameters:
            p.sub_(0.1 * p.grad)
    after = [float(v) for v in lecture_order(model, "data")]
    assert after == pytest.approx([0.65, 1.15, -0.2, -1.075, 0.425, 0.85, 0.65, 1.075, -0.275], rel=1e-14, abs=1e-15)
    assert not torch.equal(w, torch.cat([p.detach().reshape(-1) for p in parameters]))


EXAMPLE_INPUTS = [
    (DEFAULT_WEIGHTS, 1.0, 2.0, 1.0),
    ((0.3, -1.2, 0.7, 0.1, 0.4, -0.8, -0.2, 0.9, 1.3), 0.6, -1.1, 2.0),  # hidden unit 1 at z < 0
    ((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), -2.0, 3.5, -0.5),
]
EXAMPLE_CASES = [
    pytest.param(activation, *inputs, id=f"{activation}-{i}")
    for activation in ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "identity")
    for i, inputs in enumerate(EXAMPLE_INPUTS)
]


@pytest.mark.parametrize("activation, w9, x1, x2, y", EXAMPLE_CASES)
def test_worked_example_by_hand_matches_the_script(activation, w9, x1, x2, y):
    torch_activation = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU,
                        "leaky_relu": nn.LeakyReLU, "identity": nn.Identity}[activation]
    expected = worked_example(w9, x1, x2, y, alpha=0.1, activation=activation)
    model = lecture_network(w9, torch_activation)
    net = ByHand(model)
    y_hat = net.forward(torch.tensor([[x1, x2]], dtype=F64))
    assert y_hat.item() == pytest.approx(expected["y_hat"], rel=1e-13, abs=1e-15)
    eps2 = 2.0 * (y_hat - y)
    assert eps2.item() == pytest.approx(expected["eps2"], rel=1e-13, abs=1e-15)
    net.backward(eps2)
    assert [float(g) for g in lecture_order(model)] == pytest.approx(expected["grad"], rel=1e-12, abs=1e-14)


# ------------------------------------------------------------- 3. the ReLU kink
def kink_network(activation: nn.Module) -> nn.Sequential:
    """x = (1, 2) gives z^(1) = (0, 3.5, 0): hidden units 1 and 3 sit exactly at the kink z = 0."""
    model = nn.Sequential(nn.Linear(2, 3), activation, nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[2.0, -1.0], [1.0, 1.0], [-1.0, 0.5]], dtype=F64))
        model[0].bias.copy_(torch.tensor([0.0, 0.5, 0.0], dtype=F64))
        model[2].weight.copy_(torch.tensor([[0.7, -1.3, 2.0]], dtype=F64))
        model[2].bias.copy_(torch.tensor([0.1], dtype=F64))
    flatten_parameters(model)
    return model


@pytest.mark.parametrize("activation, slope_at_zero", [
    (nn.ReLU(), 0.0),  # autograd's convention: relu'(0) = 0
    pytest.param(nn.LeakyReLU(0.1), 0.1),  # its negative slope
    (nn.ELU(alpha=0.5), 0.5),  # α e⁰ = α
])
def test_derivative_at_the_kink_is_autograds(activation, slope_at_zero):
    model = kink_network(activation)
    x = torch.tensor([[1.0, 2.0]], dtype=F64)
    with torch.no_grad():
        assert model[0](x).tolist() == [[0.0, 3.5, 0.0]]
    eps = torch.tensor([[-2.0]], dtype=F64)
    expected = autograd_gradient(model, x, eps)
    net = ByHand(model)
    net.forward(x)
    net.backward(eps)
    W1 = model[0].weight.grad
    # ∂L/∂w_jh^(1) = ε w_h^(2) σ'(z_h) x_j: unit 1 (w^(2) = 0.7) and unit 3 (w^(2) = 2) at z = 0
    assert W1[0].tolist() == pytest.approx([-2.0 * 0.7 * slope_at_zero * 1.0, -2.0 * 0.7 * slope_at_zero * 2.0])
    assert W1[2].tolist() == pytest.approx([-2.0 * 2.0 * slope_at_zero * 1.0, -2.0 * 2.0 * slope_at_zero * 2.0])
    assert model[0].bias.grad.tolist() == pytest.approx([-1.4 * slope_at_zero, 2.6, -4.0 * slope_at_zero])
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), expected,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_by_hand_leaky_relu_in_half_precision(dtype):
    torch.manual_seed(12)
    model = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.1), nn.Linear(4, 2)).to(dtype)
    _, grad = flatten_parameters(model)
    x, eps = torch.randn(5, 3).to(dtype), torch.randn(5, 2).to(dtype)
    net = ByHand(model)
    net.forward(x)
    net.backward(eps)
    expected = autograd_gradient(model, x, eps)
    torch.testing.assert_close(grad, expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("activation", [nn.LeakyReLU(-0.5), nn.ELU(alpha=-1.0)])
def test_a_negative_slope_or_alpha_goes_to_autograd(activation):
    # σ' is read from u > 0, which is z > 0 only for slopes and α ≥ 0: other values are refused by ByHand
    # and backprop() picks Autograd, whose gradient is right.
    torch.manual_seed(13)
    model, _, _ = flat(nn.Sequential(nn.Linear(3, 6), activation, nn.Linear(6, 2)))
    assert not supports_by_hand(model) and isinstance(backprop(model), Autograd)
    with pytest.raises(ValueError, match="slopes and α ≥ 0"):
        ByHand(model)
    check_matches_autograd(model, torch.randn(7, 3, dtype=F64), torch.randn(7, 2, dtype=F64), Autograd)


def test_relu_at_zero_in_a_batch_matches_autograd():
    model = kink_network(nn.ReLU())
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, 3.0], [2.0, 4.0]], dtype=F64)  # rows 1, 2, 4 hit z = 0
    eps = torch.tensor([[1.0], [-0.5], [2.0], [0.25]], dtype=F64)
    expected = autograd_gradient(model, x, eps)
    net = ByHand(model)
    net.forward(x)
    net.backward(eps)
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), expected,
                               rtol=1e-12, atol=1e-15)
    assert model[0].weight.grad[0].tolist() == [0.0, 0.0]  # unit 1 is at z ≤ 0 on every row: no gradient


# ------------------------------------------------------------- 4. flatten_parameters
def test_flatten_keeps_values_and_makes_views():
    torch.manual_seed(0)
    model = mlp_q_network(4, 3, (8, 5))
    x = torch.randn(6, 4)
    before = model(x).detach()
    values = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    w, grad = flatten_parameters(model)
    parameters = list(model.parameters())
    assert w.shape == grad.shape == (sum(p.numel() for p in parameters),) == (4 * 8 + 8 + 8 * 5 + 5 + 5 * 3 + 3,)
    assert w.dtype == grad.dtype == torch.float32 and w.is_contiguous() and grad.is_contiguous()
    assert torch.equal(w, values) and torch.equal(model(x).detach(), before)
    assert torch.count_nonzero(grad) == 0
    size = w.element_size()
    offset = 0
    for p in parameters:
        # p lies within w's storage, in parameter order; its .grad likewise within grad's
        assert p.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
        assert p.data_ptr() == w.data_ptr() + offset * size
        assert w.data_ptr() <= p.data_ptr() and p.data_ptr() + p.numel() * size <= w.data_ptr() + w.numel() * size
        assert p.grad.untyped_storage().data_ptr() == grad.untyped_storage().data_ptr()
        assert p.grad.data_ptr() == grad.data_ptr() + offset * size and p.grad.shape == p.shape
        offset += p.numel()

    # writing into w changes the module
    with torch.no_grad():
        w.zero_()
    assert torch.count_nonzero(model(x)) == 0
    with torch.no_grad():
        w.copy_(values)
    assert torch.equal(model(x).detach(), before)
    # writing a parameter in place changes w
    with torch.no_grad():
        model[0].bias.fill_(3.0)
    assert torch.equal(w[4 * 8:4 * 8 + 8], torch.full((8,), 3.0))
    assert torch.equal(w[:4 * 8], values[:4 * 8]) and torch.equal(w[4 * 8 + 8:], values[4 * 8 + 8:])


def test_flattened_grads_are_views_of_the_grad_vector():
    torch.manual_seed(1)
    model = mlp_q_network(3, 2, (5,))
    w, grad = flatten_parameters(model)
    x = torch.randn(4, 3)
    model(x).pow(2).sum().backward()  # autograd adds into the existing .grad in place
    assert torch.count_nonzero(grad) > 0
    assert torch.equal(grad, torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    grad.fill_(7.0)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    model[2].bias.grad.fill_(-1.0)
    assert grad[-2:].tolist() == [-1.0, -1.0]


def test_state_dict_round_trip_keeps_the_views():
    torch.manual_seed(2)
    model = mlp_q_network(4, 2, (6,))
    w, grad = flatten_parameters(model)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    other = mlp_q_network(4, 2, (6,)).state_dict()  # different random values
    model.load_state_dict(other)
    assert torch.equal(w, torch.cat([v.reshape(-1) for v in other.values()]))
    model.load_state_dict(saved)
    assert torch.equal(w, torch.cat([v.reshape(-1) for v in saved.values()]))
    for p in model.parameters():
        assert p.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == grad.untyped_storage().data_ptr()
    # the state dict's tensors are views of w as well
    for value in model.state_dict().values():
        assert value.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
    with torch.no_grad():
        w.add_(1.0)
    assert torch.equal(model.state_dict()["0.bias"], saved["0.bias"] + 1.0)


def test_flatten_a_module_without_parameters_raises():
    for module in (nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Tanh())):
        with pytest.raises(ValueError, match="has no parameters to flatten"):
            flatten_parameters(module)


# ------------------------------------------------------------- 5. ByHand or Autograd
def test_backprop_chooses_by_hand_only_for_dense_stacks():
    assert supports_by_hand(mlp_q_network(4, 2, (8, 8)))
    assert supports_by_hand(build([Dense(3, "tanh"), Dense(1)], (2,)))
    assert not supports_by_hand(mlp_q_network(4, 2, (8, 8), dueling=True))
    assert not supports_by_hand(nature_cnn_q_network(2, 3, image_size=(36, 36)))
    assert not supports_by_hand(linear_q_network(5, 3))  # a bare nn.Linear, not an nn.Sequential
    assert not supports_by_hand(build([Dense(3, "relu"), Dense(2, "softmax")], (2,)))
    assert not supports_by_hand(build([Dense(3, "relu"), Dropout(0.5), Dense(2)], (2,)))
    assert not supports_by_hand(nn.Sequential())
    assert not supports_by_hand(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    assert type(backprop(flat(mlp_q_network(4, 2, (8,)))[0])) is ByHand


def autograd_cases():
    torch.manual_seed(5)
    return {
        "dueling": (mlp_q_network(4, 3, (8, 6), dueling=True), lambda: torch.randn(5, 4, dtype=F64), 3),
        "dueling_one_layer": (mlp_q_network(4, 3, (6,), activation="tanh", dueling=True),
                              lambda: torch.randn(2, 4, dtype=F64), 3),
        "nature_cnn": (nature_cnn_q_network(2, 3, image_size=(36, 36)),
                       lambda: torch.randint(0, 256, (2, 2, 36, 36), dtype=torch.uint8), 3),
        "linear": (linear_q_network(5, 3, init="default"), lambda: torch.randn(4, 5, dtype=F64), 3),
        "linear_bias": (linear_q_network(5, 3, bias=True, init="default"), lambda: torch.randn(1, 5, dtype=F64), 3),
        "softmax": (build([Dense(4, "relu"), Dense(3, "softmax")], (2,)), lambda: torch.randn(3, 2, dtype=F64), 3),
    }


@pytest.mark.parametrize("name", list(autograd_cases()))
def test_autograd_path_matches_torch_autograd_and_does_not_accumulate(name):
    model, make_x, n_out = autograd_cases()[name]
    model, _, grad = flat(model)
    torch.manual_seed(6)
    x1, x2 = make_x(), make_x()
    eps1, eps2 = torch.randn(len(x1), n_out, dtype=F64), torch.randn(len(x2), n_out, dtype=F64)
    check_matches_autograd(model, x1, eps1, Autograd)
    net = backprop(model)
    expected2 = autograd_gradient(model, x2, eps2)
    for _ in range(2):  # the second backward replaces the gradient
        net.forward(x2)
        net.backward(eps2)
        torch.testing.assert_close(grad, expected2, rtol=1e-6, atol=1e-9)
    net.forward(x1)
    net.backward(eps1)
    torch.testing.assert_close(grad, autograd_gradient(model, x1, eps1), rtol=1e-6, atol=1e-9)


def test_by_hand_backward_twice_does_not_accumulate():
    torch.manual_seed(8)
    model, _, grad = flat(mlp_q_network(4, 2, (8, 8), activation="elu"))
    net = backprop(model)
    x1, x2 = torch.randn(5, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    eps1, eps2 = torch.randn(5, 2, dtype=F64), torch.randn(3, 2, dtype=F64)
    for x, eps in ((x1, eps1), (x1, eps1), (x2, eps2)):
        net.forward(x)
        net.backward(eps)
        torch.testing.assert_close(grad, autograd_gradient(model, x, eps), rtol=1e-6, atol=1e-9)


def test_by_hand_forward_under_inference_mode_matches_the_model():
    torch.manual_seed(9)
    model, _, _ = flat(mlp_q_network(4, 2, (8,)))
    net = ByHand(model)
    x = torch.randn(5, 4, dtype=F64)
    with torch.inference_mode():
        y = net.forward(x)
    with torch.no_grad():
        torch.testing.assert_close(y, model(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- 6. bad input
@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv2d(1, 2, kernel_size=3)),
    nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=-1)),
    nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1), nn.Linear(2, 1)),
    nn.Linear(2, 2),
    nn.Sequential(),
])
def test_by_hand_on_an_unsupported_model_is_a_one_line_value_error(model):
    if any(True for _ in model.parameters()):
        flatten_parameters(model)  # grads allocated: the model's structure is what is refused
    message = r"ByHand needs an nn\.Sequential of nn\.Linear \(first\) and activations \(ReLU.*; got \["
    with pytest.raises(ValueError, match=message) as info:
        ByHand(model)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", [ByHand, Autograd])
def test_gradients_not_allocated_is_a_value_error_naming_flatten_parameters(cls):
    model = mlp_q_network(4, 2, (8,))
    with pytest.raises(ValueError, match="flatten_parameters") as info:
        cls(model)
    assert "\n" not in str(info.value)
    flatten_parameters(model)
    assert isinstance(cls(model), cls)


# ------------------------------------------------------------- 7. one DQN update end to end
def make_batch(seed: int, weights: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(8, 4, generator=g),
        actions=torch.randint(0, 2, (8,), generator=g),
        rewards=3.0 * torch.randn(8, generator=g),  # some |δ| > 1: Huber's linear part is used
        next_obs=torch.randn(8, 4, generator=g),
        discounts=torch.tensor([0.99, 0.99, 0.0, 0.99, 0.99, 0.0, 0.99, 0.99]),
        weights=torch.ones(8) if weights is None else weights,
        indices=torch.arange(8),
    )


def reference_update(q: nn.Module, q_target: nn.Module, batch: Batch, config: DQNConfig):
    """The same update with plain autograd, torch.nn.utils.clip_grad_norm_ and torch.optim.Adam on copies."""
    q, q_target = copy.deepcopy(q), copy.deepcopy(q_target)
    parameters = list(q.parameters())
    for p in parameters:
        p.grad = None
    with torch.no_grad():
        next_target = q_target(batch.next_obs)
        chooser = q(batch.next_obs) if config.double_q else next_target
        next_value = next_target.gather(1, chooser.argmax(dim=1, keepdim=True)).squeeze(1)
        y = batch.rewards + batch.discounts * next_value
    q_taken = q(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    delta = y - q_taken
    if config.loss == "huber":
        per_sample = torch.where(delta.abs() <= 1.0, 0.5 * delta**2, delta.abs() - 0.5)
    else:
        per_sample = 0.5 * delta**2
    loss = (batch.weights * per_sample).mean() if config.prioritized else per_sample.mean()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm or float("inf"))
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, foreach=False, fused=False)
    optimizer.step()
    return q, loss.detach(), delta.detach(), q_taken.detach().mean(), norm, y


@pytest.mark.parametrize("changes", [
    dict(double_q=True, loss="huber", max_grad_norm=0.5),
    dict(double_q=False, loss="huber", max_grad_norm=0.0),
    dict(double_q=True, loss="mse", max_grad_norm=0.0),
    dict(double_q=False, loss="mse", max_grad_norm=0.3),
    dict(double_q=True, loss="huber", max_grad_norm=0.5, dueling=True),
    dict(double_q=True, loss="huber", max_grad_norm=0.2, prioritized=True),
    dict(double_q=False, loss="mse", max_grad_norm=0.0, prioritized=True, activation="tanh"),
])
def test_dqn_update_matches_plain_autograd_and_adam(changes):
    from qapprox.dqn.agent import DQN

    config = DQNConfig(logdir="", eval_interval=0, learning_starts=0, threads=1, device="cpu", hidden=(16, 16),
                       batch_size=8, buffer_size=64, n_step=1, **changes)
    agent = DQN(config)
    if hasattr(agent.algorithm, "online"):  # an agent that updates through approximators.backprop
        assert type(agent.algorithm.online) is (Autograd if config.dueling else ByHand)
    torch.manual_seed(21)
    with torch.no_grad():  # make w⁻ differ from w, so that DQN and Double DQN targets differ
        for p in agent.q_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    weights = (torch.linspace(0.2, 1.0, 8)[torch.randperm(8, generator=torch.Generator().manual_seed(4))]
               if config.prioritized else None)
    batch = make_batch(seed=len(str(changes)), weights=weights)
    q_before = [p.detach().clone() for p in agent.q.parameters()]
    target_before = [p.detach().clone() for p in agent.q_target.parameters()]

    ref_q, loss, delta, q_mean, norm, y = reference_update(agent.q, agent.q_target, batch, config)
    # the test discriminates: the other target rule gives other targets, both Huber regions occur, the clip acts
    flipped = DQNConfig(**{**config.__dict__, "double_q": not config.double_q})
    other = reference_update(agent.q, agent.q_target, batch, flipped)
    assert (other[5] - y).abs().max() > 1e-3
    assert (delta.abs() > 1.0).any() and (delta.abs() < 1.0).any()
    if config.max_grad_norm:
        assert norm > config.max_grad_norm  # the clip is active

    with torch.no_grad():
        q_max_abs = agent.q(batch.obs).abs().max()  # over every action of every S_i, before the step
    got_loss, got_td_abs, got_q_mean, got_norm, got_q_max_abs = agent.algorithm.update(batch)
    # ByHand's batched products (bmm over the members) and nn.Linear's addmm may round differently at small shapes
    torch.testing.assert_close(got_q_max_abs.reshape(()), q_max_abs, rtol=1e-6, atol=0)
    torch.testing.assert_close(got_loss.reshape(()), loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_td_abs, delta.abs(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_q_mean.reshape(()), q_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_norm.reshape(()), norm, rtol=1e-5, atol=1e-6)
    moved = 0.0
    for p, p_ref, p0 in zip(agent.q.parameters(), ref_q.parameters(), q_before):
        torch.testing.assert_close(p.detach(), p_ref.detach(), rtol=0, atol=1e-5)
        moved = max(moved, (p.detach() - p0).abs().max().item())
    assert moved > 0.5 * config.learning_rate  # Adam's first step moves weights by ≈ lr
    for p, p0 in zip(agent.q_target.parameters(), target_before):
        assert torch.equal(p, p0)  # the target network does not move


def test_dqn_prioritized_loss_is_the_weighted_mean():
    from qapprox.dqn.agent import DQN

    config = DQNConfig(logdir="", eval_interval=0, learning_starts=0, threads=1, device="cpu", hidden=(16, 16),
                       batch_size=8, buffer_size=64, n_step=1, prioritized=True, loss="mse", max_grad_norm=0.0)
    weights = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.25, 0.0, 1.0, 0.0])
    batch = make_batch(seed=3, weights=weights)
    agent = DQN(config)
    loss, td_abs, *_ = agent.algorithm.update(batch)
    expected = (weights * 0.5 * td_abs**2).mean()
    torch.testing.assert_close(loss.reshape(()), expected, rtol=1e-5, atol=1e-6)
    uniform = (0.5 * td_abs**2).mean()
    assert abs(loss.item() - uniform.item()) > 1e-3


# ------------------------------------------------------------- members: K networks as the rows of one w
def members(kind: str, seeds=(0, 1, 2), obs_shape=(4,), **kwargs) -> list[nn.Module]:
    from qapprox.approximators.networks import q_network

    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(q_network(kind, obs_shape, 3, (32, 16), "relu", **kwargs))
    return models


def test_flatten_members_puts_model_k_in_row_k_and_refuses_other_architectures():
    models = members("mlp")
    before = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models]
    w, grad = flatten_members(models)
    size = before[0].numel()  # 739: rows are padded to a multiple of ROW_ALIGNMENT = 16, with zeros
    assert w.shape == grad.shape == (3, 752) and not w[:, size:].any()
    for k, m in enumerate(models):
        assert torch.equal(w[k, :size], before[k])
        assert all(p.untyped_storage().data_ptr() == w.untyped_storage().data_ptr() for p in m.parameters())
    w[1, 0] = 5.0  # the parameters are views: a write to row 1 shows in model 1 only
    assert models[1][0].weight[0, 0] == 5.0 and models[0][0].weight[0, 0] != 5.0
    with pytest.raises(ValueError, match="one architecture"):
        flatten_members([members("mlp")[0], mlp_q_network(4, 3, (8,))])
    apart = members("mlp")
    for model in apart:
        flatten_parameters(model)  # each flat on its own, not rows of one w
    with pytest.raises(ValueError, match="rows of one tensor"):
        ByHand(apart)


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_by_hand_over_members_is_each_member_alone_bit_for_bit(batch):
    models = members("mlp")
    alone = [copy.deepcopy(m) for m in models]
    w, grad = flatten_members(models)
    x, eps = torch.randn(3, batch, 4), torch.randn(3, batch, 3)
    together = ByHand(models)
    y = together.forward(x.clone())
    together.backward(eps)
    for k, model in enumerate(alone):
        _, grad_k = flatten_parameters(model)
        net = ByHand([model])  # one member: the same batched products
        assert torch.equal(net.forward(x[k:k + 1].clone())[0], y[k])
        net.backward(eps[k:k + 1])
        assert torch.equal(grad_k, grad[k, :len(grad_k)])
        torch.testing.assert_close(grad_k, autograd_gradient(copy.deepcopy(model), x[k], eps[k]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, obs_shape, extra", [("mlp", (4,), {"dueling": True}), ("cnn", (4, 84, 84), {}),
                                                     ("linear", (4,), {})])
def test_autograd_over_members_is_each_member_through_autograd(kind, obs_shape, extra):
    models = members(kind, obs_shape=obs_shape, **extra)
    alone = [copy.deepcopy(m) for m in models]
    w, grad = flatten_members(models)
    w = nn.Parameter(w)
    w.grad = grad
    net = backprop(models, w)
    assert isinstance(net, Autograd)  # the linear q̂ is a bare nn.Linear, not a Sequential: autograd too
    x, eps = torch.randn(3, 2, *obs_shape), torch.randn(3, 2, 3)
    w_size = sum(p.numel() for p in alone[0].parameters())
    y = net.forward(x)
    net.backward(eps)
    for k, model in enumerate(alone):
        torch.testing.assert_close(y[k], model(x[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad[k, :w_size], autograd_gradient(model, x[k], eps[k]), rtol=1e-5, atol=1e-6)
