"""Returns G_t, first- and every-visit data sets, and linear regression of returns."""

import numpy as np
import pytest

from qapprox.approximators.features import block_state_action_features, state_action_features, state_features
from qapprox.approximators.monte_carlo import LinearRegression, regression_data, returns
from qapprox.envs import make_mdp, quiz9_mdp

A, B, C = 0, 1, 2


def test_returns_by_hand_for_two_episodes():
    # episode 1, R = (1, 0, 2), γ = ½: G_2 = 2, G_1 = 0 + ½·2 = 1, G_0 = 1 + ½·1 = 1.5
    # episode 2, R = (5, 1):             G_1 = 1, G_0 = 5 + ½·1 = 5.5
    assert returns([1, 0, 2, 5, 1], 0.5, [3, 2]).tolist() == [1.5, 1.0, 2.0, 5.5, 1.0]


def test_returns_match_the_sum_definition():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=50)
    R = rng.normal(size=lengths.sum())
    G = returns(R, 0.9, lengths)
    start = 0
    for T in lengths:
        for t in range(T):
            assert G[start + t] == pytest.approx(sum(0.9**k * R[start + t + k] for k in range(T - t)), abs=1e-12)
        start += T


HAND = [(np.array([A, B, A]), np.array([1, 0, 1]), np.array([1.0, 0.0, 1.0]))]   # γ = 1: G = (2, 1, 1)


def test_every_visit_and_first_visit_data():
    X = state_features(quiz9_mdp())
    X_every, G_every = regression_data(HAND, X, 1.0)
    assert X_every.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]] and G_every.tolist() == [2, 1, 1]
    X_first, G_first = regression_data(HAND, X, 1.0, first_visit=True)
    assert X_first.tolist() == [[1, 0, 0], [0, 1, 0]] and G_first.tolist() == [2, 1]
    X_sa = state_action_features(quiz9_mdp())       # (s_A, a_1), (s_B, a_0), (s_A, a_1): first visit drops the last
    X_q, G_q = regression_data(HAND, X_sa, 1.0, action_values=True, first_visit=True)
    assert X_q.argmax(axis=1).tolist() == [1, 2] and G_q.tolist() == [2, 1]


def test_least_squares_on_one_hot_is_the_average_return():
    X, G = regression_data(HAND, state_features(quiz9_mdp()), 1.0)
    # w_A = mean(2, 1) = 1.5, w_B = 1, s_C never seen: minimum-norm 0
    assert np.allclose(LinearRegression().fit(X, G).w, [1.5, 1.0, 0.0], atol=1e-12)
    # ridge 1: (XᵀX + I) w = XᵀG → w_A = 3 / (2 + 1), w_B = 1 / (1 + 1)
    assert np.allclose(LinearRegression(ridge=1.0).fit(X, G).w, [1.0, 0.5, 0.0], atol=1e-12)


def test_sgd_one_step_by_hand_and_minibatch_reaches_least_squares():
    # one observation x = (1, 2), y = 1, w = 0: ∇(ŷ − y)² = 2(0 − 1)x → w = 0.1·2·(1, 2)
    fit = LinearRegression("sgd", alpha=0.1, epochs=1).fit(np.array([[1.0, 2.0]]), np.array([1.0]))
    assert np.allclose(fit.w, [0.2, 0.4], atol=1e-15)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=2000)
    exact = LinearRegression().fit(X, y).w
    for method in ("sgd", "minibatch"):
        estimate = LinearRegression(method, alpha=0.01, epochs=20, batch_size=16).fit(X, y)
        assert np.max(np.abs(estimate.w - exact)) < 0.02
        assert np.allclose(estimate.predict(X[:3]), X[:3] @ estimate.w)


def test_regression_of_returns_approaches_v_pi_and_q_pi_with_pooled_runs():
    mdp = quiz9_mdp()
    pi = mdp.uniform_policy()
    v_pi, q_pi = mdp.evaluate(pi)
    rng = np.random.default_rng(1)
    pooled = [episode for _ in range(4) for episode in mdp.episodes(pi, 1000, rng)]   # 4 runs of 1000
    v = LinearRegression().fit(*regression_data(pooled, state_features(mdp), mdp.gamma)).w
    assert np.max(np.abs(v - v_pi[:3])) < 0.25
    blocks = block_state_action_features(state_features(mdp), 2)
    q = LinearRegression().fit(*regression_data(pooled, blocks, mdp.gamma, action_values=True, first_visit=True)).w
    assert np.max(np.abs(q.reshape(2, 3).T - q_pi[:3])) < 0.3


def test_random_walk_first_visit_regression_is_close_to_v_pi():
    mdp = make_mdp("random-walk-5")
    v_pi, _ = mdp.evaluate(mdp.uniform_policy())
    episodes = mdp.episodes(mdp.uniform_policy(), 3000, np.random.default_rng(0))
    w = LinearRegression().fit(*regression_data(episodes, state_features(mdp), 1.0, first_visit=True)).w
    assert np.allclose(w, np.arange(1, 6) / 3 - 1, atol=0.05)      # v_π = (1..5)/3 − 1
    assert np.allclose(v_pi[1:6], np.arange(1, 6) / 3 - 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LinearRegression("adam"), "method='adam' is not one of lstsq, sgd, minibatch"),
        (lambda: LinearRegression(ridge=-1.0), "ridge=-1.0 must be ≥ 0"),
        (lambda: LinearRegression("sgd", alpha=0.0), "alpha=0 must be > 0"),
        (lambda: LinearRegression().predict(np.zeros((1, 3))), "predict before fit"),
        (lambda: LinearRegression().fit(np.eye(3), np.ones(3)).predict(np.zeros(4)), "feature vector has size 4"),
        (lambda: LinearRegression().fit(np.eye(3), np.ones(2)), "fit needs X of shape (m, d) and G of shape (m,)"),
        (lambda: returns([1.0, 2.0], 1.5), "gamma=1.5 is outside [0, 1]"),
        (lambda: returns([1.0, 2.0], 0.9, [3]), "episode lengths sum to 3 but there are 2 rewards"),
        (lambda: regression_data(HAND, state_features(quiz9_mdp()), 1.0, action_values=True), "expected (|S⁺|, |A|, d)"),
        (lambda: regression_data(HAND, np.zeros((1, 3)), 1.0), "episodes visit state 1"),
        (lambda: regression_data([], state_features(quiz9_mdp()), 1.0), "no episodes"),
    ],
)
def test_bad_input_is_a_one_line_value_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_linear_prediction_logs_its_curve_and_values_only_when_given_a_log_dir(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from qapprox.approximators.mc_prediction import linear_prediction

    monkeypatch.chdir(tmp_path)
    mdp = quiz9_mdp()
    curve = linear_prediction(mdp, 120)
    assert list(tmp_path.iterdir()) == []                                # log_dir=None: nothing written
    linear_prediction(mdp, 120, log_dir=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    for tag in ("v_pi", "v_star", "q_pi", "q_star"):
        scalars = events.Scalars(f"rms_error/{tag}")
        assert [s.step for s in scalars] == [10, 100, 120]
        assert [s.value for s in scalars] == pytest.approx([row[tag] for row in curve.rms_error], rel=1e-6)
    assert events.Tags()["tensors"] == ["values/text_summary"]
