"""Quiz 9: one test per question, each recomputing its evidence (approximators.quiz9; python -m scripts.quiz9)."""

import json

import numpy as np

from qapprox.envs import quiz9_mdp
from qapprox.approximators.quiz9 import question1, question2, question4, question5
from qapprox.scripts.quiz9 import main


def test_q1_dqn_approximates_the_action_value_function_with_a_deep_network():
    result = question1()
    assert result["answer"] == "B" and result["available"]
    assert result["output_shape"] == [3, 2]          # a batch of 3 states → one q̂(s, a) per action (|A| = 2)
    assert result["hidden_layers"] >= 1 and result["activations"]   # deep: hidden layers with nonlinearities
    assert result["layer_sizes"].startswith("4 → ") and result["layer_sizes"].endswith(" → 2")


def test_q2_lambda_above_zero_updates_more_than_one_weight():
    result = question2(episodes=10)
    assert result["answer"] == "False"
    assert result["max_weights_changed"]["0"] == 1                   # TD(0): only w of S_t moves
    for lam in ("0.5", "0.9", "1"):
        assert result["max_weights_changed"][lam] > 1                 # the trace spreads δ_t
        assert sum(result["weights_changed_histogram"][lam][2:]) > 0
    assert sum(result["weights_changed_histogram"]["0"]) == result["steps"]


def test_q4_regression_on_state_features_approaches_v_pi_not_v_star():
    result = question4(counts=(10, 3000))
    v_pi, _ = quiz9_mdp().evaluate(quiz9_mdp().uniform_policy())
    v_star, _ = quiz9_mdp().optimal()
    gap = np.max(np.abs(v_pi - v_star))                               # 6.15: the two answers are far apart
    assert result["answer"] == "A"
    errors = result["max_error"]
    assert errors["v_π"][-1] < 0.3 and errors["v_π"][-1] < errors["v_π"][0]
    assert errors["v_*"][-1] > gap - 0.5


def test_q5_regression_on_state_action_features_approaches_q_pi_not_q_star():
    result = question5(counts=(10, 3000))
    assert result["answer"] == "B"
    errors = result["max_error"]
    assert errors["q_π"][-1] < 0.3 and errors["q_π"][-1] < errors["q_π"][0]
    assert errors["q_*"][-1] > 4                                      # |q_π − q_*| = 8.1 − 2.57 = 5.53 at (s_B, back)


def test_script_prints_b_false_a_b_as_json(capsys):
    assert main(["--json", "--episodes", "1000"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert {key: value["answer"] for key, value in answers.items()} == {"Q1": "B", "Q2": "False", "Q4": "A", "Q5": "B"}
