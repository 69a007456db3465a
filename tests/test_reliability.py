"""Reliability as a user meets it, with real processes: SIGKILL then --resume loses nothing, Ctrl-C saves a
checkpoint and exits 130, a code-running checkpoint is refused on the command line, and bad input leaves the
files already on disk untouched. (In-process checks of the same mechanisms live in test_checkpoint.py and
test_train_script.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from qapprox.dqn.agent import DQN
from qapprox.dqn.checkpoint import load_checkpoint
from qapprox.dqn.config import DQNConfig
from forgery import Payload, malicious_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LOG_INTERVAL = 100
TINY = ["--no-progress", "--hidden", "32,32", "--learning-starts", "100", "--eval-interval", "0",
        "--log-interval", str(LOG_INTERVAL), "--checkpoint-interval", "500", "--buffer-size", "5000"]


def command(script: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", f"scripts.{script}", *argv]


def finish(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def counters(path: Path) -> dict:
    return load_checkpoint(path)["meta"]["counters"]


def start_and_wait_for_checkpoint(logdir: Path, total: int, at_least: int) -> tuple[subprocess.Popen, Path]:
    """A training process, returned once its latest.ckpt holds global_step ≥ at_least (and is still running)."""
    process = subprocess.Popen(command("train_dqn", *TINY, "--total-timesteps", str(total), "--logdir", str(logdir),
                                       "--save-replay", "true"),
                               cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for latest in logdir.glob("*/checkpoints/latest.ckpt"):  # os.replace makes every read see a whole file
            if counters(latest)["global_step"] >= at_least:
                return process, latest
        time.sleep(0.02)
    process.kill()
    out, err = process.communicate()
    pytest.fail(f"no checkpoint with step ≥ {at_least} while the run was alive (exit {process.returncode}): {err[-500:]}")


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)]


# -------------------------------------------------------------- SIGKILL, then --resume
def test_sigkill_then_resume_continues_from_the_checkpoint_with_nothing_lost_or_repeated(tmp_path):
    total = 3000
    process, latest = start_and_wait_for_checkpoint(tmp_path, total, at_least=500)
    run_dir = latest.parents[1]
    # Kill once TensorBoard holds steps past the checkpoint (2 logs on, 3 before the next checkpoint at 500k):
    # the resumed run must then drop that tail instead of logging those steps twice.
    while process.poll() is None and (scalar_steps(run_dir, "charts/epsilon") or [0])[-1] % 500 < 200:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    saved = counters(latest)
    assert 500 <= saved["global_step"] < total and saved["global_step"] % 500 == 0
    assert scalar_steps(run_dir, "charts/epsilon")[-1] > saved["global_step"]  # a tail to drop on resume

    result = finish(command("train_dqn", "--resume", str(latest), "--no-progress"))
    assert result.returncode == 0, result.stderr
    assert f"resuming {latest} at step {saved['global_step']:,} of {total:,}" in result.stdout
    final = counters(latest)
    assert final["global_step"] == total
    assert final["updates"] > saved["updates"] and final["episodes"] > saved["episodes"]
    assert list(tmp_path.iterdir()) == [run_dir]  # the resumed run logs into the same run dir
    # Every log_interval steps exactly once across the kill: nothing missing, nothing from the killed tail.
    assert scalar_steps(run_dir, "charts/epsilon") == list(range(LOG_INTERVAL, total + 1, LOG_INTERVAL))


# -------------------------------------------------------------- Ctrl-C
def test_sigint_saves_a_loadable_checkpoint_and_exits_130_without_a_traceback(tmp_path):
    total = 200_000  # never reached: Ctrl-C stops it
    process, latest = start_and_wait_for_checkpoint(tmp_path, total, at_least=500)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip() == ""
    step = counters(latest)["global_step"]
    assert 500 <= step < total
    assert f"stopped by Ctrl-C at step {step:,}; resume with --resume {latest}" in out
    state = load_checkpoint(latest)
    assert "replay" in state and all(torch.isfinite(value).all() for value in state["q"].values())


# -------------------------------------------------------------- code-running checkpoints
def plain_pickle(path: Path, marker: Path) -> None:
    torch.save({"meta": "{}", "q": Payload(marker)}, path)


def with_our_header(path: Path, marker: Path) -> None:
    """Header, a real run's meta and a valid checksum: only the weights-only unpickler stands in the way."""
    meta = DQN(DQNConfig(logdir="", device="cpu", hidden=(16, 16))).state_dict()[1]
    malicious_checkpoint(path, marker, meta)


@pytest.mark.parametrize("make, message", [(plain_pickle, "is not a qapprox checkpoint"),
                                           (with_our_header, "contains objects that could run code; refused")])
@pytest.mark.parametrize("script", ["train_dqn --resume", "evaluate"])
def test_malicious_checkpoint_on_the_command_line_exits_2_and_runs_nothing(tmp_path, make, message, script):
    marker, path = tmp_path / "pwned.txt", tmp_path / "evil.ckpt"
    make(path, marker)
    name, *flags = script.split()
    result = finish(command(name, *flags, str(path)))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {path}") and message in result.stderr
    assert not marker.exists()


# -------------------------------------------------------------- bad input loses nothing
BAD_FOR_A_NEW_RUN = [["--gamma", "1.5"], ["--total-timesteps", "-5"], ["--env", "NoSuchEnv-v0"]]
BAD_FOR_A_RESUME = [["--gamma", "1.5"], ["--hidden", "64,64"], ["--env", "Acrobot-v1"]]


def test_bad_input_into_an_existing_run_leaves_its_files_byte_identical(tmp_path):
    result = finish(command("train_dqn", *TINY, "--total-timesteps", "600", "--logdir", str(tmp_path)))
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    files = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    latest = run_dir / "checkpoints" / "latest.ckpt"
    assert latest in files

    attempts = ([["--logdir", str(tmp_path), *bad] for bad in BAD_FOR_A_NEW_RUN]
                + [["--resume", str(latest), *bad] for bad in BAD_FOR_A_RESUME])
    for argv in attempts:
        result = finish(command("train_dqn", *argv))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), argv
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == files
    assert list(tmp_path.iterdir()) == [run_dir]  # no half-made run dir either
