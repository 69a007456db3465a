"""A fuzzer in the suite: Hypothesis corrupts valid checkpoints at random (types, keys, shapes, ranges,
sizes, bytes) and draws flag values for train_dqn and evaluate. Whatever it draws, loading either works
or is one clean CheckpointError / exit 2 line — no other exception, no traceback, no file changed, no
payload run, no module imported.

The default profile is small and derandomised (the same examples every run, under a minute on 2 cores).
QAPPROX_FUZZ_EXAMPLES=N runs N random examples per test instead, e.g.
    QAPPROX_FUZZ_EXAMPLES=5000 OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qapprox.dqn.agent import DQN, DivergenceError  # noqa: E402
from qapprox.dqn.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from qapprox.dqn.config import DQNConfig  # noqa: E402
from forgery import Payload, forged  # noqa: E402

LONG = int(os.environ.get("QAPPROX_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG or 120, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL = dict(hidden=(8, 8), learning_starts=20, eval_interval=0, log_interval=50, buffer_size=200, batch_size=16,
             save_replay=True, device="cpu", checkpoint_interval=0)


class Valid(dict):
    """name → (path, state) of the valid checkpoints; a short repr keeps Hypothesis' reports readable."""

    def __repr__(self) -> str:
        return f"Valid({', '.join(self)})"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Valid:
    """Valid checkpoints (uniform and prioritized replay) and their states; one load first, so that what
    gymnasium imports on first use is already imported before the examples watch sys.modules."""
    out = Valid()
    for name, extra in (("uniform", {}), ("prioritized", {"prioritized": True})):
        directory = tmp_path_factory.mktemp(name)
        agent = DQN(DQNConfig(**SMALL, **extra, logdir=str(directory))).learn(120)
        agent.close()
        DQN.load(agent.last_checkpoint).close()
        out[name] = (agent.last_checkpoint, load_checkpoint(agent.last_checkpoint))
    return out


# ------------------------------------------------------------------ what the fuzzer draws
ODD_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2**32, 2**53 + 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["this:CartPole-v1", "os:Env-v0", "../../x", "", "CartPole-v1", "NoSuchEnv-v0"]),
)
ODD_VALUES = st.recursive(ODD_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=6)


def paths(value, prefix=()):
    """Every (container path) of a nested meta / state: where a mutation can land."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            yield from paths(item, (*prefix, index))


def tensor_mutation(data, tensor: torch.Tensor):
    """A tensor of another shape, dtype or with nan / inf / out-of-range entries."""
    kind = data.draw(st.sampled_from(["shape", "dtype", "nan", "inf", "value", "empty"]))
    if kind == "shape":
        return tensor.reshape(-1)[: max(tensor.numel() - data.draw(st.integers(1, 3)), 0)]
    if kind == "dtype":
        return tensor.to(data.draw(st.sampled_from([torch.float64, torch.int32, torch.uint8, torch.bool])))
    if kind == "empty":
        return torch.empty(0)
    if tensor.numel() == 0:
        return tensor
    out = tensor.clone().reshape(-1)
    index = data.draw(st.integers(0, out.numel() - 1))
    if kind in ("nan", "inf") and out.is_floating_point():
        out[index] = float("nan") if kind == "nan" else float("inf")
    elif kind == "value" and out.dtype != torch.bool:
        low, high = (-(2**31), 2**31 - 1) if not out.is_floating_point() else (-1e30, 1e30)
        out[index] = data.draw(st.integers(low, high) if not out.is_floating_point() else st.floats(low, high))
    return out.reshape(tensor.shape)


def mutate(data, state: dict, meta: dict) -> None:
    """One random corruption of (state, meta), in place: replace, delete or add a field anywhere."""
    root_name = data.draw(st.sampled_from(["meta", "state"]))
    root = meta if root_name == "meta" else state
    where = data.draw(st.sampled_from([p for p in paths(root) if p]))
    parent = root
    for key in where[:-1]:
        parent = parent[key]
    key, current = where[-1], parent[where[-1]]
    action = data.draw(st.sampled_from(["replace", "delete", "add"] + ["tensor"] * isinstance(current, torch.Tensor)))
    if action == "tensor":
        parent[key] = tensor_mutation(data, current)
    elif action == "delete" and isinstance(parent, dict):
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(ODD_VALUES)
    else:
        parent[key] = data.draw(ODD_VALUES)


def assert_clean(error: CheckpointError, path: Path) -> None:
    text = str(error)
    assert "\n" not in text and str(path) in text and len(text) <= CheckpointError.MESSAGE_LIMIT, text
    event("refused: " + " ".join(text.replace(str(path), "").split()[:3]))  # --hypothesis-show-statistics


# ------------------------------------------------------------------ checkpoints
@FUZZ
@given(data=st.data())
def test_corrupted_fields_load_or_refuse_cleanly(checkpoints, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(checkpoints)))
    _, valid = checkpoints[name]
    state = copy.deepcopy(valid)
    meta = state.pop("meta")
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(data, state, meta)
    directory = tmp_path_factory.mktemp("crafted")
    try:
        path = forged(directory / "x.ckpt", state, meta, version=data.draw(st.sampled_from([1, 2])))
    except (ValueError, TypeError, OverflowError):
        return  # not representable as JSON / a torch payload: nothing an attacker could write either
    written, modules = path.read_bytes(), set(sys.modules)
    try:  # the overrides bound the work of a valid file (a drawn gradient_steps=2**40 is legal, but slow)
        agent = DQN.load(path, run_dir=directory / "run", eval_interval=0, gradient_steps=1, log_interval=10)
    except CheckpointError as error:
        assert_clean(error, path)
    else:  # what loads must also train: no index or shape error waits inside the replay or the network
        try:  # finite but absurd values (an Adam moment of 1e16) may load and then diverge: the guard's one line
            agent.learn(agent.global_step + 40)
            assert torch.isfinite(agent.algorithm.w).all()
            event("loaded and trained")
        except DivergenceError as error:
            assert "\n" not in str(error) and str(path) in str(error)  # names the loaded file as the last good one
            event("loaded, then stopped by the divergence guard")
        finally:
            agent.close()
    assert set(sys.modules) - modules == set()  # nothing imported on the file's say-so
    assert path.read_bytes() == written


@FUZZ
@given(data=st.data())
def test_damaged_bytes_are_refused_and_nothing_runs(checkpoints, tmp_path_factory, data):
    path, _ = checkpoints[data.draw(st.sampled_from(sorted(checkpoints)))]
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "append", "header", "pickle"]))
    directory = tmp_path_factory.mktemp("damaged")
    marker = directory / "pwned.txt"
    if kind == "flip":
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8, unique=True)):
            raw[position] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "append":
        raw += data.draw(st.binary(min_size=1, max_size=64))
    elif kind == "header":  # a forged meta length, or any bytes after the magic
        raw[15:55] = data.draw(st.binary(min_size=40, max_size=40))
    else:  # a payload that would run code, behind a valid header, meta and hash
        meta = load_checkpoint(path)["meta"]
        buffer = io.BytesIO()
        torch.save({"q": Payload(marker)}, buffer)
        forged(directory / "evil.ckpt", {"q": Payload(marker)}, meta)
        raw = bytearray((directory / "evil.ckpt").read_bytes())
    target = directory / "x.ckpt"
    target.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as error:
        DQN.load(target, run_dir=directory)
    assert_clean(error.value, target)
    assert not marker.exists()


# ------------------------------------------------------------------ flags of train_dqn and evaluate
PLAUSIBLE = st.one_of(  # values that are often valid, so that the fuzzer also reaches the agent's own checks
    st.integers(0, 300).map(str), st.floats(0.0, 1.0).map(repr),
    st.sampled_from(["8,8", "16", "relu", "tanh", "mlp", "linear", "adam", "sgd", "mse", "huber", "true", "false",
                     "CartPole-v1", "Acrobot-v1", "qapprox/Quiz9-v0", "cpu", "auto", "2"]),
)
FLAG_VALUES = st.one_of(
    PLAUSIBLE, PLAUSIBLE,
    st.sampled_from(["nan", "inf", "-inf", "1e30", "1e309", "-1", "0", "1", "2", "0.5", "1.5", "2**8", "", "abc",
                     "true", "false", "4294967296", "9007199254740993", "../x", "a/b", "this:CartPole-v1",
                     "100000,100000", "8,8", ",", "1e-300"]),
    st.text(max_size=8),
)
TRAIN_FLAGS = ["--learning-rate", "--gamma", "--tau", "--batch-size", "--buffer-size", "--n-step", "--seed",
               "--hidden", "--exploration-final", "--priority-alpha", "--max-grad-norm", "--train-freq", "--threads",
               "--run-name", "--env", "--activation", "--q-network", "--loss", "--optimizer", "--double-q",
               "--target-update-interval", "--learning-starts", "--log-interval"]


def run_script(module, argv: list[str], capsys) -> tuple[int, str]:
    from qapprox.scripts._cli import run

    with pytest.raises(SystemExit) as exit_:
        run(lambda: module.main(argv))
    return exit_.value.code, capsys.readouterr().err


@FUZZ
@given(data=st.data())
def test_train_dqn_flags_exit_0_or_2_with_one_line(tmp_path_factory, capsys, data):
    from qapprox.scripts import train_dqn

    logdir = tmp_path_factory.mktemp("logs")
    drawn = data.draw(st.lists(st.tuples(st.sampled_from(TRAIN_FLAGS), FLAG_VALUES), min_size=1, max_size=3))
    argv = [f"{flag}={value}" for flag, value in drawn]
    # Whatever is drawn, no training: total 0 builds the agent (every check runs) and saves its checkpoint.
    code, err = run_script(train_dqn, [*argv, "--no-progress", "--logdir", str(logdir), "--total-timesteps", "0",
                                       "--eval-interval", "0"], capsys)
    assert code in (0, 2), (argv, code, err)
    event(f"exit {code}")
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, (argv, err)
        assert list(logdir.iterdir()) == []
    torch.set_num_threads(1)


@FUZZ
@given(data=st.data())
def test_evaluate_flags_exit_0_or_2_with_one_line(checkpoints, capsys, data):
    from qapprox.scripts import evaluate

    path, _ = checkpoints["uniform"]
    before = path.read_bytes()
    drawn = data.draw(st.lists(st.tuples(st.sampled_from(["--episodes", "--seed", "--threads", "--device",
                                                          "--max-checkpoint-bytes"]), FLAG_VALUES), max_size=3))
    argv = [str(path), *[f"{flag}={value}" for flag, value in drawn]]
    code, err = run_script(evaluate, argv + ([] if any(f == "--episodes" for f, _ in drawn) else ["--episodes", "1"]),
                           capsys)
    assert code in (0, 2), (argv, code, err)
    event(f"exit {code}")
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, (argv, err)
    assert path.read_bytes() == before
    torch.set_num_threads(1)


def test_the_fuzzer_reaches_both_outcomes(checkpoints, tmp_path):
    """Sanity of the harness itself: an untouched copy loads, and one changed field is refused."""
    path, valid = checkpoints["uniform"]
    state = copy.deepcopy(valid)
    meta = state.pop("meta")
    DQN.load(forged(tmp_path / "same.ckpt", state, meta), run_dir=tmp_path).close()
    meta["counters"]["global_step"] = "many"
    with pytest.raises(CheckpointError, match="counters.global_step='many'"):
        DQN.load(forged(tmp_path / "bad.ckpt", state, meta), run_dir=tmp_path)
    assert json.loads(json.dumps(meta))  # the meta stays plain JSON
