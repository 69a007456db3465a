"""Many seeds and hyper-parameter sweeps of DQN training runs on Ray.

    spec = Sweep(env="CartPole-v1", seeds="0-9", grid=["learning_rate=1e-3,3e-4", "double_q=true,false"])
    sweep_dir, trials = prepare(spec, ClusterOptions())      # every check; nothing of Ray has started yet
    failures = run(sweep_dir, trials, ClusterOptions())      # trials as Ray tasks, one line per trial
    analysis.report(sweep_dir)                               # report.md, report.csv, runs.csv, curves.png

A sweep is configurations × seeds; each pair is a Trial (qapprox.dqn.trial): one ordinary training
run in SWEEP_DIR/<configuration>__seed<N>/. With `seeds_per_trial` K > 1 each configuration's seeds
are grouped in order, K at a time, into population trials (SWEEP_DIR/<configuration>__seeds0-3/):
K runs in lockstep in one process, the report still one line per seed. Configurations are the
grid's product, each grid point with `random` seeded draws of the searched keys. Values are
DQNConfig fields parsed by dqn.config.coerce and spelled one way (true/false, 0.0003, '64 64'),
so that a name is its value.

Why Ray core tasks and not Ray Tune: a trial already is a complete program with its own
checkpoints and TensorBoard directory; Tune would add a second tree of trial directories,
its own checkpoint syncing and experiment state that ties a restart to Tune's bookkeeping.
A core task with `max_retries` gives exactly what is needed: Ray re-runs a task whose worker
died, and the re-run resumes from the trial's newest checkpoint (a population's, from its
manifest); `done.json` makes a re-run of the whole sweep skip finished trials. What a sweep is
made of (seeds, grid values, random draws) is checked and counted before any of it is built or
Ray starts.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
import time
import typing
from pathlib import Path

import numpy as np

from qapprox.dqn import ray_cluster
from qapprox.dqn.command_line import DISK_ERRORS
from qapprox.dqn.config import DQNConfig, coerce, resolve
from qapprox.dqn.env_factory import make_env
from qapprox.dqn.ray_cluster import ClusterOptions
from qapprox.dqn.population import MAX_MEMBERS
from qapprox.dqn.trial import KILL_TRIAL_VARIABLE, Trial, TrialFailed, TrialInterrupted, pending, run_trial, spell_seeds
from qapprox.dqn.trial_files import config_name, read_json
from qapprox.envs.validation import check_int, check_name, check_seed, parse_seeds, shown

MAX_TRIALS = 100_000  # configurations × seeds: each trial is a directory, a Ray task and a line of the report
NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)
SEARCH_KINDS = ("uniform", "loguniform", "int")
# DQNConfig fields that the sweep itself sets for every trial, and the sweep flag that does it.
SET_BY_SWEEP = {"env_id": "--env", "seed": "--seeds", "logdir": "--sweep-dir", "device": "--gpus-per-trial",
                "total_timesteps": "--total-timesteps"}


# ---------------------------------------------------------------- what to run
def check_trial_count(configurations: int, seeds: int | None = None, limit: int = MAX_TRIALS) -> None:
    """Refuse (one line) a sweep of more than `limit` trials, before its trials are built."""
    trials = configurations * (1 if seeds is None else seeds)
    if trials > limit:
        count = f"{configurations:,} configurations" + ("" if seeds is None else f" × {seeds:,} seed(s) = {trials:,} trials")
        raise ValueError(f"the sweep has {count}; at most {limit:,} trials are allowed")


def config_fields() -> dict[str, type]:
    """DQNConfig's field names and their types: the keys a sweep may set."""
    hints = typing.get_type_hints(DQNConfig)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(DQNConfig)}


def canonical(key: str, text: str, fields: dict[str, type]) -> str:
    """A value as the trial name and the training flag spell it: true/false, 0.0003, 64, '64 64'.

    Parsed by dqn.config.coerce, as the training script will parse it. Tuple fields take their values
    space-separated in one item (commas separate a key's values): --grid 'hidden=64 64,256 256'."""
    if key in SET_BY_SWEEP:
        raise ValueError(f"{key!r} is set by the sweep: use {SET_BY_SWEEP[key]}")
    if key not in fields:
        allowed = ", ".join(sorted(set(fields) - set(SET_BY_SWEEP)))
        raise ValueError(f"{key!r} is not a DQNConfig field; allowed: {allowed}")
    kind, text = fields[key], " ".join(text.split())
    if not text:
        raise ValueError(f"{key}= has an empty value")
    value = coerce(key, text, kind)  # its ValueError names the key, the value and what is allowed
    if isinstance(value, bool):
        spelled = "true" if value else "false"
    elif isinstance(value, float):
        spelled = f"{value:g}"
    elif isinstance(value, tuple):
        spelled = " ".join(map(str, value))
    else:
        spelled = str(value)
    # Values are part of trial directory names (key=value,…__seedN): one plain path component each.
    return check_name(key, spelled)


def parse_assignments(items: list[str], fields: dict[str, type]) -> dict[str, list[str]]:
    """['learning_rate=1e-3,3e-4', 'double_q=true,false'] → {key: canonical values}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, equals, values = item.partition("=")
        key = key.strip()
        if not equals or not values:
            raise ValueError(f"{item!r} is not KEY=VALUE[,VALUE...]")
        if key in grid:
            raise ValueError(f"{key!r} is given twice")
        grid[key] = [canonical(key, v, fields) for v in values.split(",")]
        twice = [v for v, n in collections.Counter(grid[key]).items() if n > 1]
        if twice:  # two trials of one name would share a directory
            raise ValueError(f"{key}={twice[0]} is given twice in {shown(item)}")
    return grid


def parse_search(items: list[str], fields: dict[str, type]) -> dict[str, tuple[str, float, float]]:
    """['learning_rate=loguniform:1e-4:1e-2'] → {key: (kind, low, high)}; int bounds inclusive."""
    search: dict[str, tuple[str, float, float]] = {}
    for item in items:
        key, _, spec = item.partition("=")
        parts = spec.split(":")
        if len(parts) != 3 or parts[0] not in SEARCH_KINDS:
            raise ValueError(f"{item!r} is not KEY=KIND:LOW:HIGH with KIND in {', '.join(SEARCH_KINDS)}")
        canonical(key, parts[1], fields)  # the key exists and takes this kind of value
        try:
            low, high = float(parts[1]), float(parts[2])
        except ValueError:
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{shown(item)}: LOW and HIGH must be finite numbers")
        if not low < high or (parts[0] == "loguniform" and low <= 0):
            raise ValueError(f"{item!r}: need LOW < HIGH (and LOW > 0 for loguniform)")
        search[key] = (parts[0], low, high)
    return search


def draw(kind: str, low: float, high: float, rng: np.random.Generator) -> str:
    """One random value, rounded to 4 significant digits so that its name is its value."""
    if kind == "int":
        return str(int(rng.integers(int(low), int(high) + 1)))
    u = rng.uniform(np.log(low), np.log(high)) if kind == "loguniform" else rng.uniform(low, high)
    return f"{float(np.exp(u) if kind == 'loguniform' else u):.4g}"


def configurations(grid: dict[str, list[str]], search: dict[str, tuple[str, float, float]], samples: int,
                   seed: int) -> list[dict[str, str]]:
    """Every grid point × `samples` random draws of the searched keys (seeded: a re-run draws the same).

    Draws that round to a configuration already drawn are dropped (one name, one directory). More than
    MAX_TRIALS configurations is a one-line ValueError, counted before any is built (make_trials counts the
    trials, configurations × seeds)."""
    check_int("random", samples, 0)
    check_seed("search_seed", seed)
    check_trial_count(math.prod(len(values) for values in grid.values()) * max(samples, 1))
    if search and samples < 1:
        raise ValueError(f"random={samples}: --search needs --random N with N ≥ 1")
    if samples and not search:
        raise ValueError(f"random={samples} needs at least one --search KEY=KIND:LOW:HIGH")
    rng = np.random.default_rng(seed)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    draws = [{key: draw(*spec, rng) for key, spec in search.items()} for _ in range(max(samples, 1))]
    configs = [{**point, **sample} for point in points for sample in draws]
    return list({config_name(c): c for c in configs}.values())


def check_env(env: str) -> None:
    """The env id as the training script will build it (dqn.env_factory.make_env: a registered id, a
    Discrete action space, a Box or Discrete observation space), or a one-line ValueError — before Ray."""
    make_env(env).close()


def check_configs(env: str, configs: list[dict[str, str]], fixed: dict[str, str],
                  total_timesteps: int | None, seeds: typing.Sequence[int] = (0,)) -> None:
    """Build every configuration's DQNConfig as the training script will (dqn.config.resolve: the env's
    preset, then the flags) and validate it, so that a bad value is one line now rather than a failed
    trial later. The seeds' range is DQNConfig's (envs.validation.check_seed): the smallest and the largest."""
    steps = {} if total_timesteps is None else {"total_timesteps": total_timesteps}
    for seed in (min(seeds), max(seeds)):
        check_seed("seed", seed)
    for config in configs:
        resolve({**fixed, **config, "env_id": env, **steps}, source="the sweep")


def make_trials(sweep_dir: str | Path, env: str, seeds: list[int], configs: list[dict[str, str]],
                fixed: dict[str, str], total_timesteps: int | None, device: str,
                seeds_per_trial: int = 1) -> list[Trial]:
    """Configurations × seeds, one Trial each; with seeds_per_trial K > 1, each configuration's seeds
    grouped in order into trials of up to K (0-4, K = 2: (0, 1), (2, 3), (4,)). The test hook marks the
    trial it names.

    Every trial directory is one plain, new component inside sweep_dir (no separator, not '..', at most
    NAME_MAX bytes, no two trials alike): anything else is a one-line ValueError."""
    check_trial_count(len(configs), len(seeds))
    check_int("seeds_per_trial", seeds_per_trial, 1, MAX_MEMBERS)
    groups = [tuple(seeds[i:i + seeds_per_trial]) for i in range(0, len(seeds), seeds_per_trial)]
    doomed = os.environ.get(KILL_TRIAL_VARIABLE, "")
    root = Path(sweep_dir).resolve()
    trials = [Trial(str(root), env, group[0], config, fixed, total_timesteps, device, seeds=group)
              for config in configs for group in groups]
    names: set[str] = set()
    for trial in trials:
        check_name("trial directory", trial.name)
        if len(os.fsencode(trial.name)) > NAME_MAX:
            raise ValueError(f"trial directory {shown(trial.name)} is longer than {NAME_MAX} bytes; "
                             "sweep fewer keys at once (or fix some with --set)")
        if trial.name in names or trial.directory.parent != root:
            raise ValueError(f"trial directory {shown(trial.name)} is not a new folder inside {root}")
        names.add(trial.name)
    return [dataclasses.replace(t, kill_after_checkpoint=t.name == doomed) for t in trials]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What a sweep runs, as its command line spells it (see `qapprox sweep --help`)."""

    env: str = "CartPole-v1"
    seeds: str = "0-4"  # e.g. 0-9 or 0,3,7-8
    grid: typing.Sequence[str] = ()  # KEY=V1,V2 each; their product
    search: typing.Sequence[str] = ()  # KEY=KIND:LOW:HIGH each, drawn `random` times per grid point
    random: int = 0
    search_seed: int = 0
    fixed: typing.Sequence[str] = ()  # KEY=VALUE each, the same for every trial (not part of trial names)
    total_timesteps: int | None = None
    sweep_dir: str | Path | None = None  # default runs/sweeps/<env>; reuse it to resume
    seeds_per_trial: int = 1  # K > 1: populations of up to K seeds, one process each


def prepare(sweep: Sweep, cluster: ClusterOptions, bench: bool = False) -> tuple[Path, list[Trial]]:
    """Check everything a sweep is made of before anything starts — Ray is neither started nor imported,
    nothing is allocated or written — and return (sweep directory, trials). A bad value is a one-line
    ValueError. With `bench` the trials go to a new bench-<pid> folder inside the sweep directory."""
    fields = config_fields()
    fixed = parse_assignments(list(sweep.fixed), fields)
    if any(len(values) != 1 for values in fixed.values()):
        raise ValueError(f"--set takes one value per key: {' '.join(sweep.fixed)}")
    grid = parse_assignments(list(sweep.grid), fields)
    configs = configurations(grid, parse_search(list(sweep.search), fields), sweep.random, sweep.search_seed)
    sweep_dir = Path(sweep.sweep_dir or Path("runs", "sweeps", sweep.env.replace("/", "-")))
    if bench:
        sweep_dir = sweep_dir / f"bench-{os.getpid()}"
    fixed_values = {key: values[0] for key, values in fixed.items()}
    return sweep_dir, prepare_trials(sweep_dir, sweep.env, sweep.seeds, configs, fixed_values, sweep.total_timesteps,
                                     cluster, bench, sweep.seeds_per_trial)


def prepare_trials(sweep_dir: Path, env: str, seeds: str, configs: list[dict[str, str]], fixed: dict[str, str],
                   total_timesteps: int | None, cluster: ClusterOptions, bench: bool = False,
                   seeds_per_trial: int = 1) -> list[Trial]:
    """The trials of configurations (canonical values, as configurations() makes them) × seeds in
    sweep_dir, after every check of prepare() that does not depend on how the configurations were chosen:
    Ray installed, the cluster's options, the seeds, the env and each configuration's DQNConfig."""
    ray_cluster.check_ray_installed()
    cluster.check(bench)
    seed_list = parse_seeds(seeds, MAX_TRIALS)
    check_env(env)
    check_configs(env, configs, fixed, total_timesteps, seed_list)
    return make_trials(sweep_dir, env, seed_list, configs, fixed, total_timesteps, device="cpu",
                       seeds_per_trial=seeds_per_trial)


# ---------------------------------------------------------------- the driver
def run_on_ray(ray, trials: list[Trial], cpus_per_trial: float, gpus: float, max_retries: int) -> list[str]:
    """Run trials as Ray tasks; print one line per finished trial; return the failures' messages."""
    task = ray.remote(run_trial).options(num_cpus=cpus_per_trial, num_gpus=gpus, max_retries=max_retries,
                                         retry_exceptions=[TrialInterrupted])
    futures = {task.remote(t): t for t in trials}
    failures: list[str] = []
    while futures:
        [ready], _ = ray.wait(list(futures), num_returns=1)
        trial = futures.pop(ready)
        try:
            done = ray.get(ready)
            stopped = [m["seed"] for m in done.get("members", []) if m["outcome"] == "diverged"]
            diverged = (f"; {done['message']}" if done.get("outcome") == "diverged"
                        else f"; seed(s) {spell_seeds(tuple(stopped))} diverged" if stopped else "")
            print(f"[{len(trials) - len(futures)}/{len(trials)}] {trial.name}: "
                  f"{done['seconds']:.1f} s, {done['attempts']} attempt(s){diverged}", flush=True)
        except (ray.exceptions.RayError, TrialFailed, TrialInterrupted) as error:
            cause = getattr(error, "cause", None) or error  # a RayTaskError wraps the trial's exception
            failures.append(str(cause).strip().splitlines()[-1])
            print(f"[{len(trials) - len(futures)}/{len(trials)}] {trial.name}: FAILED, see "
                  f"{trial.directory / 'train.log'}", flush=True)
    return failures


def run(sweep_dir: Path, trials: list[Trial], cluster: ClusterOptions) -> list[str]:
    """Run the trials not finished yet on the cluster (started here, or joined); return the failures."""
    todo = pending(trials)
    configs, seeds = len({t.config_name for t in trials}), len({s for t in trials for s in t.seeds})
    largest = max((len(t.seeds) for t in trials), default=1)
    grouped = f" in populations of up to {largest}" if largest > 1 else ""
    print(f"sweep {sweep_dir}: {configs} configuration(s) × {seeds} seed(s){grouped} = "
          f"{len(trials)} trials; {len(trials) - len(todo)} finished, {len(todo)} to run", flush=True)
    if not todo:
        return []
    gpus_per_trial = ray_cluster.parse_gpus(cluster.gpus_per_trial)
    ray = ray_cluster.connect(cluster.address, cluster.num_cpus, cluster.dashboard)
    try:
        resources = ray.cluster_resources()
        gpus = ray_cluster.gpu_share(resources, cluster.cpus_per_trial, gpus_per_trial)
        todo = [dataclasses.replace(t, device="cuda" if gpus > 0 else "cpu") for t in todo]
        print(f"ray: {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU; per trial "
              f"{cluster.cpus_per_trial:g} CPU, {gpus:g} GPU, 1 torch thread", flush=True)
        return run_on_ray(ray, todo, cluster.cpus_per_trial, gpus, cluster.max_retries)
    finally:
        ray_cluster.disconnect(ray)


def benchmark(trials: list[Trial], num_cpus: int) -> dict:
    """Wall time of `trials` run sequentially here, then as Ray tasks on a local cluster of num_cpus.

    Ray's overhead per trial is the CPU time the cluster held beyond what the trials themselves
    took, per trial: (T_ray · num_cpus − Σ trial seconds) / n, with T_ray timed after ray.init
    (cluster start-up is reported apart) and trial seconds timed inside the workers."""
    load_before = os.getloadavg()[0]
    sequential_dir = Path(trials[0].sweep_dir) / "sequential"
    start = time.perf_counter()
    sequential = [run_trial(dataclasses.replace(t, sweep_dir=str(sequential_dir))) for t in trials]
    sequential_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ray = ray_cluster.connect(None, num_cpus)
    init_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ray_dir = Path(trials[0].sweep_dir) / "ray"
    try:
        failures = run_on_ray(ray, [dataclasses.replace(t, sweep_dir=str(ray_dir)) for t in trials], 1, 0, 0)
        ray_seconds = time.perf_counter() - start
    finally:
        ray_cluster.disconnect(ray)
    if failures:
        raise RuntimeError(f"benchmark trials failed: {failures}")
    on_ray = [read_json(ray_dir / t.name / "done.json")["seconds"] for t in trials]
    n = len(trials)
    return {"trials": n, "num_cpus": num_cpus, "total_timesteps": trials[0].total_timesteps,
            "sequential_seconds": round(sequential_seconds, 2), "ray_seconds": round(ray_seconds, 2),
            "ray_init_seconds": round(init_seconds, 2), "speedup": round(sequential_seconds / ray_seconds, 2),
            "speedup_including_init": round(sequential_seconds / (ray_seconds + init_seconds), 2),
            "trial_seconds_sequential_mean": round(float(np.mean([d["seconds"] for d in sequential])), 2),
            "trial_seconds_ray_mean": round(float(np.mean(on_ray)), 2),
            "ray_overhead_seconds_per_trial": round((ray_seconds * min(num_cpus, n) - sum(on_ray)) / n, 2),
            "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def make_sweep_dir(path: Path) -> Path:
    """The sweep directory, made now (before Ray) so that a path that cannot be one is one line."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--sweep-dir {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in DISK_ERRORS:
            raise
        raise ValueError(f"--sweep-dir {path}: {exc.strerror or exc}") from None
    return path
