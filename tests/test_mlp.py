"""The from-scratch network: the lecture's formulas, torch.autograd and finite differences agree."""

import math
import zlib
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qapprox.approximators.mlp import ACTIVATIONS, HIDDEN_ACTIVATIONS, MLP

# torch's own functions with torch's defaults (leaky slope 0.01, ELU α = 1): the independent reference
TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "softmax": lambda z: torch.softmax(z, dim=1),
}
TORCH_COSTS = {
    "squared_error": lambda y_hat, y: ((y_hat - y) ** 2).sum(1).mean(),
    "absolute_error": lambda y_hat, y: torch.linalg.vector_norm(y_hat - y, dim=1).mean(),
    "binary_cross_entropy": lambda y_hat, y: F.binary_cross_entropy(y_hat, y, reduction="sum") / len(y),
    "cross_entropy": lambda y_hat, y: -(y * torch.log(y_hat)).sum(1).mean(),
}
# every output activation with the regression losses; sigmoid with BCE; softmax with CE (and with SE)
OUTPUT_AND_LOSS = [
    (out, loss) for out in HIDDEN_ACTIVATIONS for loss in ("squared_error", "absolute_error")
] + [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("softmax", "squared_error")]
ARCHITECTURES = [(3,), (5, 3)]  # one hidden layer (the lecture's) and a deeper net


def torch_cost_and_gradient(net: MLP, W, x, y, loss):
    """J and ∂J/∂W^(l) by torch.autograd on the same weights, z^(l) = [1, u^(l−1)] W^(l)."""
    weights = [torch.tensor(layer, requires_grad=True) for layer in W]
    a = torch.tensor(x)
    for l, layer in enumerate(weights):
        name = net.output_activation if l == len(weights) - 1 else net.hidden_activation
        a = TORCH_ACTIVATIONS[name](torch.cat([torch.ones(len(a), 1, dtype=a.dtype), a], dim=1) @ layer)
    J = TORCH_COSTS[loss](a, torch.tensor(y))
    J.backward()
    return J.item(), [layer.grad.numpy() for layer in weights], a.detach().numpy()


def data(net: MLP, loss: str, m: int, rng: np.random.Generator):
    x = rng.normal(size=(m, net.n_inputs))
    if loss == "cross_entropy":
        y = np.eye(net.n_outputs)[rng.integers(net.n_outputs, size=m)]
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(m, net.n_outputs)).astype(float)
    else:
        y = rng.normal(size=(m, net.n_outputs))
    return x, y


@pytest.mark.parametrize("hidden", ARCHITECTURES, ids=str)
@pytest.mark.parametrize("output, loss", OUTPUT_AND_LOSS)
@pytest.mark.parametrize("hidden_activation", HIDDEN_ACTIVATIONS)
def test_backprop_agrees_with_autograd(hidden_activation, output, loss, hidden):
    net = MLP(n_inputs=4, hidden=hidden, n_outputs=3, hidden_activation=hidden_activation, output_activation=output)
    rng = np.random.default_rng(zlib.crc32(repr((hidden_activation, output, loss, hidden)).encode()))
    W = [2.0 * layer for layer in net.init(rng)]  # larger weights: ReLUs both on and off
    x, y = data(net, loss, 6, rng)
    J, grad = net.cost_and_gradient(net.flatten(W), x, y, loss)
    J_torch, grads_torch, y_hat_torch = torch_cost_and_gradient(net, W, x, y, loss)
    np.testing.assert_allclose(net.forward(W, x).y_hat, y_hat_torch, rtol=1e-12, atol=1e-14)
    assert J == pytest.approx(J_torch, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(grad, net.flatten(grads_torch), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_derivative_at_the_kink_is_autograds(activation):
    # x = 0 and zero biases put z^(1) = 0 exactly; σ(0) = 0 and a zero output bias put z^(2) = 0 exactly
    net = MLP(n_inputs=2, hidden=(3,), n_outputs=1, hidden_activation=activation, output_activation=activation)
    W = net.init(np.random.default_rng(0))
    W[0][0], W[1][0] = 0.0, 0.0
    x, y = np.zeros((1, 2)), np.array([[1.0]])
    forward = net.forward(W, x)
    assert np.all(forward.z[0] == 0.0) and np.all(forward.z[1] == 0.0)
    _, grad = net.cost_and_gradient(net.flatten(W), x, y, "squared_error")
    _, grads_torch, _ = torch_cost_and_gradient(net, W, x, y, "squared_error")
    np.testing.assert_array_equal(grad, net.flatten(grads_torch))
    # ∂L/∂w_0^(2) = ε^(2) σ'(0) · 1 with ε^(2) = 2(0 − 1) = −2: σ'(0) = 0 (relu), 0.01 (leaky), 1 (elu)
    assert grad[net.n_weights - 4] == -2.0 * {"relu": 0.0, "leaky_relu": 0.01, "elu": 1.0}[activation]


@pytest.mark.parametrize(
    "hidden, hidden_activation, output, loss",
    [
        ((3,), "tanh", "identity", "squared_error"),
        ((3,), "sigmoid", "sigmoid", "binary_cross_entropy"),
        ((4,), "elu", "softmax", "cross_entropy"),
        ((3,), "tanh", "tanh", "absolute_error"),
        ((4, 3), "relu", "leaky_relu", "squared_error"),
    ],
)
def test_backprop_agrees_with_central_differences(hidden, hidden_activation, output, loss):
    net = MLP(n_inputs=3, hidden=hidden, n_outputs=2, hidden_activation=hidden_activation, output_activation=output)
    rng = np.random.default_rng(1)
    w = net.flatten(net.init(rng))
    x, y = data(net, loss, 5, rng)
    J = partial(net.cost_and_gradient, x=x, y=y, loss=loss)
    h = 1e-6
    numeric = np.array([(J(w + h * e)[0] - J(w - h * e)[0]) / (2 * h) for e in np.eye(w.size)])
    np.testing.assert_allclose(J(w)[1], numeric, rtol=1e-6, atol=1e-8)


def test_forward_is_the_lectures_double_sum():
    # ŷ_m = σ^(2)(Σ_{h=0..H} w_hm^(2) σ^(1)(Σ_{j=0..n} w_jh^(1) x_j)), x_0 = u_0 = 1, written as loops
    net = MLP(n_inputs=3, hidden=(4,), n_outputs=2, hidden_activation="tanh", output_activation="sigmoid")
    rng = np.random.default_rng(2)
    W1, W2 = net.init(rng)
    x = rng.normal(size=(1, 3))
    forward = net.forward([W1, W2], x)
    x_ = [1.0, *x[0]]
    z1 = [sum(W1[j, h] * x_[j] for j in range(4)) for h in range(4)]
    u_ = [1.0, *(math.tanh(z) for z in z1)]
    z2 = [sum(W2[h, m] * u_[h] for h in range(5)) for m in range(2)]
    y_hat = [1.0 / (1.0 + math.exp(-z)) for z in z2]
    np.testing.assert_allclose(forward.z[0][0], z1, rtol=1e-14)
    np.testing.assert_allclose(forward.u[0][0], u_[1:], rtol=1e-14)
    np.testing.assert_allclose(forward.z[1][0], z2, rtol=1e-14)
    np.testing.assert_allclose(forward.y_hat[0], y_hat, rtol=1e-14)


def test_backward_keeps_the_lectures_errors():
    # one observation, one hidden layer: ε^(2) = ∂L/∂ŷ, ε_h^(1) = Σ_m ε_m^(2) σ'(z_m^(2)) w_hm^(2)
    net = MLP(n_inputs=2, hidden=(3,), n_outputs=2, hidden_activation="tanh", output_activation="sigmoid")
    rng = np.random.default_rng(5)
    W = net.init(rng)
    forward = net.forward(W, rng.normal(size=(1, 2)))
    eps2 = rng.normal(size=(1, 2))
    backward = net.backward(W, forward, eps2)
    y_hat = forward.y_hat
    np.testing.assert_array_equal(backward.eps[1], eps2)
    np.testing.assert_allclose(backward.dz[1], eps2 * y_hat * (1 - y_hat), rtol=1e-15)
    np.testing.assert_allclose(backward.eps[0], (eps2 * y_hat * (1 - y_hat)) @ W[1][1:].T, rtol=1e-14)
    # ∂L/∂w_jh^(1) = ε_h^(1) σ'(z_h^(1)) x_j with x_0 = 1
    x_ = np.concatenate([[1.0], forward.x[0]])
    dz1 = backward.eps[0][0] * (1 - forward.u[0][0] ** 2)
    np.testing.assert_allclose(backward.grads[0], np.outer(x_, dz1), rtol=1e-14)


def test_batched_gradients_are_sums_over_observations():
    net = MLP(n_inputs=2, hidden=(3, 2), n_outputs=2, hidden_activation="elu", output_activation="identity")
    rng = np.random.default_rng(6)
    W = net.init(rng)
    x, eps = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    batch = net.backward(W, net.forward(W, x), eps)
    singles = [net.backward(W, net.forward(W, x[i : i + 1]), eps[i : i + 1]) for i in range(4)]
    for l in range(3):
        np.testing.assert_allclose(batch.grads[l], sum(s.grads[l] for s in singles), rtol=1e-13)
        np.testing.assert_allclose(batch.eps[l], np.vstack([s.eps[l] for s in singles]), rtol=1e-14)


def test_flatten_is_the_lectures_order():
    # w = (w01(1), w11(1), w21(1), w02(1), w12(1), w22(1), w0(2), w1(2), w2(2)) = 0..8
    net = MLP(n_inputs=2, hidden=(2,), n_outputs=1)
    W1, W2 = net.unflatten(np.arange(9.0))
    assert W1.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]  # rows j = 0..2, columns h = 1, 2
    assert W2.tolist() == [[6.0], [7.0], [8.0]]  # rows h = 0..2
    assert net.flatten([W1, W2]).tolist() == list(range(9))


def test_init_shapes_and_bounds():
    net = MLP(n_inputs=900, hidden=(16,), n_outputs=1)
    W = net.init(np.random.default_rng(0))
    assert [layer.shape for layer in W] == [(901, 16), (17, 1)]
    assert net.n_weights == 14_416 + 17  # the lecture's Keras summary
    assert np.abs(W[0]).max() <= 1 / math.sqrt(900) and np.abs(W[1]).max() <= 1 / math.sqrt(16)


def test_softmax_is_stable_and_sums_to_one():
    net = MLP(n_inputs=1, hidden=(1,), n_outputs=3, hidden_activation="identity", output_activation="softmax")
    W = [np.array([[0.0], [1.0]]), np.array([[0.0, 0.0, 0.0], [1000.0, 999.0, -1000.0]])]
    y_hat = net.forward(W, [[1.0]]).y_hat[0]
    e = math.exp(-1.0)
    np.testing.assert_allclose(y_hat, [1 / (1 + e), e / (1 + e), 0.0], rtol=1e-15, atol=1e-300)
    assert set(ACTIVATIONS) == {*HIDDEN_ACTIVATIONS, "softmax"}


# ------------------------------------------------------------------ bad input
NET = MLP(n_inputs=2, hidden=(2,), n_outputs=1)
W_OK = NET.unflatten(np.zeros(9))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: NET.forward(W_OK, [[1.0, 2.0, 3.0]]), r"x has shape \(1, 3\); expected \(m, 2\)"),
        (lambda: NET.forward(W_OK, [1.0, 2.0]), r"x has shape \(2,\); expected \(m, 2\)"),
        (lambda: NET.forward(W_OK[:1], [[1.0, 2.0]]), "got 1 weight matrices; a network of sizes"),
        (lambda: NET.forward([W_OK[0].T, W_OK[1]], [[1.0, 2.0]]), r"W\^\(1\) has shape \(2, 3\); .* needs \(3, 2\)"),
        (lambda: NET.unflatten(np.zeros(8)), r"w has shape \(8,\); a network of sizes \(2, 2, 1\) has \(9,\)"),
        (lambda: NET.cost_and_gradient(np.zeros(9), [[1.0, 2.0]], [[1.0]], "hinge"), "unknown loss 'hinge'"),
        (lambda: NET.cost_and_gradient(np.zeros(9), [[1.0, 2.0]], [[1.0, 2.0]], "squared_error"), "same shape"),
        (lambda: NET.backward(W_OK, NET.forward(W_OK, [[1.0, 2.0]]), [[1.0, 2.0]]), r"eps_out has shape \(1, 2\)"),
        (lambda: MLP(hidden_activation="swish"), "unknown hidden_activation 'swish'; allowed: identity, sigmoid"),
        (lambda: MLP(hidden_activation="softmax"), "unknown hidden_activation 'softmax'; allowed: .*elu$"),
        (lambda: MLP(output_activation="maxout"), "unknown output_activation 'maxout'; allowed: .*softmax$"),
        (lambda: MLP(hidden=()), r"hidden=\(\) must list one or more layer sizes"),
        (lambda: MLP(hidden=(3, 0)), r"hidden=\(3, 0\) must list"),
        (lambda: MLP(n_inputs=0), "n_inputs=0 must be an integer ≥ 1"),
    ],
)
def test_bad_input_is_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
