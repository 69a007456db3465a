"""scripts.train_dqn, scripts.evaluate and scripts.plot_runs: flags from the config dataclass,
precedence, one-line errors with exit status 2, a run → resume → evaluate → plot round trip,
and the divergence guard."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from qapprox.dqn.checkpoint import load_checkpoint
from qapprox.dqn.command_line import EXIT_DIVERGED
from qapprox.dqn.config import DQNConfig
from qapprox.scripts import evaluate, plot_runs, train_dqn
from script_calls import exit_status

REPO = Path(__file__).resolve().parents[1]
TINY = ["--no-progress", "--hidden", "16,16", "--learning-starts", "100", "--eval-interval", "0", "--log-interval", "100"]


# -------------------------------------------------------------- flags and precedence
def test_no_flags_is_the_default_cartpole_preset():
    config, given = train_dqn.config_from_args(train_dqn.build_parser().parse_args([]))
    assert config == DQNConfig() and config.env_id == "CartPole-v1" and given == {}


def test_every_config_field_is_a_flag():
    options = {option for action in train_dqn.build_parser()._actions for option in action.option_strings}
    for field in fields(DQNConfig):
        assert "--" + field.name.replace("_", "-") in options
    assert "--env" in options


def test_flag_types_follow_the_annotations():
    args = train_dqn.build_parser().parse_args(["--double-q", "false", "--hidden", "64,32", "--gamma", "0.5",
                                                "--total-timesteps", "20_000", "--env", "Acrobot-v1"])
    config, _ = train_dqn.config_from_args(args)
    assert (config.double_q, config.hidden, config.gamma, config.total_timesteps) == (False, (64, 32), 0.5, 20_000)
    assert config.learning_rate == 6.3e-4  # --env picked Acrobot-v1's preset


def test_precedence_preset_then_config_file_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('learning_rate = 0.5\nbatch_size = 32\nhidden = [8, 8]\n')
    args = train_dqn.build_parser().parse_args(["--preset", "sb3-zoo-cartpole", "--config", str(path), "--batch-size", "16"])
    config, _ = train_dqn.config_from_args(args)
    assert config.train_freq == 256  # preset
    assert (config.learning_rate, config.hidden) == (0.5, (8, 8))  # file over preset
    assert config.batch_size == 16  # flag over file


# -------------------------------------------------------------- bad input: exit 2, one line
@pytest.mark.parametrize("argv, message", [
    (["--env", "Pendulum-v1"], "needs a Discrete action space"),
    (["--env", "NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
    (["--gamma", "1.5"], "gamma=1.5 is outside [0, 1]"),
    (["--batch-size", "64", "--buffer-size", "32"], "batch_size=64 is larger than buffer_size=32"),
    (["--total-timesteps", "-1"], "total_timesteps=-1 must be an integer ≥ 0"),
    (["--learning-rate", "0"], "learning_rate=0.0 must be > 0"),
    (["--config", "/nonexistent/c.toml"], "config file /nonexistent/c.toml does not exist"),
    (["--resume", "/nonexistent/a.ckpt"], "checkpoint /nonexistent/a.ckpt does not exist"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    code, _, err = exit_status(train_dqn.main, argv, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_unknown_config_key_and_corrupt_checkpoint(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("learning_rat = 0.1\n")
    code, _, err = exit_status(train_dqn.main, ["--config", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "unknown key 'learning_rat'" in err and "learning_rate" in err
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint at all")
    for main, argv in ((train_dqn.main, ["--resume", str(broken)]), (evaluate.main, [str(broken)])):
        code, _, err = exit_status(main, argv, capsys)
        assert code == 2 and err.count("\n") == 1 and f"{broken} is not a qapprox checkpoint" in err


def test_bad_input_as_a_real_process():
    result = subprocess.run([sys.executable, "-m", "scripts.train_dqn", "--gamma", "-0.1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == "error: gamma=-0.1 is outside [0, 1]\n"


# -------------------------------------------------------------- run, resume, evaluate, plot
def test_train_resume_evaluate_plot(tmp_path, capsys):
    logdir = tmp_path / "runs"
    code, out, _ = exit_status(train_dqn.main, TINY + ["--total-timesteps", "600", "--logdir", str(logdir),
                                                       "--checkpoint-interval", "300", "--save-replay", "true"], capsys)
    assert code == 0 and "TensorBoard: tensorboard --logdir" in out
    (run_dir,) = logdir.iterdir()
    latest = run_dir / "checkpoints" / "latest.ckpt"
    assert load_checkpoint(latest)["meta"]["counters"]["global_step"] == 600

    code, out, _ = exit_status(train_dqn.main, ["--resume", str(latest), "--total-timesteps", "1000", "--no-progress"], capsys)
    assert code == 0 and "resuming" in out and "at step 600 of 1,000" in out
    assert load_checkpoint(latest)["meta"]["counters"]["global_step"] == 1000
    assert list(logdir.iterdir()) == [run_dir]  # the resumed run logs into the same run dir
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    steps = [event.step for event in accumulator.Scalars("charts/epsilon")]
    assert steps == list(range(100, 1001, 100))  # continues: no step range missing or repeated

    code, out, _ = exit_status(evaluate.main, [str(latest), "--episodes", "3"], capsys)
    assert code == 0 and "CartPole-v1: mean return" in out and "over 3 greedy episodes (step 1,000)" in out

    png = tmp_path / "curves.png"
    code, out, _ = exit_status(plot_runs.main, [str(run_dir), "--out", str(png)], capsys)
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG") and "CartPole-v1__dqn: 1 run(s)" in out


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    logdir = tmp_path / "runs"
    argv = TINY + ["--optimizer", "sgd", "--learning-rate", "1e30", "--learning-starts", "250",
                   "--checkpoint-interval", "200", "--total-timesteps", "2000", "--logdir", str(logdir)]
    code, _, err = exit_status(train_dqn.main, argv, capsys)
    assert code == EXIT_DIVERGED and err.count("\n") == 1 and "training diverged at step 300: non-finite" in err
    assert "(in the updates after step 200)" in err  # the window since the last log, at step 200
    (run_dir,) = logdir.iterdir()
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert [(e.step, e.value) for e in accumulator.Scalars("charts/diverged")] == [(300, 1.0)]
    state = load_checkpoint(run_dir / "checkpoints" / "latest.ckpt")
    assert state["meta"]["counters"]["global_step"] == 200 and str(run_dir / "checkpoints" / "latest.ckpt") in err
    assert all(np.isfinite(value.numpy()).all() for value in state["q"].values())
