"""Every input is untrusted: a checkpoint is parsed, never obeyed; sizes, paths and numbers are checked
before any work; a full disk is one line. One test (or parameter) per finding of the issue, each failing
on the code before it (4b37d9d) and passing now. Crafted files change one field of a valid checkpoint
and re-hash it (tests/forgery.py)."""

from __future__ import annotations

import copy
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qapprox.dqn.agent import DQN
from qapprox.dqn.checkpoint import CheckpointError, load_checkpoint
from qapprox.dqn.config import DQNConfig
from forgery import forged, raw_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
SMALL = dict(hidden=(16, 16), learning_starts=50, eval_interval=0, log_interval=100, buffer_size=400,
             save_replay=True, device="cpu", checkpoint_interval=0)


def script(name: str, *argv: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"scripts.{name}", *argv], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_refusal(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[Path, dict]:
    """A real run's latest.ckpt (with its replay) and its loaded state."""
    logdir = tmp_path_factory.mktemp("runs")
    agent = DQN(DQNConfig(**SMALL, logdir=str(logdir))).learn(300)
    agent.close()
    path = agent.last_checkpoint
    return path, load_checkpoint(path)


@pytest.fixture(scope="module")
def prioritized(tmp_path_factory) -> tuple[Path, dict]:
    logdir = tmp_path_factory.mktemp("prioritized")
    agent = DQN(DQNConfig(**SMALL, prioritized=True, logdir=str(logdir))).learn(300)
    agent.close()
    return agent.last_checkpoint, load_checkpoint(agent.last_checkpoint)


def crafted(tmp_path: Path, valid, change) -> Path:
    """A copy of the valid checkpoint with `change(state, meta)` applied, re-hashed."""
    _, state = valid
    state = copy.deepcopy(state)
    meta = state.pop("meta")
    change(state, meta)
    return forged(tmp_path / "crafted.ckpt", state, meta)


# ---------------------------------------------------------------- 1. a checkpoint chooses no module
def test_an_env_id_with_a_module_part_imports_nothing(tmp_path, valid):
    """`module:Env` would make gymnasium import `module`: a .py file beside the checkpoint, here."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "beside.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")

    def module_env(state, meta):
        meta["config"]["env_id"] = "beside:CartPole-v1"

    path = crafted(tmp_path, valid, module_env)
    for argv in (["evaluate", str(path), "--episodes", "1"], ["train_dqn", "--resume", str(path), "--no-progress"]):
        result = script(*argv, cwd=tmp_path)
        assert_one_line_refusal(result, str(path), "names a module to import ('beside')")
    with pytest.raises(CheckpointError, match="names a module to import"):
        DQN.load(path)
    assert not marker.exists() and "beside" not in sys.modules


# ---------------------------------------------------------------- 2. where to write and how much to start
def test_the_run_directory_comes_from_the_command_line_not_the_file(tmp_path, valid):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def point_elsewhere(state, meta):
        meta["run_dir"] = str(elsewhere)

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = crafted(run / "checkpoints", valid, point_elsewhere)
    result = script("train_dqn", "--resume", str(path), "--total-timesteps", "400", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert list(elsewhere.iterdir()) == []
    assert (run / "checkpoints" / "latest.ckpt").is_file() and list(run.glob("events.out.tfevents.*"))


def test_execution_settings_in_the_file_are_not_obeyed(tmp_path, valid):
    def greedy_machine(state, meta):
        meta["config"].update(threads=64, vectorization="async", device="cuda", compile=True)

    agent = DQN.load(crafted(tmp_path, valid, greedy_machine))
    try:
        assert (agent.config.threads, agent.config.vectorization, agent.config.device, agent.config.compile) == \
            (1, "sync", "auto", False)
        assert torch.get_num_threads() == 1
    finally:
        agent.close()
    result = script("evaluate", str(tmp_path / "crafted.ckpt"), "--episodes", "1", "--threads", "1")
    assert result.returncode == 0 and "torch intra-op threads: 1" in result.stdout, result.stderr


def test_a_million_environments_are_refused(tmp_path, valid):
    def many_envs(state, meta):
        meta["config"]["n_envs"] = 10**6

    path = crafted(tmp_path, valid, many_envs)
    with pytest.raises(CheckpointError, match=r"config: n_envs=1000000 must be an integer in \[1, 4,096\]"):
        DQN.load(path)


# ---------------------------------------------------------------- 3. malformed contents are refused
def _set(section: str, key: str, value):
    def change(state, meta):
        target = meta if section == "meta" else meta[section] if section in meta else state[section]
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return change


DELETE = object()


def _replay(key: str, edit):
    def change(state, meta):
        replay = state["replay"]
        replay[key] = edit(replay[key]) if callable(edit) else edit
    return change


def _set_state(key: str, value):
    def change(state, meta):
        if value is DELETE:
            del state[key]
        else:
            state[key] = value
    return change


def _waiting_row_valid(state, meta):
    replay = state["replay"]
    slots = len(replay["valid"]) // replay["n_envs"]
    row = (int(replay["pointer"][0]) - 1) % slots  # env 0's newest start, still waiting for its window
    replay["valid"][row] = True
    replay["next_rows"][row] = (row + 1) % slots
    replay["count"] += 1


def _next_row_far_ahead(state, meta):
    replay = state["replay"]
    row = int(torch.nonzero(replay["valid"])[0])
    replay["next_rows"][row] = (row + 10) % len(replay["valid"])


def _nan_weight(state, meta):
    first = next(iter(state["q"]))
    state["q"][first] = torch.full_like(state["q"][first], float("nan"))


def _replay_not_a_dict(state, meta):
    state["replay"] = [1, 2, 3]


def _action_out_of_range(replay_actions):
    replay_actions = replay_actions.clone()
    replay_actions[0] = 99
    return replay_actions


def _next_row_out_of_range(next_rows):
    next_rows = next_rows.clone()
    next_rows[0] = 10**9
    return next_rows


MALFORMED = {
    "obs_shape an int": (_set("meta", "obs_shape", 4), "obs_shape=4"),
    "obs_shape missing": (_set("meta", "obs_shape", DELETE), "obs_shape=None"),
    "numpy_rng missing": (_set("meta", "numpy_rng", DELETE), "numpy_rng must be a dict"),
    "numpy_rng of the wrong type": (_set("meta", "numpy_rng", "seed"), "numpy_rng must be a dict"),
    "torch_rng missing": (_set_state("torch_rng", DELETE), "torch_rng must be a torch.uint8 tensor"),
    "torch_rng of the wrong type": (_set_state("torch_rng", torch.zeros(3)), "torch_rng must be a torch.uint8 tensor"),
    "global_step missing": (_set("counters", "global_step", DELETE), "counters.global_step=None"),
    "global_step a string": (_set("counters", "global_step", "300"), "counters.global_step='300'"),
    "global_step negative": (_set("counters", "global_step", -1), "counters.global_step=-1"),
    "global_step a float": (_set("counters", "global_step", 1.5), "counters.global_step=1.5"),
    "global_step huge": (_set("counters", "global_step", 10**30), "counters.global_step=" + str(10**30)),
    "counters a list": (_set("meta", "counters", [1, 2]), "counters must be a dict, not list"),
    "config a string": (_set("meta", "config", "CartPole-v1"), "config must be a dict, not str"),
    "optimizer a string": (_set_state("optimizer", "adam"), "optimizer must be a dict, not str"),
    "NaN weights": (_nan_weight, "holds non-finite values"),
    "replay without count": (_replay("count", None), "replay state 'count'=None"),
    "replay without rng_state": (_replay("rng_state", None), "replay state 'rng_state'=None"),
    "replay not a dict": (_replay_not_a_dict, "replay state is a list, not a dict"),
    "replay pointer out of range": (_replay("pointer", lambda p: p + 10**9), "a pointer is outside"),
    "replay next row out of range": (_replay("next_rows", _next_row_out_of_range), "next-state row index"),
    "replay action out of range": (_replay("actions", _action_out_of_range), "an action is outside [0, 2)"),
    "replay count that disagrees": (_replay("count", lambda c: c - 1), "rows hold transitions"),
    # Found by a second read of the change (an attack review), each a hang, a crash or silent corruption before:
    "replay RNG increment 0 (sampling never ends)": (_replay("rng_inc", 0), "'rng_inc'=0 must be odd"),
    "agent RNG increment 0 (always explores action 0)": (
        lambda state, meta: meta["numpy_rng"]["state"].update(state=0, inc=0), "numpy_rng.state.inc=0 must be odd"),
    "action of a waiting n-step start": (_replay("actions", lambda a: torch.full_like(a, 10**6)), "an action is outside"),
    "a waiting start marked as a transition": (_waiting_row_valid, "a start still waiting for its n-step window"),
    "a next row too far ahead": (_next_row_far_ahead, "not 1 to n_step=3 rows ahead"),
    "a sparse weight": (lambda state, meta: state["q"].update({k: v.to_sparse() for k, v in list(state["q"].items())[:1]}),
                        "only dense CPU tensors are read"),
    "a tensor as a replay setting": (_replay("capacity", torch.tensor([400, 400])), "replay state has capacity=a tensor"),
    "state dict keys of mixed types": (lambda state, meta: state["q"].update({0: torch.zeros(1), "zzz": torch.zeros(1)}),
                                       "q has keys missing [] / unexpected ['zzz', 0]"),
    "an unexpected top-level entry": (_set_state("extra", torch.zeros(3)), "unexpected entries ['extra']"),
    "150,000 hidden layers": (_set("config", "hidden", [1] * 150_000), "hidden=(150000 layers) must be 1 to 64"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_contents_are_one_line_checkpoint_errors(tmp_path, valid, name):
    change, message = MALFORMED[name]
    path = crafted(tmp_path, valid, change)
    with pytest.raises(CheckpointError) as error:
        DQN.load(path)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text, text


@pytest.mark.parametrize("name", ["global_step a float", "replay action out of range", "NaN weights"])
def test_malformed_contents_exit_2_on_both_command_lines_and_create_nothing(tmp_path, valid, name):
    change, message = MALFORMED[name]
    path = crafted(tmp_path, valid, change)
    before = sorted(tmp_path.rglob("*"))
    assert_one_line_refusal(script("evaluate", str(path), "--episodes", "1"), message)
    assert_one_line_refusal(script("train_dqn", "--resume", str(path), "--no-progress"), message)
    assert sorted(tmp_path.rglob("*")) == before  # no run directory, no event file


def _priority_on_empty_rows(state, meta):
    priorities, valid = state["replay"]["priorities"], state["replay"]["valid"]
    priorities[~valid] = 100.0


def _zero_priorities(state, meta):
    state["replay"]["priorities"].zero_()


@pytest.mark.parametrize("change", [_priority_on_empty_rows, _zero_priorities])
def test_priorities_are_positive_exactly_on_transitions(tmp_path, prioritized, change):
    with pytest.raises(CheckpointError, match="'priorities' must be > 0 .* exactly on the rows holding transitions"):
        DQN.load(crafted(tmp_path, prioritized, change))


def test_a_compressed_payload_is_refused_before_it_inflates(tmp_path, valid):
    """A zip bomb: torch.save's archive holds its entries stored; deflated ones could inflate ~1000×."""
    import io
    import json
    import zipfile

    _, state = valid
    state = {key: value for key, value in state.items() if key != "meta"}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, \
            zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    path = raw_checkpoint(tmp_path / "bomb.ckpt", deflated.getvalue(), json.dumps(valid[1]["meta"]).encode())
    with pytest.raises(CheckpointError, match="has compressed entries in its payload"):
        DQN.load(path)


def test_read_errors_and_directories_are_named_as_such(tmp_path):
    (tmp_path / "d.ckpt").mkdir()
    with pytest.raises(CheckpointError, match=r"d.ckpt is a directory, not a qapprox checkpoint"):
        load_checkpoint(tmp_path / "d.ckpt")
    (tmp_path / "mem.ckpt").symlink_to("/proc/self/mem")  # a "regular" file of size 0 whose reads fail (EIO)
    result = script("evaluate", str(tmp_path / "mem.ckpt"))
    assert_one_line_refusal(result)  # exit 2 naming the file — not exit 3, "disk full"
    assert "mem.ckpt" in result.stderr


def test_logdir_empty_on_resume_writes_nothing(tmp_path, valid):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = run / "checkpoints" / "latest.ckpt"
    path.write_bytes(valid[0].read_bytes())
    result = script("train_dqn", "--resume", str(path), "--logdir", "", "--total-timesteps", "400", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "latest.ckpt"] and path.read_bytes() == valid[0].read_bytes()


def test_an_empty_payload_with_a_correct_hash_is_corrupt(tmp_path, valid):
    import json

    path = raw_checkpoint(tmp_path / "empty.ckpt", b"", json.dumps(valid[1]["meta"]).encode())
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(the payload is not a torch zip archive\)"):
        DQN.load(path)
    raw_checkpoint(path, b"", version=1)
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(the payload is not a torch zip archive\)"):
        load_checkpoint(path)


def test_random_bytes_are_corrupt_not_code(tmp_path):
    path = raw_checkpoint(tmp_path / "noise.ckpt", os.urandom(4096), version=1)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load_checkpoint(path)
    assert "could run code" not in str(error.value)


# ---------------------------------------------------------------- 4. bounded reads
def test_a_file_larger_than_its_config_implies_is_refused_before_reading(tmp_path, valid):
    path = tmp_path / "huge.ckpt"
    path.write_bytes(valid[0].read_bytes())
    with open(path, "r+b") as file:  # sparse: 4 GiB on paper, nothing on disk
        file.truncate(4 * 2**30)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"is 4.0 GiB, larger than the size its config implies .*refused before reading"):
        DQN.load(path)
    assert time.perf_counter() - started < 20  # far from hashing 4 GiB (not a timing test: a wide bound)
    with pytest.raises(CheckpointError, match=r"larger than --max-checkpoint-bytes \(1.0 KiB\)"):
        DQN.load(valid[0], max_bytes=1024)
    with open(path, "r+b") as file:  # a generous --max-checkpoint-bytes still cannot read past memory
        file.truncate(2**40)
    with pytest.raises(CheckpointError, match=r"\(1.0 TiB\) needs 3.0 TiB of memory; .* is available; refused before reading"):
        DQN.load(path, max_bytes=2**41)


def test_devices_and_fifos_are_not_read(tmp_path):
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_checkpoint("/dev/zero")
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    result = script("evaluate", str(fifo), timeout=60)  # used to hang on the open
    assert_one_line_refusal(result, "is not a regular file")


# ---------------------------------------------------------------- 6. a full disk is one line
def test_a_full_disk_is_exit_3_keeps_the_last_checkpoint_and_removes_the_partial_file(tmp_path, monkeypatch, capsys):
    from qapprox.scripts import _cli, train_dqn

    argv = ["--no-progress", "--hidden", "16,16", "--eval-interval", "0", "--learning-starts", "50",
            "--checkpoint-interval", "200", "--total-timesteps", "600", "--logdir", str(tmp_path)]
    real_fsync, calls = os.fsync, []

    def fsync_fills_the_disk(descriptor):
        calls.append(descriptor)
        if len(calls) > 1:  # the first checkpoint (step 200) lands; the second finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr("qapprox.dqn.checkpoint.os.fsync", fsync_fills_the_disk)
    with pytest.raises(SystemExit) as exit_:
        _cli.run(lambda: train_dqn.main(argv))
    assert exit_.value.code == _cli.EXIT_DISK == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: No space left on device writing ") and "kept" in err
    (checkpoints,) = tmp_path.glob("*/checkpoints")
    assert [p.name for p in checkpoints.iterdir()] == ["latest.ckpt"]  # no latest.ckpt.tmp left behind
    monkeypatch.undo()
    assert load_checkpoint(checkpoints / "latest.ckpt")["meta"]["counters"]["global_step"] == 200


# ---------------------------------------------------------------- 7. command lines
@pytest.mark.parametrize("argv, message", [
    (["--run-name", "../../x"], "run_name='../../x' must be a plain name"),
    (["--threads", "100000"], "threads=100000 must be an integer in [1, "),
    (["--hidden", "100000,100000"], "a Q-network of 10,000,800,002 weights (hidden=(100000, 100000)) needs"),
    (["--seed", "1e20"], "seed='1e20' is not a valid integer (at most 2**53 in size)"),
    (["--seed", "5000000000"], "seed=5000000000 must be an integer in [0, 4,294,967,295]"),
    (["--total-timesteps", "1e30"], "total_timesteps='1e30' is not a valid integer"),
])
def test_train_dqn_refuses_before_any_work(tmp_path, argv, message):
    result = script("train_dqn", "--no-progress", "--logdir", str(tmp_path), *argv)
    assert_one_line_refusal(result, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("toml, message", [
    ("total_timesteps = 1e30\n", "total_timesteps=1e+30 is not a valid integer"),
    ("hidden = []\n", "hidden=() must be 1 to 64 layer widths"),
])
def test_toml_numbers_mean_numbers(tmp_path, toml, message):
    (tmp_path / "c.toml").write_text(toml)
    assert_one_line_refusal(script("train_dqn", "--config", str(tmp_path / "c.toml"), "--logdir", str(tmp_path)),
                            message)


def test_an_empty_logdir_says_that_nothing_is_saved(tmp_path):
    result = script("train_dqn", "--no-progress", "--logdir", "", "--total-timesteps", "100", "--hidden", "8",
                    "--eval-interval", "0", cwd=tmp_path)
    assert result.returncode == 0 and "logdir is empty: no TensorBoard logs and no checkpoints" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_a_negative_seed(valid):
    assert_one_line_refusal(script("evaluate", str(valid[0]), "--seed=-1"), "--seed=-1 must be an integer in [0, 4,294,967,295]")
    assert_one_line_refusal(script("evaluate", str(valid[0]), f"--seed={2**32}"), "--seed=4294967296 must be an integer in")


def test_a_disk_turning_read_only_mid_run_is_one_line_and_exit_3(tmp_path):
    """A real read-only remount under a running training (needs root and tmpfs; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.train_dqn", "--no-progress", "--hidden", "16,16", "--logdir", str(mount),
             "--total-timesteps", "200000", "--eval-interval", "0", "--log-interval", "100",
             "--checkpoint-interval", "500"], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not list(mount.glob("*/checkpoints/latest.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.1)
        # A read-only remount is refused (EBUSY) while a file on it is open for writing: retry between writes.
        while subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline + 30, "could not remount the tmpfs read-only"
            time.sleep(0.01)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 3 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("error: Read-only file system writing ") and "last good checkpoint is kept" in err
        (latest,) = mount.glob("*/checkpoints/latest.ckpt")
        assert load_checkpoint(latest)["meta"]["counters"]["global_step"] >= 500
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_an_allocation_no_estimate_foresaw_is_one_line(capsys, monkeypatch):
    """E.g. random-walk-100000 builds a dense 100,002² transition table (about 160 GB): the MemoryError
    becomes one line and exit 2. (Raised here by a stand-in: a real one depends on the machine's overcommit.)"""
    from qapprox.scripts import _cli, td_lambda

    def out_of_memory(name):
        raise MemoryError()

    monkeypatch.setattr(td_lambda, "make_mdp", out_of_memory)
    with pytest.raises(SystemExit) as exit_:
        _cli.run(lambda: td_lambda.main(["--env", "random-walk-100000", "--episodes", "1", "--runs", "1"]))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == "error: out of memory; lower the sizes asked for (buffer, network, runs, states)\n"
