"""The lecture's losses L(ŷ, y) for one observation, and costs J(w) as their means.

Rows are observations i = 1..m, columns are outputs j = 1..M:

    squared_error          L = Σ_j (ŷ_j − y_j)²                    ∂L/∂ŷ = 2(ŷ − y)
    absolute_error         L = ‖ŷ − y‖ = (Σ_j (ŷ_j − y_j)²)^½       ∂L/∂ŷ = (ŷ − y)/‖ŷ − y‖   (0 where ŷ = y)
    binary_cross_entropy   L = −Σ_j [y_j ln ŷ_j + (1 − y_j) ln(1 − ŷ_j)]
    cross_entropy          L = −Σ_j y_j ln ŷ_j                      ∂L/∂ŷ = −y/ŷ

    J(w) = (1/m) Σ_i L^(i)(w):  MSE, MAE, CE.

Two differences from Keras worth knowing:
  * absolute_error is the lecture's Euclidean norm ‖ŷ − y‖. Keras' `mean_absolute_error` is the
    mean of |ŷ_j − y_j| over the M outputs. They agree for M = 1 only: for ŷ − y = (3, 4)
    the lecture's loss is 5 and Keras' is 3.5.
  * squared_error sums over the M outputs as the lecture does; Keras' `mean_squared_error`
    divides that sum by M.
binary_cross_entropy with one output (M = 1) is the lecture's two-class cross-entropy
−(y_1 ln ŷ_1 + y_2 ln ŷ_2) with y_2 = 1 − y_1 and ŷ_2 = 1 − ŷ_1 (a sigmoid output); with M > 1 it
sums independent two-class losses. Cross-entropies use 0 ln 0 = 0 and then a zero derivative.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qapprox.envs.validation import check_choice

LossFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _y_ln(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """y ln p elementwise, with 0 ln 0 = 0."""
    return np.where(y == 0, 0.0, y * np.log(np.where(y == 0, 1.0, p)))


def _y_over(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """y / p elementwise, 0 where y = 0 (the derivative of y ln p)."""
    return np.divide(y, p, out=np.zeros_like(p), where=y != 0)


def squared_error(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L = Σ_j (ŷ_j − y_j)², ∂L/∂ŷ = 2(ŷ − y)."""
    diff = y_hat - y
    return np.sum(diff**2, axis=1), 2.0 * diff


def absolute_error(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L = ‖ŷ − y‖ (Euclidean), ∂L/∂ŷ = (ŷ − y)/‖ŷ − y‖, and 0 at ŷ = y (as torch.autograd gives)."""
    diff = y_hat - y
    norm = np.sqrt(np.sum(diff**2, axis=1, keepdims=True))
    return norm[:, 0], np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)


def binary_cross_entropy(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L = −Σ_j [y_j ln ŷ_j + (1 − y_j) ln(1 − ŷ_j)], ∂L/∂ŷ = −y/ŷ + (1 − y)/(1 − ŷ)."""
    value = -np.sum(_y_ln(y, y_hat) + _y_ln(1.0 - y, 1.0 - y_hat), axis=1)
    return value, -_y_over(y, y_hat) + _y_over(1.0 - y, 1.0 - y_hat)


def cross_entropy(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L = −Σ_j y_j ln ŷ_j, ∂L/∂ŷ = −y/ŷ (with a softmax output, ∂L/∂z^(2) = ŷ − y)."""
    return -np.sum(_y_ln(y, y_hat), axis=1), -_y_over(y, y_hat)


LOSSES: dict[str, LossFunction] = {
    "squared_error": squared_error,
    "absolute_error": absolute_error,
    "binary_cross_entropy": binary_cross_entropy,
    "cross_entropy": cross_entropy,
}


def check_loss(name: str) -> LossFunction:
    """The loss called `name`, or a one-line ValueError listing the allowed names."""
    return LOSSES[check_choice("loss", name, LOSSES, label="loss")]


def _as_rows(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_hat, y = np.asarray(y_hat, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y_hat.ndim != 2 or y_hat.shape != y.shape:
        raise ValueError(f"y_hat and y must have the same shape (m, M), got {y_hat.shape} and {y.shape}")
    if y.shape[0] == 0:
        raise ValueError("y_hat and y have m=0 rows; at least one observation is needed")
    return y_hat, y


def loss(name: str, y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L^(i) for each row i, shape (m,), and ∂L^(i)/∂ŷ^(i), shape (m, M)."""
    function = check_loss(name)
    return function(*_as_rows(y_hat, y))


def cost(name: str, y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """J = (1/m) Σ_i L^(i) and ∂J/∂ŷ^(i) = (1/m) ∂L^(i)/∂ŷ^(i), shape (m, M)."""
    value, grad = loss(name, y_hat, y)
    m = value.shape[0]
    return float(np.mean(value)), grad / m
