"""Linear v̂ = wᵀx(s), q̂ = wᵀx(s, a), their gradients (checked with autograd) and the RMS error."""

import numpy as np
import pytest
import torch

from qapprox.approximators.features import block_state_action_features, state_action_features, state_features
from qapprox.approximators.linear import (
    action_values,
    grad_q_hat,
    grad_v_hat,
    q_hat,
    rms_error,
    state_values,
    v_hat,
)
from qapprox.envs import quiz9_mdp
from qapprox.envs.validation import check_positive, check_unit_interval


def test_v_hat_by_hand_and_batched_over_runs():
    w = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])       # two runs
    assert v_hat(w[0], np.array([0.0, 1.0, 0.0])) == 2.0     # one-hot: v̂(s_B) = w2
    assert v_hat(w, np.array([1.0, 1.0, 2.0])).tolist() == [9.0, 7.5]   # 1+2+6, −1+0.5+8


def test_q_hat_with_block_features_is_the_action_blocks_weights():
    mdp = quiz9_mdp()
    X_sa = block_state_action_features(state_features(mdp), mdp.n_actions)
    w = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])           # w_0 = (1,2,3), w_1 = (10,20,30)
    assert q_hat(w, X_sa[2, 1]) == 30.0                        # q̂(s_C, a_1) = w_1ᵀx(s_C)
    assert action_values(w, X_sa).tolist() == [[1, 10], [2, 20], [3, 30], [0, 0]]


def test_gradients_match_autograd():
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=5), rng.normal(size=5)
    w_torch = torch.tensor(w, requires_grad=True)
    (w_torch @ torch.tensor(x)).backward()
    assert np.allclose(grad_v_hat(w, x), w_torch.grad.numpy(), atol=0, rtol=1e-15)
    assert grad_q_hat(np.zeros((3, 5)), x).shape == (3, 5)      # one gradient per run


def test_state_values_and_rms_error():
    mdp = quiz9_mdp()
    X = state_features(mdp)
    w = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert state_values(w, X).tolist() == [[1, 2, 3, 0], [0, 0, 0, 0]]
    v = np.array([1.0, 0.0, 5.0, 0.0])
    # run 0: errors (0, 2, −2) → √(8/3); run 1: (−1, 0, −5) → √(26/3)
    assert np.allclose(rms_error(w, X, v, mdp.nonterminal), [np.sqrt(8 / 3), np.sqrt(26 / 3)], atol=1e-15)
    assert action_values(w, state_action_features(mdp)[..., :3]).shape == (2, 4, 2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: v_hat(np.zeros(3), np.zeros(4)), "feature vector has size 4; the weights w have size d=3"),
        (lambda: grad_v_hat(np.zeros((2, 3)), np.zeros(2)), "feature vector has size 2"),
        (lambda: check_unit_interval("lam", [0.5, 1.5]), "lam=1.5 is outside [0, 1]"),
        (lambda: check_unit_interval("gamma", -0.1), "gamma=-0.1 is outside [0, 1]"),
        (lambda: check_positive("alpha", 0.0), "alpha=0 must be > 0"),
    ],
)
def test_bad_input_is_a_one_line_value_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)
