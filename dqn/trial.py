"""One trial of a sweep: an ordinary training run, or a population of them, in a subprocess that resumes
from its newest checkpoint.

A trial is `python -m qapprox.dqn.train_cli --env ENV --seed N <flags> --logdir SWEEP_DIR/<trial>`, run with
one torch thread in the trial's directory (so that nothing but the installed qapprox is importable); a
population trial (`qapprox sweep --seeds-per-trial K`) runs `--seeds a,b,…` instead: K members in lockstep
in one process (dqn.population), each writing the run folder that `--seed` alone would, and resumes with
`--resume <population folder>` alone (its manifest names the seeds and folders). It holds

    trial.json     what the trial is (env, seed, seeds, configuration, flags)
    attempts.json  one entry per start: when, and the checkpoint (or population folder) it resumed from
    train.log      the training run's stdout and stderr, all attempts appended
    done.json      written last, atomically, when the run finished: the trial is then skipped. Its
                   "outcome" is "finished", or "diverged" when the divergence guard stopped training
                   (exit EXIT_DIVERGED: every member, for a population): a result of the trial like any
                   other, not a failure. A population's "members" give each seed's outcome: "diverged"
                   for a member its manifest marks stopped
    <env>__<name>__<seed>__<time>/   the run's (each member's) TensorBoard events and checkpoints/
    <env>__<name>__population__<time>/   a population's population.json, which a resume starts from

Test hook: with QAPPROX_SWEEP_KILL_TRIAL=<trial name> in the driver's environment, the first attempt of
that trial SIGKILLs its training process and then its own Ray worker as soon as the run's (a population's
first member's) first checkpoint file appears, the way a lost machine would.
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
from qapprox.dqn.population import MANIFEST, read_manifest
from qapprox.dqn.ray_cluster import die_with_parent
from qapprox.dqn.trial_files import config_name, read_json, write_json

KILL_TRIAL_VARIABLE = "QAPPROX_SWEEP_KILL_TRIAL"


def spell_seeds(seeds: tuple[int, ...]) -> str:
    """(0, 1, 2, 3) → '0-3'; (0, 3, 7, 8) → '0,3,7-8': runs of consecutive seeds as ranges, in order, as
    envs.validation.parse_seeds reads them back."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a sweep, a configuration and a seed, in sweep_dir/name; or a population of
    runs, one per seed of `seeds` (its first is `seed`), trained in lockstep in one process."""

    sweep_dir: str
    env: str
    seed: int
    config: dict[str, str]
    fixed: dict[str, str]  # the same for every trial (--set), not part of the name
    total_timesteps: int | None = None
    device: str = "cpu"
    kill_after_checkpoint: bool = False  # the test hook, see the module docstring
    seeds: tuple[int, ...] = ()  # every seed of the trial; () is (seed,)

    def __post_init__(self) -> None:
        seeds = tuple(self.seeds) or (self.seed,)
        if seeds[0] != self.seed:
            raise ValueError(f"seeds={list(seeds)} must start with the trial's seed {self.seed}")
        object.__setattr__(self, "seeds", seeds)

    @property
    def population(self) -> bool:
        return len(self.seeds) > 1

    @property
    def config_name(self) -> str:
        return config_name(self.config)

    @property
    def name(self) -> str:
        """<config>__seed<N>, or <config>__seeds<spell_seeds(seeds)> for a population."""
        return f"{self.config_name}__seeds{spell_seeds(self.seeds)}" if self.population \
            else f"{self.config_name}__seed{self.seed}"

    @property
    def directory(self) -> Path:
        return Path(self.sweep_dir) / self.name


def train_command(trial: Trial, resume: Path | None) -> list[str]:
    """The training run's command line for this trial (and its checkpoint or population folder, when
    resuming: a population's seeds and folders are then its manifest's)."""
    if not trial.population:
        names = ["--seed", str(trial.seed), "--logdir", str(trial.directory)]
    else:
        names = [] if resume else ["--seeds", ",".join(map(str, trial.seeds)), "--logdir", str(trial.directory)]
    command = [sys.executable, "-m", "qapprox.dqn.train_cli", "--no-progress", "--env", trial.env, *names,
               "--device", trial.device]
    if trial.total_timesteps is not None:
        command += ["--total-timesteps", str(trial.total_timesteps)]
    for key, value in {**trial.fixed, **trial.config}.items():
        command += [flag(key), value]
    return command + (["--resume", str(resume)] if resume else [])


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest checkpoint of this trial's runs (a run's latest.ckpt, not its best.ckpt), or None."""
    return max(trial_dir.glob(str(checkpoint_path("*"))), key=lambda p: p.stat().st_mtime, default=None)


def population_folder(trial_dir: Path) -> Path | None:
    """The trial's population folder that holds a manifest (written with its first checkpoint), or None."""
    return max((p.parent for p in trial_dir.glob(f"*/{MANIFEST}")), key=lambda p: p.stat().st_mtime, default=None)


def resume_point(trial: Trial) -> Path | None:
    """Where a new attempt resumes: a population's folder, a single run's newest checkpoint; None: from scratch."""
    return population_folder(trial.directory) if trial.population else latest_checkpoint(trial.directory)


def member_outcomes(trial: Trial, outcome: str) -> list[dict]:
    """Each member's outcome: the trial's, or "diverged" for a member its manifest marks stopped."""
    folder = population_folder(trial.directory)
    stopped = {m["seed"] for m in read_manifest(folder)[2] if m["stopped"] is not None} if folder else set()
    return [{"seed": seed, "outcome": "diverged" if seed in stopped else outcome} for seed in trial.seeds]


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
    resume = resume_point(trial)
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
    if trial.population:
        done["members"] = member_outcomes(trial, done["outcome"])
    write_json(directory / "done.json", done)
    return done


def pending(trials: list[Trial]) -> list[Trial]:
    """Trials without done.json: the ones a (re-)run must start or resume."""
    return [t for t in trials if not (t.directory / "done.json").exists()]
