"""The lecture's 2-2-1 ReLU example: numbers worked by hand, torch.autograd, and the script's output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qapprox.approximators.worked_example import DEFAULT_WEIGHTS, WEIGHT_NAMES, worked_example
from qapprox.scripts.backprop_example import main

ROOT = Path(__file__).resolve().parents[1]

# The defaults, worked by hand (f = ReLU, L = (ŷ − y)², x_0 = u_0 = 1):
#   w_01(1) = 0.5, w_11(1) = 1, w_21(1) = −0.5, w_02(1) = −1, w_12(1) = 0.5, w_22(1) = 1,
#   w_0(2) = 0.5, w_1(2) = 1, w_2(2) = −0.5;   x_1 = 1, x_2 = 2, y = 1, α = 0.1
#
# forward propagation
#   z_1^(1) = 0.5 + 1·1 + (−0.5)·2 = 0.5 + 1 − 1   = 0.5    u_1 = f(0.5) = 0.5
#   z_2^(1) = −1 + 0.5·1 + 1·2     = −1 + 0.5 + 2  = 1.5    u_2 = f(1.5) = 1.5
#   z^(2)   = 0.5 + 1·0.5 + (−0.5)·1.5 = 0.5 + 0.5 − 0.75 = 0.25,   ŷ = f(0.25) = 0.25
#   L = (0.25 − 1)² = 0.5625
# backpropagation (every z > 0, so f'(z) = 1 throughout)
#   ε^(2)   = 2(ŷ − y) = 2(0.25 − 1)      = −1.5
#   ε_1^(1) = ε^(2) f'(z^(2)) w_1^(2) = −1.5 · 1 · 1      = −1.5
#   ε_2^(1) = ε^(2) f'(z^(2)) w_2^(2) = −1.5 · 1 · (−0.5) = 0.75
# gradient, the lecture's order
#   ∂L/∂w_j1^(1) = ε_1^(1) f'(z_1^(1)) x_j = −1.5 · (1, 1, 2)   = (−1.5, −1.5, −3)
#   ∂L/∂w_j2^(1) = ε_2^(1) f'(z_2^(1)) x_j = 0.75 · (1, 1, 2)   = (0.75, 0.75, 1.5)
#   ∂L/∂w_h^(2)  = ε^(2) f'(z^(2)) u_h     = −1.5 · (1, 0.5, 1.5) = (−1.5, −0.75, −2.25)
# one SGD step w := w − 0.1 ∇L
#   (0.5 + 0.15, 1 + 0.15, −0.5 + 0.3, −1 − 0.075, 0.5 − 0.075, 1 − 0.15, 0.5 + 0.15, 1 + 0.075, −0.5 + 0.225)
#   = (0.65, 1.15, −0.2, −1.075, 0.425, 0.85, 0.65, 1.075, −0.275)
BY_HAND = {
    "z1": [0.5, 1.5],
    "u": [0.5, 1.5],
    "z2": 0.25,
    "y_hat": 0.25,
    "loss": 0.5625,
    "eps2": -1.5,
    "eps1": [-1.5, 0.75],
    "grad": [-1.5, -1.5, -3.0, 0.75, 0.75, 1.5, -1.5, -0.75, -2.25],
    "weights_after": [0.65, 1.15, -0.2, -1.075, 0.425, 0.85, 0.65, 1.075, -0.275],
}


def check_by_hand(result: dict) -> None:
    for key, expected in BY_HAND.items():
        assert result[key] == pytest.approx(expected, rel=1e-14, abs=1e-15), key


def test_defaults_match_the_numbers_worked_by_hand():
    check_by_hand(worked_example())


def autograd_example(w, x1, x2, y):
    """The lecture's formulas written out in torch, one scalar at a time."""
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    f = torch.relu
    w01, w11, w21, w02, w12, w22, w0, w1, w2 = w
    u1 = f(w01 + w11 * x1 + w21 * x2)
    u2 = f(w02 + w12 * x1 + w22 * x2)
    y_hat = f(w0 + w1 * u1 + w2 * u2)
    loss = (y_hat - y) ** 2
    loss.backward()
    return loss.item(), w.grad.tolist()


@pytest.mark.parametrize(
    "w, x1, x2, y",
    [
        (DEFAULT_WEIGHTS, 1.0, 2.0, 1.0),
        ((0.3, -1.2, 0.7, 0.1, 0.4, -0.8, -0.2, 0.9, 1.3), 0.6, -1.1, 2.0),  # hidden unit 1 off (z_1^(1) < 0)
        ((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), -2.0, 3.5, -0.5),
    ],
)
def test_gradient_and_step_agree_with_autograd(w, x1, x2, y):
    result = worked_example(w, x1, x2, y, alpha=0.05)
    loss, grad = autograd_example(w, x1, x2, y)
    assert result["loss"] == pytest.approx(loss, rel=1e-14)
    assert result["grad"] == pytest.approx(grad, rel=1e-10, abs=1e-12)
    assert result["weights_after"] == pytest.approx([a - 0.05 * g for a, g in zip(w, grad)], rel=1e-12, abs=1e-14)


def test_hidden_unit_off_gets_no_gradient():
    # z_1^(1) = 0.3 − 1.2·0.6 + 0.7·(−1.1) = 0.3 − 0.72 − 0.77 = −1.19 < 0: u_1 = 0 and f'(z_1^(1)) = 0
    result = worked_example((0.3, -1.2, 0.7, 0.1, 0.4, -0.8, -0.2, 0.9, 1.3), 0.6, -1.1, 2.0)
    assert result["z1"][0] == pytest.approx(-1.19, rel=1e-14) and result["u"][0] == 0.0
    assert result["grad"][:3] == [0.0, 0.0, 0.0]  # ∂L/∂w_j1^(1) = ε_1^(1) · 0 · x_j
    assert result["grad"][7] == 0.0  # ∂L/∂w_1^(2) = ε^(2) f'(z^(2)) u_1 with u_1 = 0


def test_script_run_as_a_module_prints_the_numbers_as_json():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "scripts.backprop_example", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    check_by_hand(result)
    assert result["weight_names"] == list(WEIGHT_NAMES)


def test_script_text_report_and_bad_input(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "ε_2^(1) = ∂L/∂u_2 = ε^(2) f'(z^(2)) w_2^(2)  = 0.75" in out
    assert "  w_21^(1)            -0.5            -3            -0.2" in out
    with pytest.raises(ValueError, match=r"^alpha=-1.0 is not a positive learning rate; allowed: alpha > 0$"):
        main(["--alpha", "-1"])
