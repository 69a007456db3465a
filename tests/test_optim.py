"""GD, SGD and mini-batch GD: steps worked by hand, convergence to least squares, shuffling, bad input."""

from functools import partial

import numpy as np
import pytest

from qapprox.approximators.mlp import MLP
from qapprox.approximators.optim import GDConfig, gradient_descent, linear_squared_error

# two observations, two weights: x^(1) = (1, 2), y^(1) = 1;  x^(2) = (3, 4), y^(2) = 2
X = np.array([[1.0, 2.0], [3.0, 4.0]])
Y = np.array([[1.0], [2.0]])


def test_one_gd_step_by_hand():
    # w = (0, 0): residuals ŷ − y = (−1, −2); ∇J = (2/m) Σ_i (ŷ^(i) − y^(i)) x^(i)
    #   = (2/2) [(−1)(1, 2) + (−2)(3, 4)] = (−7, −10);  w := w − 0.1 ∇J = (0.7, 1.0)
    path = gradient_descent(linear_squared_error, np.zeros(2), X, Y, GDConfig(alpha=0.1, epochs=1))
    np.testing.assert_allclose(path.w, [[0.0, 0.0], [0.7, 1.0]], rtol=1e-15)
    # J(0) = (1 + 4)/2 = 2.5 on the batch (the whole set) and on the whole set
    assert path.batch_cost.tolist() == [2.5] and path.cost[0] == 2.5
    # J(0.7, 1.0) = ((0.7 + 2 − 1)² + (2.1 + 4 − 2)²)/2 = (1.7² + 4.1²)/2 = (2.89 + 16.81)/2 = 9.85
    assert path.cost[1] == pytest.approx(9.85, rel=1e-14)


def test_sgd_steps_by_hand_in_order_without_shuffling():
    # observation 1: ŷ − y = −1, ∇L = 2(−1)(1, 2) = (−2, −4), w := (0, 0) − 0.1 ∇L = (0.2, 0.4)
    # observation 2: ŷ − y = 3·0.2 + 4·0.4 − 2 = 0.2, ∇L = 2(0.2)(3, 4) = (1.2, 1.6), w := (0.08, 0.24)
    config = GDConfig(alpha=0.1, batch_size=1, epochs=1, shuffle=False)
    path = gradient_descent(linear_squared_error, np.zeros(2), X, Y, config)
    np.testing.assert_allclose(path.w, [[0.0, 0.0], [0.2, 0.4], [0.08, 0.24]], rtol=1e-14)
    np.testing.assert_allclose(path.batch_cost, [1.0, 0.04], rtol=1e-14)  # (−1)², 0.2²


@pytest.mark.parametrize(
    "batch_size, alpha, epochs, tolerance", [(None, 0.1, 300, 1e-12), (10, 0.05, 300, 5e-3), (1, 0.01, 200, 2e-2)]
)
def test_each_variant_approaches_the_least_squares_solution(batch_size, alpha, epochs, tolerance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = x @ np.array([[2.0], [-1.0]]) + 0.1 * rng.normal(size=(50, 1))
    w_star = np.linalg.lstsq(x, y, rcond=None)[0][:, 0]
    path = gradient_descent(linear_squared_error, np.zeros(2), x, y, GDConfig(alpha, batch_size, epochs))
    # GD converges to w*; SGD and mini-batch GD hover around it with their gradient noise
    np.testing.assert_allclose(path.w[-1], w_star, atol=tolerance)
    assert path.w.shape == (1 + epochs * -(-50 // (batch_size or 50)), 2)
    assert path.cost.shape == (epochs + 1,)
    assert path.cost[-1] == pytest.approx(linear_squared_error(path.w[-1], x, y)[0], rel=1e-14)


def test_each_epoch_visits_every_observation_once_in_a_fresh_order():
    seen = []

    def recording(w, x, y):  # y holds the row index of each observation
        seen.append(y[:, 0].astype(int).tolist())
        return linear_squared_error(w, x, np.zeros_like(y))

    m = 10
    config = GDConfig(alpha=0.01, batch_size=4, epochs=3, seed=7)
    path = gradient_descent(recording, np.ones(2), np.ones((m, 2)), np.arange(m, dtype=float)[:, None], config)
    # calls: the initial J, then per epoch batches of 4, 4, 2 and the epoch's J on the whole set
    batches = [seen[1 + 4 * epoch : 4 + 4 * epoch] for epoch in range(3)]
    assert [[len(b) for b in epoch] for epoch in batches] == [[4, 4, 2]] * 3
    orders = [sum(epoch, []) for epoch in batches]
    assert all(sorted(order) == list(range(m)) for order in orders)
    assert len({tuple(order) for order in orders}) == 3
    assert path.w.shape == (1 + 3 * 3, 2)


def test_same_seed_same_path_and_minibatch_of_m_is_gd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
    a = gradient_descent(linear_squared_error, np.zeros(2), x, y, GDConfig(0.05, 5, 4, seed=3))
    b = gradient_descent(linear_squared_error, np.zeros(2), x, y, GDConfig(0.05, 5, 4, seed=3))
    np.testing.assert_array_equal(a.w, b.w)
    gd = gradient_descent(linear_squared_error, np.zeros(2), x, y, GDConfig(0.05, None, 4))
    full_batch = gradient_descent(linear_squared_error, np.zeros(2), x, y, GDConfig(0.05, 20, 4))
    np.testing.assert_allclose(gd.w, full_batch.w, rtol=1e-13)


def test_minibatch_gd_trains_the_mlp_on_xor():
    # XOR is not linearly separable: the hidden layer must learn it. Cross-entropy on a softmax output.
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 8)
    y = np.eye(2)[(x[:, 0] != x[:, 1]).astype(int)]
    net = MLP(n_inputs=2, hidden=(8,), n_outputs=2, hidden_activation="tanh", output_activation="softmax")
    objective = partial(net.cost_and_gradient, loss="cross_entropy")
    w0 = net.flatten(net.init(np.random.default_rng(0)))
    path = gradient_descent(objective, w0, x, y, GDConfig(alpha=0.5, batch_size=8, epochs=150))
    assert path.cost[0] > 0.65 and path.cost[-1] < 0.01  # ln 2 ≈ 0.69: from chance to (nearly) certain
    predicted = net.forward(net.unflatten(path.w[-1]), x).y_hat.argmax(1)
    np.testing.assert_array_equal(predicted, y.argmax(1))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GDConfig(alpha=0.0), r"alpha=0.0 is not a positive learning rate; allowed: alpha > 0"),
        (lambda: GDConfig(alpha=-0.1), r"alpha=-0.1 is not a positive learning rate"),
        (lambda: GDConfig(alpha=float("nan")), r"alpha=nan is not a positive learning rate"),
        (lambda: GDConfig(batch_size=0), r"batch_size=0 must be an integer in 1..m"),
        (lambda: GDConfig(batch_size=-3), r"batch_size=-3 must be an integer in 1..m"),
        (lambda: GDConfig(batch_size=2.5), r"batch_size=2.5 must be an integer"),
        (lambda: GDConfig(epochs=0), r"epochs=0 must be an integer ≥ 1"),
        (
            lambda: gradient_descent(linear_squared_error, np.zeros(2), X, Y, GDConfig(batch_size=3)),
            r"batch_size=3 is larger than the data set; allowed: 1..2",
        ),
        (lambda: gradient_descent(linear_squared_error, np.zeros(2), X, Y[:1]), r"must hold the same number m ≥ 1"),
        (lambda: gradient_descent(linear_squared_error, np.zeros((2, 1)), X, Y), r"w0 has shape \(2, 1\)"),
        (lambda: gradient_descent(linear_squared_error, np.zeros(3), X, Y), r"x \(2, 2\) and w \(3,\) do not match"),
        (lambda: linear_squared_error(np.zeros(2), X, Y[:, 0]), r"same shape \(m, M\), got \(2, 1\) and \(2,\)"),
    ],
)
def test_bad_input_is_a_one_line_value_error(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_gd_paths_script_logs_each_cost_curve_and_draws_the_png(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from qapprox.approximators.gd_paths import W_START, batch_sizes, compare, synthetic_data
    from qapprox.scripts import gd_paths

    flags = ["--m", "30", "--epochs", "5", "--batch-size", "6", "--logdir", str(tmp_path)]
    assert gd_paths.main(flags) == 0
    out = capsys.readouterr().out
    assert "threads: 1" in out and "sgd            1      150" in out  # 5 epochs × 30 updates
    assert (tmp_path / "gd_paths.png").stat().st_size > 10_000
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["cost/gd", "cost/minibatch", "cost/sgd"]
    # each curve is J(w) on the whole set per epoch, starting at J(w_start), one point per epoch
    x, y = synthetic_data(30, 0.3, 0)
    J_start = linear_squared_error(np.array(W_START), x, y)[0]
    paths = compare(x, y, batch_sizes(30, 6), alpha=0.05, epochs=5, seed=0)
    for name, path in paths.items():
        scalars = events.Scalars(f"cost/{name}")
        assert [s.step for s in scalars] == list(range(6))
        assert [s.value for s in scalars] == pytest.approx(path.cost, rel=1e-6)  # float32 in the event file
        assert path.cost[0] == J_start and path.cost[-1] < J_start


def test_gd_paths_logs_each_cost_curve_only_when_given_a_log_dir(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from qapprox.approximators.gd_paths import gd_paths

    monkeypatch.chdir(tmp_path)
    result = gd_paths(m=20, epochs=3, batch_size=5)
    assert list(tmp_path.iterdir()) == []                                # log_dir=None: nothing written
    gd_paths(m=20, epochs=3, batch_size=5, log_dir=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    for name, path in result.paths.items():
        scalars = events.Scalars(f"cost/{name}")
        assert [s.step for s in scalars] == [0, 1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx(path.cost, rel=1e-6)  # float32 in the event file
