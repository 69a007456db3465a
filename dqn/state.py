"""What an agent's checkpoint holds and how an agent comes back from one. dqn.checkpoint writes and reads
the bytes; dqn.schema says what they may mean; this module maps them onto an agent.

    tensors, meta = agent_state(agent)                  # what save() writes
    agent = restore(DQN, path, device="cpu")            # what DQN.load() returns

A checkpoint's tensors: q, q_target (state dicts), optimizer (Adam's moments of the flat w: per-tensor
moments of older files are migrated by dqn.schema.check_optimizer_state), torch_rng, and the replay if
saved. Its meta (JSON): config, counters, observation shape and actions, numpy's and Python's RNG states.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import torch

from qapprox.approximators.networks import q_network
from qapprox.dqn.checkpoint import CheckpointError, load_checkpoint
from qapprox.dqn.config import DQNConfig, replace
from qapprox.dqn.logging import CHECKPOINTS, checkpoint_path
from qapprox.dqn.population import MANIFEST, commit_pending, read_manifest
from qapprox.dqn.prioritized import PrioritizedReplayBuffer
from qapprox.dqn.replay import ReplayBuffer
from qapprox.dqn.schema import CheckpointMeta, check_optimizer_state, check_tensors, check_torch_rng, parse_meta

if TYPE_CHECKING:
    from qapprox.dqn.agent import DQN

# Fields that fix the network's shape or the task: a checkpoint only loads where they agree.
STRUCTURAL_FIELDS = ("env_id", "q_network", "hidden", "activation", "dueling")
CHECKPOINT_KEYS = {"meta", "q", "q_target", "optimizer", "torch_rng", "replay"}  # the entries of agent_state()


def agent_state(agent: DQN, include_replay: bool | None = None, member: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, meta) of member k (one agent: k = 0): the networks, optimiser and torch RNG states (and the
    replay if asked, by default config.save_replay); the meta as JSON-able values — config, counters,
    shapes, numpy and Python RNG states. A member's checkpoint is the one its seed's agent alone would write."""
    m = agent.members[member]
    include_replay = agent.config.save_replay if include_replay is None else include_replay
    meta = {
        "config": m.config.to_dict(),
        "counters": {"global_step": agent.global_step, "episodes": m.episodes, "updates": agent.updates,
                     "best_eval_return": m.best_eval_return if math.isfinite(m.best_eval_return) else None,
                     "solved_step": m.solved_step},
        "obs_shape": list(agent.obs_shape), "n_actions": agent.n_actions,
        "numpy_rng": agent.algorithm.rngs[member].bit_generator.state,
        "python_random": _jsonable(random.getstate()),
    }
    state = {**agent.algorithm.state_dict(member), "torch_rng": torch.get_rng_state()}
    if include_replay:
        state["replay"] = agent.replay.member_state(member)
    return state, meta


class _Checked(NamedTuple):
    """One checkpoint file, read and checked, and the config it resumes with."""

    path: Path
    config: DQNConfig
    meta: CheckpointMeta
    q: dict[str, torch.Tensor]
    q_target: dict[str, torch.Tensor]
    optimizer: dict
    torch_rng: torch.Tensor
    replay: dict | None


def restore(cls: type[DQN], path: str | Path, device: str | None = None, env: str | gym.vector.VectorEnv | None = None,
            run_dir: str | Path | None = None, max_bytes: int | None = None, **overrides: Any) -> DQN:
    """An agent of class `cls` restored from a checkpoint, or a population from its folder or manifest:
    weights, optimiser, counters, RNG states (and the replay if saved). Everything in the files is checked
    first (dqn.schema, dqn.population.read_manifest) — see DQN.load."""
    path = Path(path)
    if path.name == MANIFEST or (path.is_dir() and (path / MANIFEST).is_file()):
        return restore_population(cls, path, device=device, env=env, max_bytes=max_bytes, **overrides)
    checked = read_checked(path, device, env, max_bytes, overrides)
    try:
        if run_dir is None and overrides.get("logdir") != "":  # logdir="" from the caller: write nothing
            run_dir = default_run_dir(path)
        agent = cls(checked.config, env if isinstance(env, gym.vector.VectorEnv) else None, run_dir=run_dir)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    _load_member(agent, 0, checked)
    return agent


def restore_population(cls: type[DQN], path: Path, device: str | None = None,
                       env: str | gym.vector.VectorEnv | None = None, max_bytes: int | None = None,
                       **overrides: Any) -> DQN:
    """A population from its manifest (dqn.population): every running member from its latest.ckpt, all at the
    manifest's step and with one config but the seed; an interrupted checkpoint is finished first."""
    try:
        population_dir, step, entries = read_manifest(path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    commit_pending(population_dir, step, entries)
    running = [entry for entry in entries if entry["stopped"] is None]
    if not running:
        raise CheckpointError(f"{population_dir}: every member of this population stopped; nothing to resume")
    members = [read_checked(checkpoint_path(population_dir.parent / e["run_dir"]), device, env, max_bytes, overrides)
               for e in running]
    first = members[0]
    for entry, checked in zip(running, members):
        if checked.config.seed != entry["seed"] or checked.meta.global_step != step:
            raise CheckpointError(f"{checked.path}: seed {checked.config.seed} at step {checked.meta.global_step}; the "
                                  f"population's manifest says seed {entry['seed']} at step {step}")
        mine, theirs = checked.config.to_dict(), first.config.to_dict()
        differing = [name for name in mine if name != "seed" and mine[name] != theirs[name]]
        if differing or checked.meta.updates != first.meta.updates:
            field = differing[0] if differing else "updates"
            raise CheckpointError(f"{checked.path}: {field} differs from the first member's ({first.path}); "
                                  "a population's members share every field but the seed")
    no_logs = overrides.get("logdir") == ""
    try:
        agent = cls(first.config, env if isinstance(env, gym.vector.VectorEnv) else None,
                    run_dir=None if no_logs else population_dir, seeds=[e["seed"] for e in running])
    except ValueError as exc:
        raise CheckpointError(f"{population_dir}: {exc}") from None
    agent.retired = [entry for entry in entries if entry["stopped"] is not None]
    for k, (entry, checked) in enumerate(zip(running, members)):
        agent.members[k].run_dir = None if no_logs else population_dir.parent / entry["run_dir"]
        _load_member(agent, k, checked)
    return agent


def read_checked(path: Path, device: str | None, env: str | gym.vector.VectorEnv | None, max_bytes: int | None,
                 overrides: dict[str, Any]) -> _Checked:
    """A checkpoint file read and checked entry by entry, with the config it resumes with (`overrides` over
    its own; the structural fields must agree)."""
    checked: list[CheckpointMeta] = []

    def size_limit(raw_meta: dict[str, Any]) -> int:  # parse the meta first: its config bounds the file
        checked.append(parse_meta(path, raw_meta))
        try:
            return checkpoint_size_limit(checked[0])
        except ValueError as exc:  # a network its config cannot build (e.g. an MLP on image observations)
            raise CheckpointError(f"{path}: {exc}") from None

    state = load_checkpoint(path, max_bytes=max_bytes, size_limit=size_limit)
    meta = checked[0] if checked else parse_meta(path, state["meta"])
    unknown = sorted(set(state) - CHECKPOINT_KEYS, key=repr)
    if unknown:
        raise CheckpointError(f"{path}: unexpected entries {unknown[:4]}; a checkpoint holds {sorted(CHECKPOINT_KEYS)}")
    saved, overrides = meta.config, dict(overrides)
    if isinstance(env, str):
        overrides["env_id"] = env
    elif env is None and "env_id" not in overrides and ":" in saved.env_id:
        raise CheckpointError(f"{path}: env_id={saved.env_id!r} names a module to import "
                              f"({saved.env_id.split(':')[0]!r}); refused (only an id you pass yourself, "
                              "qapprox train --resume … --env or DQN.load(env=…), may import one)")
    if device is not None:
        overrides["device"] = device
    config = replace(saved, overrides, "overrides")
    for name in STRUCTURAL_FIELDS:
        if getattr(config, name) != getattr(saved, name):
            raise CheckpointError(f"checkpoint {path} has {name}={getattr(saved, name)!r}, "
                                  f"not {getattr(config, name)!r}; start a new run instead")
    try:
        network = meta_network(config, meta.obs_shape, meta.n_actions)  # the expected state dicts and shapes
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    expected = network.state_dict()
    return _Checked(
        path, config, meta,
        check_tensors(path, "q", state.get("q"), expected),
        check_tensors(path, "q_target", state.get("q_target"), expected),
        check_optimizer_state(path, state.get("optimizer"), config.optimizer,
                              [parameter.shape for parameter in network.parameters()]),
        check_torch_rng(path, state.get("torch_rng")),
        state.get("replay"),
    )


def _load_member(agent: DQN, k: int, checked: _Checked) -> None:
    """A checked checkpoint into member k of `agent` (closed on a failure)."""
    path, meta = checked.path, checked.meta
    try:
        if agent.obs_shape != meta.obs_shape or agent.n_actions != meta.n_actions:
            raise CheckpointError(f"checkpoint {path} has observation shape {meta.obs_shape} and {meta.n_actions} "
                                  f"actions; this env has {agent.obs_shape} and {agent.n_actions}")
        if checked.replay is not None:
            try:
                agent.replay.load_member_state(k, checked.replay, agent.n_actions)
            except ValueError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
    except CheckpointError:
        agent.close()
        raise
    agent.algorithm.load_state_dict(checked.q, checked.q_target, checked.optimizer, member=k)
    member = agent.members[k]
    agent.global_step, member.episodes, agent.updates = meta.global_step, meta.episodes, meta.updates
    member.last_checkpoint = path  # the last good checkpoint, should training diverge before the next one
    member.best_eval_return = -math.inf if meta.best_eval_return is None else meta.best_eval_return
    member.solved_step = meta.solved_step
    agent.algorithm.rngs[k].bit_generator.state = meta.numpy_rng
    random.setstate(meta.python_random)
    torch.set_rng_state(checked.torch_rng)


def default_run_dir(checkpoint: Path) -> Path:
    """Where a resumed run writes: the run directory of runs/<run>/checkpoints/x.ckpt, else the checkpoint's folder."""
    folder = checkpoint.resolve().parent
    return folder.parent if folder.name == CHECKPOINTS else folder


def meta_network(config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> torch.nn.Module:
    """The config's Q-network on torch's meta device: its shapes and dtypes, with nothing allocated."""
    with torch.device("meta"):
        return q_network(config.q_network, obs_shape, n_actions, config.hidden, config.activation, config.dueling)


def parameter_count(config: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """|w| of the config's Q-network (counted on the meta device)."""
    return sum(parameter.numel() for parameter in meta_network(config, obs_shape, n_actions).parameters())


def checkpoint_size_limit(meta: CheckpointMeta) -> int:
    """The most bytes a checkpoint of this meta's config can honestly take, with room to spare: w and w⁻ and
    Adam's two moments in float32, the replay (observations bounded at 8 bytes an element) if saved."""
    config = meta.config
    nbytes = 16 * parameter_count(config, meta.obs_shape, meta.n_actions)
    if config.save_replay:
        replay = PrioritizedReplayBuffer if config.prioritized else ReplayBuffer
        nbytes += replay.storage_bytes(config.buffer_size, meta.obs_shape, 8, config.n_envs, config.n_step)
    return 2 * nbytes + (1 << 20)


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value
