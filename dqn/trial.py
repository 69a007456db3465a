"""One trial of a sweep: an ordinary training run in a subprocess that resumes from its newest checkpoint.

A trial is `python -m qapprox.dqn.train_cli --env ENV --seed N <flags> --logdir SWEEP_DIR/<trial>`, run with
one torch thread in the trial's directory (so that nothing but the installed qapprox is importable). It holds

    trial.json     what the trial is (env, seed, configuration, flags)
    attempts.json  one entry per start: when, and the checkpoint it resumed from
    train.log      the training run's stdout and stderr, all attempts appended
    done.json      written last, atomically, when the run finished: the trial is then skipped. Its
                   "outcome" is "finished", or "diverged" when the divergence guard stopped training
                   (exit EXIT_DIVERGED): a result of the trial like any other, not a failure
    <env>__<name>__<seed>__<time>/   the run's TensorBoard events and checkpoints/

Test hook: with QAPPROX_SWEEP_KILL_TRIAL=<trial name> in the driver's environment, the first attempt of
that trial SIGKILLs its training process and then its own Ray worker as soon as the run's first
checkpoint file appears, the way a lost machine would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qapprox.dqn.command_line import EXIT_DIVERGED
from qapprox.dqn.config import flag
from qapprox.dqn.logging import checkpoint_path
from qapprox.dqn.ray_cluster import die_with_parent
from qapprox.dqn.trial_files import config_name, read_json, write_json

KILL_TRIAL_VARIABLE = "QAPPROX_SWEEP_KILL_TRIAL"


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a configuration and a seed, in sweep_dir/name."""

    sweep_dir: str
    env: str
    seed: int
    config: dict[str, str]
    fixed: dict[str, str]  # the same for every trial (--set), not part of the name
    total_timesteps: int | None = None
    device: str = "cpu"
    kill_after_checkpoint: bool = False  # the test hook, see the module docstring

    @property
    def config_name(self) -> str:
        return config_name(self.config)

    @property
    def name(self) -> str:
        return f"{self.config_name}__seed{self.seed}"

    @property
    def directory(self) -> Path:
        return Path(self.sweep_dir) / self.name


def train_command(trial: Trial, resume: Path | None) -> list[str]:
    """The training run's command line for this trial (and its checkpoint, when resuming)."""
    command = [sys.executable, "-m", "qapprox.dqn.train_cli", "--no-progress", "--env", trial.env,
               "--seed", str(trial.seed), "--logdir", str(trial.directory), "--device", trial.device]
    if trial.total_timesteps is not None:
        command += ["--total-timesteps", str(trial.total_timesteps)]
    for key, value in {**trial.fixed, **trial.config}.items():
        command += [flag(key), value]
    return command + (["--resume", str(resume)] if resume else [])


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest checkpoint of this trial's runs (a run's latest.ckpt, not its best.ckpt), or None."""
    return max(trial_dir.glob(str(checkpoint_path("*"))), key=lambda p: p.stat().st_mtime, default=None)


class TrialInterrupted(RuntimeError):
    """The training process was killed by a signal: worth a retry from its checkpoint."""


class TrialFailed(RuntimeError):
    """The training process exited with an error: a retry would fail the same way."""


def run_trial(trial: Trial) -> dict:
    """Run (or resume) one trial to completion; return its done.json. Finished trials return at once."""
    directory = trial.directory
    done = read_json(directory / "done.json")
    if done is not None:
        return done
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "trial.json", dataclasses.asdict(trial) | {"name": trial.name})
    resume = latest_checkpoint(directory)
    attempts = read_json(directory / "attempts.json", []) + [
        {"started": time.time(), "resume": str(resume) if resume else None, "host": os.uname().nodename}]
    write_json(directory / "attempts.json", attempts)

    environment = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    environment.pop(KILL_TRIAL_VARIABLE, None)
    command = train_command(trial, resume)
    with open(directory / "train.log", "a") as log:
        log.write(f"\n=== attempt {len(attempts)}: {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=directory, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        if trial.kill_after_checkpoint and len(attempts) == 1:
            while latest_checkpoint(directory) is None and process.poll() is None:
                time.sleep(0.05)
            process.kill()
            os.kill(os.getpid(), signal.SIGKILL)  # the Ray worker dies: Ray retries the task
        returncode = process.wait()
    if returncode < 0:
        raise TrialInterrupted(f"trial {trial.name} was killed by signal {-returncode}")
    last = ((directory / "train.log").read_text().strip().splitlines() or [""])[-1]
    if returncode not in (0, EXIT_DIVERGED):
        raise TrialFailed(f"trial {trial.name} exited with status {returncode}: {last}")
    done = {"name": trial.name, "finished": time.time(), "attempts": len(attempts),
            "seconds": time.time() - attempts[-1]["started"],  # of the attempt that finished
            "outcome": "diverged" if returncode == EXIT_DIVERGED else "finished"}
    if returncode == EXIT_DIVERGED:
        done["message"] = last.removeprefix("error: ")
    write_json(directory / "done.json", done)
    return done


def pending(trials: list[Trial]) -> list[Trial]:
    """Trials without done.json: the ones a (re-)run must start or resume."""
    return [t for t in trials if not (t.directory / "done.json").exists()]
