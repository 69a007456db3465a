"""Linear value functions v̂(s, w) = wᵀx(s) and q̂(s, a, w) = wᵀx(s, a), with their gradients.

Everything is batched over leading axes: w of shape (runs, d) (or (configs, runs, d)) holds
one weight vector per independent run, and broadcasts against features of shape (…, d).
"""

from __future__ import annotations

import numpy as np


def _check_size(w: np.ndarray, x: np.ndarray) -> None:
    if w.shape[-1] != x.shape[-1]:
        raise ValueError(f"feature vector has size {x.shape[-1]}; the weights w have size d={w.shape[-1]}")


def v_hat(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """v̂(s, w) = wᵀx(s) = Σ_i w_i x_i(s); w (…, d) and x (…, d) broadcast, result (…)."""
    _check_size(w, x)
    return np.einsum("...d,...d->...", w, x)


def q_hat(w: np.ndarray, x_sa: np.ndarray) -> np.ndarray:
    """q̂(s, a, w) = wᵀx(s, a): the same linear form, on state-action features."""
    return v_hat(w, x_sa)


def grad_v_hat(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∇_w v̂(s, w) = x(s): the gradient of a linear function is its feature vector."""
    _check_size(w, x)
    return np.broadcast_to(x, np.broadcast_shapes(w.shape, x.shape))


def grad_q_hat(w: np.ndarray, x_sa: np.ndarray) -> np.ndarray:
    """∇_w q̂(s, a, w) = x(s, a)."""
    return grad_v_hat(w, x_sa)


def state_values(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """v̂(s, w) for every s ∈ S⁺: w (…, d), X (|S⁺|, d) → (…, |S⁺|)."""
    _check_size(w, X)
    return w @ X.T


def action_values(w: np.ndarray, X_sa: np.ndarray) -> np.ndarray:
    """q̂(s, a, w) for every (s, a): w (…, d), X_sa (|S⁺|, |A|, d) → (…, |S⁺|, |A|)."""
    _check_size(w, X_sa)
    return np.einsum("...d,sad->...sa", w, X_sa)


def rms_error(w: np.ndarray, X: np.ndarray, v: np.ndarray, states: np.ndarray) -> np.ndarray:
    """√( mean_{s ∈ states} (v̂(s, w) − v(s))² ) for each weight vector: w (…, d) → (…); inf if diverged."""
    with np.errstate(over="ignore", invalid="ignore"):
        error = state_values(w, X[states]) - np.asarray(v)[states]
        return np.sqrt(np.mean(error**2, axis=-1))
