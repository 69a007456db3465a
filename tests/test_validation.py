"""qapprox.envs.validation: every check returns the value it accepts and refuses the rest in one line."""

import math
import re

import numpy as np
import pytest
import torch

from qapprox.envs.validation import (
    check_name,
    MAX_INT, SEED_MAX, as_float, check_array, check_choice, choice_error, check_float, check_int, check_pcg64_increment,
    check_positive, check_seed, check_shape, check_unit_interval, shown,
)


def refused(call, message: str) -> str:
    """The one-line ValueError `call` raises, which must contain `message`."""
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_check_int_accepts_the_bounds_and_returns_a_python_int():
    assert check_int("n", 1, 1, 5) == 1 and check_int("n", 5, 1, 5) == 5
    assert type(check_int("n", np.int64(3), 1)) is int
    assert check_int("n", MAX_INT, 0) == MAX_INT


@pytest.mark.parametrize("value, message", [
    (0, "n=0 must be an integer in [1, 5]"),
    (6, "n=6 must be an integer in [1, 5]"),
    (True, "n=True must be an integer in [1, 5]"),  # a bool is an int to Python, never a count
    (np.bool_(True), "n=np.True_ must be an integer"),
    (2.0, "n=2.0 must be an integer in [1, 5]"),
    ("3", "n='3' must be an integer in [1, 5]"),
    (None, "n=None must be an integer in [1, 5]"),
])
def test_check_int_refuses_what_is_not_an_integer_in_range(value, message):
    refused(lambda: check_int("n", value, 1, 5), message)


def test_check_int_names_the_default_cap_only_to_a_value_beyond_it():
    refused(lambda: check_int("total_timesteps", -5, 0), "total_timesteps=-5 must be an integer ≥ 0")
    refused(lambda: check_int("capacity", 2.5, 1), "capacity=2.5 must be an integer ≥ 1")
    refused(lambda: check_int("total_timesteps", 10**30, 0), f"total_timesteps={10**30} must be an integer in [0, 2**53]")


def test_integer_bounds_are_written_as_a_reader_checks_them():
    refused(lambda: check_int("n_envs", 10**6, 1, 4096), "n_envs=1000000 must be an integer in [1, 4,096]")
    refused(lambda: check_int("inc", -1, 0, 2**128 - 1), "inc=-1 must be an integer in [0, 2**128 - 1]")
    refused(lambda: check_int("seed", -1, 0, 2**63), "seed=-1 must be an integer in [0, 2**63]")


def test_check_seed_is_the_one_seed_range():
    assert check_seed("seed", 0) == 0 and check_seed("seed", SEED_MAX) == SEED_MAX == 2**32 - 1
    refused(lambda: check_seed("seed", -1), "seed=-1 must be an integer in [0, 4,294,967,295]")
    refused(lambda: check_seed("seed", 2**32), "seed=4294967296 must be an integer in [0, 4,294,967,295]")
    refused(lambda: check_seed("seed", False), "seed=False must be an integer")


def test_check_pcg64_increment_refuses_even_increments():
    inc = np.random.default_rng(0).bit_generator.state["state"]["inc"]
    assert check_pcg64_increment("inc", inc) == inc
    refused(lambda: check_pcg64_increment("replay state 'rng_inc'", 0), "replay state 'rng_inc'=0 must be odd (a PCG64 increment)")
    refused(lambda: check_pcg64_increment("inc", 2**128), "inc=340282366920938463463374607431768211456 must be an integer")


def test_check_shape():
    assert check_shape("obs_shape", [4, np.int64(84)]) == (4, 84)
    assert check_shape("image_size", (84, 84), ndim=2) == (84, 84)
    refused(lambda: check_shape("obs_shape", (0,)), "obs_shape=(0,) must be a non-empty tuple of positive integers")
    refused(lambda: check_shape("obs_shape", ()), "obs_shape=() must be a non-empty tuple")
    refused(lambda: check_shape("obs_shape", "four"), "obs_shape='four' must be a non-empty tuple")
    refused(lambda: check_shape("obs_shape", (4, True)), "obs_shape=(4, True) must be")
    refused(lambda: check_shape("obs_shape", (4, 84, 84), ndim=1), "obs_shape=(4, 84, 84) must have 1 dimension(s)")


def test_check_float_accepts_the_closed_bounds_and_returns_a_float():
    assert check_float("gamma", 0, 0.0, 1.0) == 0.0 and check_float("gamma", 1.0, 0.0, 1.0) == 1.0
    assert type(check_float("gamma", np.float32(0.5), 0.0, 1.0)) is float
    assert check_float("x", -1e300) == -1e300


@pytest.mark.parametrize("call, message", [
    (lambda: check_float("gamma", 1.5, 0.0, 1.0), "gamma=1.5 is outside [0, 1]"),
    (lambda: check_float("gamma", -0.1, 0.0, 1.0), "gamma=-0.1 is outside [0, 1]"),
    (lambda: check_float("gamma", math.nan, 0.0, 1.0), "gamma=nan is outside [0, 1]"),
    (lambda: check_float("tau", 0.0, 0.0, 1.0, low_open=True), "tau=0.0 is outside (0, 1]"),
    (lambda: check_float("rate", 1.0, 0.0, 1.0, high_open=True), "rate=1.0 is outside [0, 1)"),
    (lambda: check_float("learning_rate", 0.0, 0.0, low_open=True), "learning_rate=0.0 must be > 0 and finite"),
    (lambda: check_float("learning_rate", math.inf, 0.0, low_open=True), "learning_rate=inf must be > 0 and finite"),
    (lambda: check_float("ridge", -1.0, 0.0), "ridge=-1.0 must be ≥ 0 and finite"),
    (lambda: check_float("x", 2.0, high=1.0, high_open=True), "x=2.0 must be < 1 and finite"),
    (lambda: check_float("alpha", -math.inf), "alpha=-inf must be a finite number"),
    (lambda: check_float("alpha", 10**400), "must be a finite number"),  # an int beyond float range
    (lambda: check_float("alpha", True), "alpha=True must be a finite number"),
    (lambda: check_float("alpha", "0.1"), "alpha='0.1' must be a finite number"),
    (lambda: check_float("alpha", 1j), "alpha=1j must be a finite number"),
])
def test_check_float_refuses(call, message):
    refused(call, message)


def test_check_array_checks_every_entry_and_names_the_first_bad_one():
    np.testing.assert_array_equal(check_unit_interval("lam", [0.0, 0.5, 1.0]), [0.0, 0.5, 1.0])
    assert check_unit_interval("gamma", 0.9).dtype == np.float64
    assert check_positive("alpha", np.array([[1e-9, 2.0]])).shape == (1, 2)
    refused(lambda: check_unit_interval("lam", [0.5, 1.5, 2.0]), "lam=1.5 is outside [0, 1]")
    refused(lambda: check_unit_interval("gamma", np.nan), "gamma=nan is outside [0, 1]")
    refused(lambda: check_positive("alpha", 0.0), "alpha=0 must be > 0 and finite")
    refused(lambda: check_positive("alpha", [0.1, np.inf]), "alpha=inf must be > 0 and finite")
    refused(lambda: check_array("x", [1.0, -2.0], -1.0, 1.0, low_open=True), "x=-2 is outside (-1, 1]")


def test_check_choice():
    assert check_choice("trace", "dutch", ("accumulating", "dutch")) == "dutch"
    refused(lambda: check_choice("trace", "eligibility", ("accumulating", "dutch")),
            "trace='eligibility' is not one of accumulating, dutch")
    refused(lambda: check_choice("loss", None, ("huber", "mse")), "loss=None is not one of huber, mse")
    refused(lambda: check_choice("loss", ["mse"], ("huber", "mse")), "loss=['mse'] is not one of")
    # with a label, the wording of a named kind of thing: unknown <label> 'value'; allowed: ...
    assert check_choice("kind", "cnn", ("mlp", "cnn"), label="Q-network kind") == "cnn"
    refused(lambda: check_choice("kind", "rnn", ("mlp", "cnn"), label="Q-network kind"),
            "unknown Q-network kind 'rnn'; allowed: mlp, cnn")
    refused(lambda: check_choice("loss", 1, {"huber": None}, label="loss"), "unknown loss 1; allowed: huber")
    assert str(choice_error("env", "walk", ("quiz9",), label="env")) == "unknown env 'walk'; allowed: quiz9"


def test_shown_keeps_a_message_on_one_short_line():
    assert shown(3) == "3" and shown("cpu") == "'cpu'" and shown(0.5) == "0.5"
    assert shown("x" * 100) == repr("x" * 60) + "… (100 characters)"
    assert shown(torch.zeros(2, 3)) == "a tensor of shape [2, 3]"
    assert shown(np.zeros(4)) == "an array of shape [4]" and shown(np.float64(0.5)) == "np.float64(0.5)"
    long_list = shown(list(range(100)))
    assert len(long_list) == 60 and long_list.endswith("...")
    assert "\n" not in shown({"a": np.zeros((3, 3))}) and "\n" not in shown("a\nb")


def test_as_float_is_inf_beyond_float_range():
    assert as_float(3) == 3.0 and as_float(10**400) == math.inf


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\0b", 3])
def test_check_name_refuses_what_is_not_one_plain_path_component(name):
    with pytest.raises(ValueError, match=r"^run_name=.* must be a plain name"):
        check_name("run_name", name)


def test_check_name_returns_a_plain_name():
    assert check_name("run_name", "dqn-lr3e-3..x") == "dqn-lr3e-3..x"
