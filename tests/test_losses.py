"""Losses and costs: values worked by hand, torch's built-in losses, autograd for ∂L/∂ŷ."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qapprox.approximators import losses


def test_squared_error_by_hand():
    # ŷ − y = (1 − 0, 2 − 4) = (1, −2): L = 1 + 4 = 5, ∂L/∂ŷ = 2(ŷ − y) = (2, −4)
    value, grad = losses.loss("squared_error", [[1.0, 2.0]], [[0.0, 4.0]])
    assert value.tolist() == [5.0]
    assert grad.tolist() == [[2.0, -4.0]]


def test_absolute_error_is_the_lectures_euclidean_norm_not_keras_mean():
    # ŷ − y = (3, 4): L = √(9 + 16) = 5, ∂L/∂ŷ = (3, 4)/5; Keras' mean |·| would be 3.5
    value, grad = losses.loss("absolute_error", [[3.0, 4.0]], [[0.0, 0.0]])
    assert value.tolist() == [5.0]
    np.testing.assert_allclose(grad, [[0.6, 0.8]], rtol=1e-15)
    keras_mae = F.l1_loss(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)).item()
    assert keras_mae == 3.5 != value[0]


def test_absolute_error_gradient_at_zero_is_zero_like_autograd():
    y_hat = np.array([[1.0, 2.0], [1.0, 2.5], [3.0, 3.0]])
    y = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 3.0]])  # rows 0 and 2: ŷ = y exactly
    value, grad = losses.loss("absolute_error", y_hat, y)
    assert value.tolist() == [0.0, 0.5, 0.0]
    assert grad.tolist() == [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    t = torch.tensor(y_hat, requires_grad=True)
    torch.linalg.vector_norm(t - torch.tensor(y), dim=1).sum().backward()
    np.testing.assert_array_equal(grad, t.grad.numpy())
    # M = 1 at ŷ = y: |ŷ − y| with derivative 0, as torch's abs
    assert losses.loss("absolute_error", [[2.0]], [[2.0]])[1].tolist() == [[0.0]]


def test_cross_entropy_by_hand():
    # y = (0, 1, 0), ŷ = (0.2, 0.5, 0.3): L = −ln 0.5 = ln 2, ∂L/∂ŷ = −y/ŷ = (0, −2, 0)
    value, grad = losses.loss("cross_entropy", [[0.2, 0.5, 0.3]], [[0.0, 1.0, 0.0]])
    assert value[0] == pytest.approx(math.log(2.0), rel=1e-15)
    assert grad.tolist() == [[0.0, -2.0, 0.0]]


def test_binary_cross_entropy_is_the_lectures_two_class_cross_entropy():
    # one sigmoid output ŷ = 0.8, y = 1: L = −(1·ln 0.8 + 0·ln 0.2) = −ln 0.8, ∂L/∂ŷ = −1/0.8 = −1.25
    value, grad = losses.loss("binary_cross_entropy", [[0.8]], [[1.0]])
    assert value[0] == pytest.approx(-math.log(0.8), rel=1e-15)
    assert grad[0, 0] == pytest.approx(-1.25, rel=1e-15)
    # the lecture's M = 2 form with ŷ_2 = 1 − ŷ_1, y_2 = 1 − y_1 gives the same number
    two_class, _ = losses.loss("cross_entropy", [[0.3, 0.7]], [[0.0, 1.0]])
    binary, _ = losses.loss("binary_cross_entropy", [[0.3]], [[0.0]])
    assert binary[0] == pytest.approx(two_class[0], rel=1e-15)


def test_zero_log_zero_is_zero():
    value, grad = losses.loss("cross_entropy", [[0.0, 1.0]], [[0.0, 1.0]])
    assert value.tolist() == [0.0] and grad.tolist() == [[0.0, -1.0]]


def _torch_loss(name: str, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-observation losses written with torch: the reference for values and autograd."""
    if name == "squared_error":
        return ((y_hat - y) ** 2).sum(1)
    if name == "absolute_error":
        return torch.linalg.vector_norm(y_hat - y, dim=1)
    if name == "binary_cross_entropy":
        return -(y * torch.log(y_hat) + (1 - y) * torch.log(1 - y_hat)).sum(1)
    return -(y * torch.log(y_hat)).sum(1)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_cost_and_gradient_agree_with_autograd(name):
    rng = np.random.default_rng(3)
    m, M = 7, 3
    if name == "cross_entropy":
        y_hat = rng.dirichlet(np.ones(M), size=m)
        y = np.eye(M)[rng.integers(M, size=m)]
    elif name == "binary_cross_entropy":
        y_hat = rng.uniform(0.05, 0.95, size=(m, M))
        y = rng.integers(0, 2, size=(m, M)).astype(float)
    else:
        y_hat, y = rng.normal(size=(m, M)), rng.normal(size=(m, M))
    J, dJ = losses.cost(name, y_hat, y)
    t = torch.tensor(y_hat, requires_grad=True)
    J_torch = _torch_loss(name, t, torch.tensor(y)).mean()
    J_torch.backward()
    assert J == pytest.approx(J_torch.item(), rel=1e-13)
    np.testing.assert_allclose(dJ, t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_costs_match_torch_builtin_losses():
    rng = np.random.default_rng(4)
    m, M = 6, 4
    y_hat, y = rng.normal(size=(m, M)), rng.normal(size=(m, M))
    # MSE: the lecture sums over outputs, torch's (and Keras') mean divides by M as well
    mse = F.mse_loss(torch.tensor(y_hat), torch.tensor(y)).item()
    assert losses.cost("squared_error", y_hat, y)[0] == pytest.approx(M * mse, rel=1e-13)
    # MAE with one output: the Euclidean norm is |·| and torch's l1_loss agrees
    mae = F.l1_loss(torch.tensor(y_hat[:, :1]), torch.tensor(y[:, :1])).item()
    assert losses.cost("absolute_error", y_hat[:, :1], y[:, :1])[0] == pytest.approx(mae, rel=1e-13)
    # CE of softmax(z) against one-hot y: torch's cross_entropy on the logits z
    z, labels = rng.normal(size=(m, M)), rng.integers(M, size=m)
    softmax = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ce = F.cross_entropy(torch.tensor(z), torch.tensor(labels)).item()
    assert losses.cost("cross_entropy", softmax, np.eye(M)[labels])[0] == pytest.approx(ce, rel=1e-13)
    # BCE of probabilities
    p, t = rng.uniform(0.1, 0.9, size=(m, 1)), rng.integers(0, 2, size=(m, 1)).astype(float)
    bce = F.binary_cross_entropy(torch.tensor(p), torch.tensor(t)).item()
    assert losses.cost("binary_cross_entropy", p, t)[0] == pytest.approx(bce, rel=1e-13)


def test_cost_is_the_mean_of_the_losses_and_its_gradient_one_mth():
    y_hat, y = np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]])
    # L = (1, 9): J = 5, ∂J/∂ŷ = 2(ŷ − y)/m = (1, 3)
    J, dJ = losses.cost("squared_error", y_hat, y)
    assert J == 5.0 and dJ.tolist() == [[1.0], [3.0]]


@pytest.mark.parametrize(
    "y_hat, y, message",
    [
        ([[1.0, 2.0]], [[1.0]], r"same shape \(m, M\), got \(1, 2\) and \(1, 1\)"),
        ([1.0, 2.0], [1.0, 2.0], r"same shape \(m, M\), got \(2,\) and \(2,\)"),
        (np.zeros((0, 1)), np.zeros((0, 1)), "m=0 rows"),
    ],
)
def test_bad_shapes_are_one_line_errors(y_hat, y, message):
    with pytest.raises(ValueError, match=message):
        losses.cost("squared_error", y_hat, y)


def test_unknown_loss_names_the_value_and_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown loss 'hinge'; allowed: squared_error, absolute_error, "
                       "binary_cross_entropy, cross_entropy$"):
        losses.cost("hinge", [[1.0]], [[1.0]])
