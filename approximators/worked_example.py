"""The lecture's worked example: forward propagation and backpropagation through a 2-2-1 network.

    u_h = f(z_h^(1)),  z_h^(1) = w_0h^(1) + w_1h^(1) x_1 + w_2h^(1) x_2,   h = 1, 2
    ŷ   = f(z^(2)),    z^(2)   = w_0^(2) + w_1^(2) u_1 + w_2^(2) u_2
    L   = (ŷ − y)²,    ε^(2) = 2(ŷ − y),   ε_h^(1) = ε^(2) f'(z^(2)) w_h^(2)
    ∂L/∂w_h^(2) = ε^(2) f'(z^(2)) u_h,     ∂L/∂w_jh^(1) = ε_h^(1) f'(z_h^(1)) x_j   (x_0 = u_0 = 1)
    one SGD step: w := w − α ∇L

    worked_example()                                   # the lecture's numbers, as a dict
    worked_example(w, x1=1, x2=2, y=1, alpha=0.1, activation="tanh")

The network is approximators.mlp.MLP, the step approximators.optim.gradient_descent with one
observation: the same code that trains the lecture's larger networks.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from qapprox.approximators import losses
from qapprox.approximators.mlp import MLP
from qapprox.approximators.optim import GDConfig, gradient_descent

WEIGHT_NAMES = ("w_01^(1)", "w_11^(1)", "w_21^(1)", "w_02^(1)", "w_12^(1)", "w_22^(1)", "w_0^(2)", "w_1^(2)", "w_2^(2)")
# Both hidden units and the output active (z > 0) at the default x = (1, 2): see tests/test_backprop_example.py
DEFAULT_WEIGHTS = (0.5, 1.0, -0.5, -1.0, 0.5, 1.0, 0.5, 1.0, -0.5)


def worked_example(
    w: tuple[float, ...] = DEFAULT_WEIGHTS,
    x1: float = 1.0,
    x2: float = 2.0,
    y: float = 1.0,
    alpha: float = 0.1,
    activation: str = "relu",
) -> dict:
    """Every number of the lecture's example, the weights in the lecture's order (WEIGHT_NAMES).

    Keys: z1 = (z_1^(1), z_2^(1)), u = (u_1, u_2), z2 = z^(2), y_hat = ŷ, loss = L, eps2 = ε^(2),
    eps1 = (ε_1^(1), ε_2^(1)), grad = ∇L and weights_after = w − α ∇L, beside the inputs. Weights
    and inputs whose numbers overflow float64 are a one-line ValueError.
    """
    net = MLP(n_inputs=2, hidden=(2,), n_outputs=1, hidden_activation=activation, output_activation=activation)
    w = np.asarray(w, dtype=np.float64)
    W = net.unflatten(w)
    x, target = np.array([[x1, x2]]), np.array([[y]])
    one_sgd_step = GDConfig(alpha=alpha, batch_size=1, epochs=1, shuffle=False)
    objective = partial(net.cost_and_gradient, loss="squared_error")
    with np.errstate(all="ignore"):  # an overflow is reported below, in one line
        forward = net.forward(W, x)
        loss_value, eps2 = losses.loss("squared_error", forward.y_hat, target)  # L = (ŷ − y)², ε^(2) = 2(ŷ − y)
        backward = net.backward(W, forward, eps2)
        w_after = gradient_descent(objective, w, x, target, one_sgd_step).w[-1]  # w := w − α ∇L
    grad = net.flatten(backward.grads)
    if not all(np.isfinite(n).all() for n in (forward.y_hat, loss_value, grad, w_after)):
        raise ValueError(f"these weights and inputs overflow float64: ŷ = {forward.y_hat[0, 0]:g}, L = {loss_value[0]:g}, "
                         f"max |∂L/∂w| = {np.abs(grad).max():g}; use smaller numbers")
    return {
        "activation": activation,
        "x": [x1, x2],
        "y": y,
        "alpha": alpha,
        "z1": forward.z[0][0].tolist(),
        "u": forward.u[0][0].tolist(),
        "z2": float(forward.z[1][0, 0]),
        "y_hat": float(forward.y_hat[0, 0]),
        "loss": float(loss_value[0]),
        "eps2": float(backward.eps[1][0, 0]),
        "eps1": backward.eps[0][0].tolist(),
        "weight_names": list(WEIGHT_NAMES),
        "weights": w.tolist(),
        "grad": grad.tolist(),
        "weights_after": w_after.tolist(),
    }
