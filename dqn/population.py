"""A population: K members, one per seed, trained in lockstep by one DQN (dqn.agent) — what the loop keeps per
member, which seeds, and the population's folder with its manifest.

    seeds = parse_seeds("0-15", MAX_MEMBERS)          # [0, 1, …, 15] (envs.validation); also "0,3,7"
    agent = DQN(config, seeds=seeds).learn()          # member k learns as `qapprox train --seed seeds[k]` would

On disk, each member is an ordinary run, runs/<env>__<name>__<seed>__<time>/ (TensorBoard shows the seeds
side by side; `qapprox evaluate` and DQN.load read a member's checkpoints as a single run's), and the
population has its own folder runs/<env>__<name>__population__<time>/ holding population.json (the manifest:
the seeds, their run folders, which members stopped and the step of the last checkpoint) and the aggregate
(dqn.population_report).

A population checkpoint is every running member's latest.ckpt at one step. A SIGKILL may strike between two
members' files, so they are written in three phases — each member's checkpoints/latest.<step>.ckpt, then the
manifest naming that step (the commit), then each renamed over latest.ckpt — and a resume (`commit_pending`)
finishes the renames of a committed step and deletes the files of an uncommitted one: the members always
resume from one step.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qapprox.dqn.config import DQNConfig
from qapprox.dqn.logging import CHECKPOINTS, SEPARATOR, RunLogger, check_run_name, checkpoint_path
from qapprox.envs.validation import check_name, check_seed, shown

MAX_MEMBERS = 1024  # members in one process
MANIFEST = "population.json"
POPULATION = "population"  # the third part of a population folder's name, where a run's seed would be
RECENT_EPISODES = 20  # recent_return averages the last this many training episodes


def check_seeds(seeds: Any) -> list[int]:
    """1 to MAX_MEMBERS distinct seeds (each in [0, SEED_MAX]) as a list."""
    try:
        seeds = list(seeds)
    except TypeError:
        raise ValueError(f"seeds={shown(seeds)} must be a sequence of integer seeds") from None
    if not 1 <= len(seeds) <= MAX_MEMBERS:
        raise ValueError(f"seeds: {len(seeds):,} given; a population has 1 to {MAX_MEMBERS:,} members")
    for seed in seeds:
        check_seed("seed", seed)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1}) if len(set(seeds)) < len(seeds) else []
    if repeated:
        raise ValueError(f"seeds {repeated[:5]} appear more than once: members must have distinct seeds")
    return [int(s) for s in seeds]


@dataclass
class Member:
    """What the loop keeps for one member: the agent of one seed."""

    config: DQNConfig  # the population's config with this member's seed
    run_dir: Path | None  # its run folder (None: logdir="")
    logger: RunLogger | None = None
    episodes: int = 0
    best_eval_return: float = -math.inf
    solved_step: int | None = None  # first evaluation with mean ≥ the env's reward threshold
    last_checkpoint: Path | None = None
    stopped: str | None = None  # why it stopped (its divergence); None while it trains
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_EPISODES))

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def recent_return(self) -> float:
        """Mean return of the last RECENT_EPISODES finished training episodes (nan before the first)."""
        return float(np.mean(self.recent_returns)) if self.recent_returns else math.nan


def make_population_dir(root: str | Path, env_id: str, name: str, started: int) -> Path:
    """root/<env>__<name>__population__<started>: beside its members' run folders, never read as a run."""
    check_run_name("run_name", name)
    env = env_id.replace("/", "-").replace(chr(92), "-")
    return Path(root) / SEPARATOR.join((env, name, POPULATION, str(started)))


def pending_checkpoint(run_dir: Path, step: int) -> Path:
    """A member's checkpoint of a population checkpoint at `step` before its commit (module doc)."""
    return Path(run_dir) / CHECKPOINTS / f"latest.{step}.ckpt"


def write_manifest(population_dir: Path, members: list[Member], step: int, retired: list[dict[str, Any]] = ()) -> Path:
    """population.json (atomic, fsync'd): the commit of a population checkpoint at `step`; `retired`: the
    entries of members that had stopped before a resume."""
    manifest = {"version": 1, "env_id": members[0].config.env_id, "global_step": step,
                "members": [{"seed": m.seed, "run_dir": m.run_dir.name, "stopped": m.stopped} for m in members]
                + list(retired)}
    path = population_dir / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=1)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def commit(members: list[Member], step: int) -> None:
    """The last phase of a population checkpoint: each running member's latest.<step>.ckpt becomes latest.ckpt."""
    for member in members:
        if member.stopped is None and member.run_dir is not None:
            os.replace(pending_checkpoint(member.run_dir, step), checkpoint_path(member.run_dir))


def read_manifest(path: str | Path) -> tuple[Path, int, list[dict[str, Any]]]:
    """(population folder, global step, members as {seed, run_dir, stopped}) of a population.json or its
    folder, every field checked: a bad manifest is a one-line ValueError naming the field."""
    path = Path(path)
    path = path / MANIFEST if path.is_dir() else path
    try:
        if path.stat().st_size > 1 << 20:
            raise ValueError(f"{path}: a manifest is at most 1 MiB")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no population manifest here (a population folder holds {MANIFEST})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("version") != 1:
        raise ValueError(f"{path}: not a version-1 population manifest")
    step = manifest.get("global_step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"{path}: global_step={shown(step)} must be an integer ≥ 0")
    members = manifest.get("members")
    if not isinstance(members, list) or not members:
        raise ValueError(f"{path}: members must be a non-empty list")
    for entry in members:
        if not isinstance(entry, dict) or set(entry) != {"seed", "run_dir", "stopped"}:
            raise ValueError(f"{path}: each member is {{seed, run_dir, stopped}}; got {shown(entry)}")
        check_name(f"{path}: run_dir", entry["run_dir"])  # a folder beside the population's, never a path
        if entry["stopped"] is not None and not isinstance(entry["stopped"], str):
            raise ValueError(f"{path}: stopped={shown(entry['stopped'])} must be null or a reason")
    try:
        check_seeds([entry["seed"] for entry in members])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return path.parent, step, members


def commit_pending(population_dir: Path, step: int, members: list[dict[str, Any]]) -> None:
    """Finish an interrupted population checkpoint (module doc): latest.<step>.ckpt of the committed step
    becomes latest.ckpt; pending files of any other step (never committed) are deleted."""
    for entry in members:
        checkpoints = population_dir.parent / entry["run_dir"] / CHECKPOINTS
        for pending in checkpoints.glob("latest.*.ckpt"):
            middle = pending.name[len("latest."):-len(".ckpt")]
            if middle.isdigit() and int(middle) == step and entry["stopped"] is None:
                os.replace(pending, checkpoints / "latest.ckpt")
            elif middle.isdigit():
                pending.unlink()
