"""approximators.networks: the lecture's Keras tables reproduced exactly, Q-network parameter
counts worked by hand, the dueling identity, linear Q as a Q-table, and bad input."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from qapprox.approximators.networks import (
    Dense,
    Dropout,
    Rescale,
    build,
    linear_q_network,
    mlp_q_network,
    nature_cnn_q_network,
    q_network,
    summary,
)


def table(text: str) -> list[tuple[str, str, int]]:
    """The (layer (type), output shape, param #) rows of a summary."""
    rows = []
    for line in text.splitlines():
        match = re.fullmatch(r"(\S+ \(\w+\))\s+(\(None(?:, \d+)*\))\s+(\d+)", line)
        if match:
            rows.append((match.group(1), match.group(2), int(match.group(3))))
    return rows


def totals(text: str) -> tuple[str, str, str]:
    found = [re.search(rf"^{name} params: (\S+)$", text, re.M) for name in ("Total", "Trainable", "Non-trainable")]
    assert all(found), text
    return tuple(match.group(1) for match in found)


def quiet_summary(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    out = io.StringIO()
    text = summary(model, input_shape, file=out)
    assert out.getvalue() == text + "\n"
    return text


# ---------------------------------------------------------------- the lecture's tables
def test_lecture_regression_network_900_16_1():
    # Dense(16): 900·16 weights + 16 biases = 14,416;  Dense(1): 16·1 + 1 = 17;  total 14,433.
    text = quiet_summary(build([Dense(16, "relu"), Dense(1, "relu")], (900,)), (900,))
    assert table(text) == [("dense_1 (Dense)", "(None, 16)", 14416), ("dense_2 (Dense)", "(None, 1)", 17)]
    assert totals(text) == ("14,433", "14,433", "0")
    assert "Layer (type)                 Output Shape              Param #" in text


def test_lecture_classification_network_900_16_2_softmax():
    # Dense(2, softmax): 16·2 + 2 = 34;  total 14,416 + 34 = 14,450.
    model = build([Dense(16, "relu"), Dense(2, "softmax")], (900,))
    text = quiet_summary(model, (900,))
    assert table(text) == [("dense_1 (Dense)", "(None, 16)", 14416), ("dense_2 (Dense)", "(None, 2)", 34)]
    assert totals(text) == ("14,450", "14,450", "0")
    y_hat = model(torch.randn(5, 900))
    torch.testing.assert_close(y_hat.sum(-1), torch.ones(5))  # f^(2)_m ≥ 0, Σ_m f^(2)_m = 1


def test_lecture_mnist_network_with_dropout():
    # 784·512 + 512 = 401,920;  512·512 + 512 = 262,656;  512·10 + 10 = 5,130;  Dropout has none.
    # Total 401,920 + 262,656 + 5,130 = 669,706.
    layers = [Dense(512, "relu"), Dropout(0.2), Dense(512, "relu"), Dropout(0.2), Dense(10, "softmax")]
    text = quiet_summary(build(layers, (784,)), (784,))
    assert table(text) == [
        ("dense_1 (Dense)", "(None, 512)", 401920),
        ("dropout_1 (Dropout)", "(None, 512)", 0),
        ("dense_2 (Dense)", "(None, 512)", 262656),
        ("dropout_2 (Dropout)", "(None, 512)", 0),
        ("dense_3 (Dense)", "(None, 10)", 5130),
    ]
    assert totals(text) == ("669,706", "669,706", "0")


def test_summary_counts_frozen_parameters_as_non_trainable_and_keeps_the_mode():
    model = build([Dense(16, "relu"), Dropout(0.5), Dense(2)], (900,))
    model[0].requires_grad_(False)  # 14,416 frozen, 34 trainable
    text = quiet_summary(model, (900,))
    assert totals(text) == ("14,450", "34", "14,416")
    assert model.training  # summary ran in eval mode and restored training mode
    model.eval()
    quiet_summary(model, (900,))
    assert not model.training


def test_dropout_is_active_in_training_and_identity_in_evaluation():
    model = build([Dropout(0.5)], (1000,))
    x = torch.ones(1, 1000)
    zeroed = (model(x) == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6  # 1000 Bernoulli(0.5) draws: 5 standard deviations is ±0.08
    assert torch.equal(model.eval()(x), x)


# ---------------------------------------------------------------- Q-networks
def test_mlp_q_network_parameter_count_and_shape():
    # 4 → 256: 4·256 + 256 = 1,280;  256 → 256: 256·256 + 256 = 65,792;  256 → 2: 256·2 + 2 = 514.
    # Total 1,280 + 65,792 + 514 = 67,586.
    model = mlp_q_network(4, 2)
    text = quiet_summary(model, (4,))
    assert [row[2] for row in table(text)] == [1280, 65792, 514]
    assert totals(text)[0] == "67,586"
    assert model(torch.randn(7, 4)).shape == (7, 2)


def test_dueling_mlp_parameter_count():
    # Shared 4 → 256: 1,280. Value stream 256 → 256 → 1: 65,792 + 257. Advantage 256 → 256 → 2: 65,792 + 514.
    # Total 1,280 + 66,049 + 66,306 = 133,635.
    text = quiet_summary(mlp_q_network(4, 2, dueling=True), (4,))
    assert table(text) == [
        ("dense_1 (Dense)", "(None, 256)", 1280),
        ("value.dense_2 (Dense)", "(None, 256)", 65792),
        ("value.dense_3 (Dense)", "(None, 1)", 257),
        ("advantage.dense_4 (Dense)", "(None, 256)", 65792),
        ("advantage.dense_5 (Dense)", "(None, 2)", 514),
        ("dueling_1 (Dueling)", "(None, 2)", 0),
    ]
    assert totals(text)[0] == "133,635"


def test_nature_cnn_parameter_count_for_4_frames_and_6_actions():
    # conv 4→32, 8×8: 4·32·64 + 32 = 8,224          84 → ⌊(84−8)/4⌋+1 = 20
    # conv 32→64, 4×4: 32·64·16 + 64 = 32,832       20 → ⌊(20−4)/2⌋+1 = 9
    # conv 64→64, 3×3: 64·64·9 + 64 = 36,928        9 → 7, flattened 64·7·7 = 3,136
    # dense 3,136 → 512: 3,136·512 + 512 = 1,606,144;  512 → 6: 512·6 + 6 = 3,078
    # Total 8,224 + 32,832 + 36,928 + 1,606,144 + 3,078 = 1,687,206.
    model = nature_cnn_q_network(4, 6)
    text = quiet_summary(model, (4, 84, 84))
    assert table(text) == [
        ("rescaling_1 (Rescaling)", "(None, 4, 84, 84)", 0),
        ("conv2d_1 (Conv2D)", "(None, 32, 20, 20)", 8224),
        ("conv2d_2 (Conv2D)", "(None, 64, 9, 9)", 32832),
        ("conv2d_3 (Conv2D)", "(None, 64, 7, 7)", 36928),
        ("flatten_1 (Flatten)", "(None, 3136)", 0),
        ("dense_1 (Dense)", "(None, 512)", 1606144),
        ("dense_2 (Dense)", "(None, 6)", 3078),
    ]
    assert totals(text) == ("1,687,206", "1,687,206", "0")
    assert sum(p.numel() for p in model.parameters()) == 1_687_206


def test_dueling_nature_cnn_parameter_count():
    # Convolutions 8,224 + 32,832 + 36,928 = 77,984; value 1,606,144 + 513; advantage 1,606,144 + 3,078.
    # Total 77,984 + 1,606,657 + 1,609,222 = 3,293,863.
    text = quiet_summary(q_network("cnn", (4, 84, 84), 6, dueling=True), (4, 84, 84))
    assert totals(text)[0] == "3,293,863"


def test_nature_cnn_divides_uint8_and_float_input_by_255():
    torch.manual_seed(0)
    model = nature_cnn_q_network(2, 3)
    frames = torch.randint(0, 256, (5, 2, 84, 84), dtype=torch.uint8)
    q_uint8, q_float = model(frames), model(frames.float())
    assert q_uint8.shape == (5, 3) and q_uint8.dtype == torch.float32
    torch.testing.assert_close(q_uint8, q_float)
    assert Rescale()(torch.tensor([0, 51, 255], dtype=torch.uint8)).tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert nature_cnn_q_network(1, 2, image_size=(36, 40))(torch.zeros(1, 1, 36, 40)).shape == (1, 2)


@pytest.mark.parametrize("kind, obs_shape", [("mlp", (5,)), ("cnn", (3, 84, 84))])
def test_dueling_identity_mean_advantage_is_subtracted(kind, obs_shape):
    """q(s,a) = v(s) + a(s,a) − mean_a' a(s,a'), so mean_a q(s,a) − v(s) = 0 and q − v = a − mean a."""
    torch.manual_seed(1)
    model = q_network(kind, obs_shape, 4, hidden=(8, 8), dueling=True).double()
    x = torch.rand(6, *obs_shape, dtype=torch.float64)
    q = model(x)
    trunk, head = model[:-1], model[-1]
    u = trunk(x)
    v, a = head.value(u), head.advantage(u)
    torch.testing.assert_close(q.mean(-1, keepdim=True) - v, torch.zeros(6, 1, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(q - v, a - a.mean(-1, keepdim=True))
    assert a.abs().max() > 1e-3  # the identity is not trivially 0 = 0


def test_linear_q_network_with_one_hot_input_is_a_q_table():
    n_states, n_actions = 5, 3
    model = linear_q_network(n_states, n_actions)
    x = torch.eye(n_states)  # x(s) = e_s for every s
    assert torch.equal(model(x), torch.zeros(n_states, n_actions))  # zero init: Q(s, a) = 0
    table_q = torch.arange(15, dtype=torch.float32).reshape(n_states, n_actions)  # Q[s, a] = 3s + a
    with torch.no_grad():
        model.weight.copy_(table_q.T)  # w_a = column a of the table
    states = torch.tensor([4, 0, 2, 2])
    assert torch.equal(model(x[states]), table_q[states])
    assert model(x[[3]])[0, 2].item() == 3 * 3 + 2
    assert [name for name, _ in model.named_parameters()] == ["weight"]  # bias=False by default
    assert torch.equal(linear_q_network(2, 2, bias=True)(torch.zeros(1, 2)), torch.zeros(1, 2))


def test_q_network_dispatches_on_kind():
    assert q_network("mlp", (4,), 2, hidden=(16,))(torch.zeros(3, 4)).shape == (3, 2)
    assert q_network("linear", (4,), 2)(torch.zeros(3, 4)).shape == (3, 2)
    assert q_network("cnn", (4, 84, 84), 6)(torch.zeros(1, 4, 84, 84, dtype=torch.uint8)).shape == (1, 6)
    # hidden=() is a linear map with bias: 4·2 + 2 = 10 parameters
    assert sum(p.numel() for p in q_network("mlp", (4,), 2, hidden=()).parameters()) == 10


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Dense(0), "units=0"),
        (lambda: Dense(3, "swish"), "unknown activation 'swish'"),
        (lambda: Dropout(1.0), "rate=1.0"),
        (lambda: build([], (4,)), "layers is empty"),
        (lambda: build([Dense(2)], (0,)), "input_shape=(0,)"),
        (lambda: build(["dense"], (4,)), "is not a Dense or a Dropout"),
        (lambda: q_network("rnn", (4,), 2), "unknown Q-network kind 'rnn'; allowed: mlp, cnn, linear"),
        (lambda: q_network("mlp", (4,), 0), "n_actions=0"),
        (lambda: q_network("mlp", (4, 84, 84), 2), "obs_shape=(4, 84, 84) must have 1 dimension"),
        (lambda: q_network("cnn", (4,), 2), "obs_shape=(4,) must have 3 dimension"),
        (lambda: q_network("cnn", (4, 30, 84), 2), "too small"),
        (lambda: q_network("linear", (4,), 2, dueling=True), "dueling=True"),
        (lambda: mlp_q_network(4, 2, hidden=(64, -1)), "hidden units=-1"),
        (lambda: mlp_q_network(4, 2, activation="gelu"), "unknown activation 'gelu'"),
        (lambda: linear_q_network(4, 2, init="ones"), "unknown init 'ones'"),
        (lambda: summary(mlp_q_network(4, 2), (4, -1)), "input_shape=(4, -1)"),
    ],
)
def test_bad_input_is_one_line_value_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_config_checks_q_network_kinds_without_importing_torch():
    code = "import sys, qapprox.dqn.config as c; assert c.Q_NETWORK_KINDS; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
