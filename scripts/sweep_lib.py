"""Multi-seed runs and hyper-parameter sweeps of `scripts.train_dqn` on Ray, and their report.

A trial is one ordinary training run, `python -m scripts.train_dqn --env ENV --seed N <flags>
--logdir SWEEP_DIR/<trial>`, in a subprocess with one torch thread. Its directory holds

    trial.json     what the trial is (env, seed, configuration, flags)
    attempts.json  one entry per start: when, and the checkpoint it resumed from
    train.log      the training script's stdout and stderr, all attempts appended
    done.json      written last, atomically, when the run finished: the trial is then skipped
    <env>__<name>__<seed>__<time>/   the run's TensorBoard events and checkpoints/

Why Ray core tasks and not Ray Tune: a trial already is a complete program with its own
checkpoints and TensorBoard directory; Tune would add a second tree of trial directories,
its own checkpoint syncing and experiment state that ties a restart to Tune's bookkeeping.
A core task with `max_retries` gives exactly what is needed: Ray re-runs a task whose worker
died, and the re-run resumes from the trial's newest checkpoint; `done.json` makes a re-run of
the whole sweep skip finished trials.

Without an address the driver starts its own cluster (LocalCluster): every Ray process listens on
127.0.0.1 only, with a token of its own, and all of them end with the driver, also when the driver is
SIGKILLed (a keeper process, see the comment above LocalCluster). What a sweep is made of (seeds,
grid values, random draws) is checked and counted before any of it is built or Ray starts.

Test hook: with QAPPROX_SWEEP_KILL_TRIAL=<trial name> in the driver's environment, the first
attempt of that trial SIGKILLs its training process and then its own Ray worker as soon as the
run's first checkpoint file appears, the way a lost machine would.
"""

from __future__ import annotations

import atexit
import collections
import csv
import dataclasses
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np

from qapprox.approximators.limits import cpu_count

RAY_MISSING = "the sweep needs Ray: pip install 'qapprox[distributed]'"
KILL_TRIAL_VARIABLE = "QAPPROX_SWEEP_KILL_TRIAL"
RETURN_TAG = "eval/mean_return"  # greedy evaluation return, logged by the training script
TRAINING_RETURN_TAG = "charts/episodic_return"
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = "checkpoints/latest.ckpt"  # where dqn.agent keeps a run's newest checkpoint
NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)


# --------------------------------------------------------------------------------------------
# What to run: seeds, grid and random search over DQNConfig fields
# --------------------------------------------------------------------------------------------


# Configurations × seeds of one sweep: each trial is a directory, a Ray task and a line of the report.
MAX_TRIALS = 100_000


def shown(text: str, limit: int = 60) -> str:
    """repr of a user's value, cut to `limit` characters so that an error stays one readable line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def parse_seeds(text: str, limit: int = MAX_TRIALS) -> list[int]:
    """'0-9' → 0..9; '0,3,7-8' → [0, 3, 7, 8]; duplicates dropped, order kept.

    The ranges are counted before any list is built: listing more than `limit` seeds (duplicates
    included) is a one-line ValueError, not an allocation."""
    spans: list[tuple[int, int]] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            start = int(low)
            stop = int(high) if dash else start
        except ValueError:
            raise ValueError(f"seeds={shown(text)} is not a list of integers and ranges like 0-9,12") from None
        if stop < start:
            raise ValueError(f"seeds={shown(text)}: range {part.strip()} ends before it starts")
        spans.append((start, stop))
    if any(start < 0 for start, _ in spans):
        raise ValueError(f"seeds={shown(text)} has a negative seed")
    listed = sum(stop - start + 1 for start, stop in spans)
    if listed > limit:
        raise ValueError(f"seeds={shown(text)} lists {listed:,} seeds; a sweep has at most {limit:,} trials")
    return list(dict.fromkeys(itertools.chain.from_iterable(range(a, b + 1) for a, b in spans)))


def check_trial_count(configurations: int, seeds: int | None = None, limit: int = MAX_TRIALS) -> None:
    """Refuse (one line) a sweep of more than `limit` trials, before its trials are built."""
    trials = configurations * (1 if seeds is None else seeds)
    if trials > limit:
        count = f"{configurations:,} configurations" + ("" if seeds is None else f" × {seeds:,} seed(s) = {trials:,} trials")
        raise ValueError(f"the sweep has {count}; at most {limit:,} trials are allowed")


def config_fields() -> dict[str, type]:
    """DQNConfig's field names and their types: the keys a sweep may set."""
    from qapprox.dqn.config import DQNConfig

    hints = typing.get_type_hints(DQNConfig)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(DQNConfig)}


# DQNConfig fields that the sweep itself sets for every trial, and the sweep flag that does it.
SET_BY_SWEEP = {"env_id": "--env", "seed": "--seeds", "logdir": "--sweep-dir", "device": "--gpus-per-trial",
                "total_timesteps": "--total-timesteps"}


def canonical(key: str, text: str, fields: dict[str, type]) -> str:
    """A value as the trial name and the training flag spell it: true/false, 0.0003, 64.

    Tuple fields take their values space-separated in one item: --grid 'hidden=64 64,256 256'."""
    if key in SET_BY_SWEEP:
        raise ValueError(f"{key!r} is set by the sweep: use {SET_BY_SWEEP[key]}")
    if key not in fields:
        allowed = ", ".join(sorted(set(fields) - set(SET_BY_SWEEP)))
        raise ValueError(f"{key!r} is not a DQNConfig field; allowed: {allowed}")
    kind, text = fields[key], text.strip()
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower()
        if kind is int:
            return str(int(text))
        if kind is float:
            return f"{float(text):g}"
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a {kind.__name__}") from None
    if not text:
        raise ValueError(f"{key}= has an empty value")
    # Values are part of trial directory names (key=value,…__seedN): one plain path component each.
    return check_name(key, " ".join(text.split()))


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


SEARCH_KINDS = ("uniform", "loguniform", "int")


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


def configurations(
    grid: dict[str, list[str]], search: dict[str, tuple[str, float, float]], samples: int, seed: int
) -> list[dict[str, str]]:
    """Every grid point × `samples` random draws of the searched keys (seeded: a re-run draws the same).

    Draws that round to a configuration already drawn are dropped (one name, one directory). More than
    MAX_TRIALS configurations is a one-line ValueError, counted before any is built."""
    if samples < 0 or seed < 0:
        raise ValueError(f"random={samples} and search_seed={seed} must be ≥ 0")
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
    from qapprox.dqn.env_factory import make_env

    make_env(env).close()


def check_configs(env: str, configs: list[dict[str, str]], fixed: dict[str, str],
                  total_timesteps: int | None, seeds: typing.Sequence[int] = (0,)) -> None:
    """Build every configuration's DQNConfig as the training script will (env preset, then flags) and
    validate it, so that a bad value is one line now rather than a failed trial later. The seeds'
    range is DQNConfig's too: the smallest and the largest are validated."""
    from qapprox.dqn.config import PRESETS, DQNConfig, replace

    base = replace(DQNConfig(), PRESETS.get(env, {}), f"preset {env}")
    steps = {} if total_timesteps is None else {"total_timesteps": total_timesteps}
    for seed in dict.fromkeys((min(seeds), max(seeds))):
        replace(base, {"seed": seed}, "--seeds").validate()
    for config in configs:
        replace(base, {**fixed, **config, "env_id": env, **steps}, "the sweep").validate()


def config_name(config: dict[str, str]) -> str:
    """{'learning_rate': '0.001', 'double_q': 'true'} → 'learning_rate=0.001,double_q=true'."""
    return ",".join(f"{key}={value}" for key, value in config.items()) or "default"


# --------------------------------------------------------------------------------------------
# One trial: a training subprocess that resumes from its newest checkpoint
# --------------------------------------------------------------------------------------------


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


def make_trials(sweep_dir: str | Path, env: str, seeds: list[int], configs: list[dict[str, str]],
                fixed: dict[str, str], total_timesteps: int | None, device: str) -> list[Trial]:
    """Configurations × seeds, one Trial each; the test hook marks the trial it names.

    Every trial directory is one plain, new component inside sweep_dir (no separator, not '..', at most
    NAME_MAX bytes, no two trials alike): anything else is a one-line ValueError."""
    check_trial_count(len(configs), len(seeds))
    doomed = os.environ.get(KILL_TRIAL_VARIABLE, "")
    root = Path(sweep_dir).resolve()
    trials = [Trial(str(root), env, seed, config, fixed, total_timesteps, device)
              for config in configs for seed in seeds]
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


def check_name(field: str, name: str) -> str:
    """dqn.logging.check_name (one plain path component), imported when needed: importing dqn imports
    torch, which the local cluster's keeper and head processes (this module as a script) do without."""
    from qapprox.dqn.logging import check_name as check

    return check(field, name)


def flag(key: str) -> str:
    """A DQNConfig field as the training script's flag: learning_rate → --learning-rate."""
    return "--" + key.replace("_", "-")


def train_command(trial: Trial, resume: Path | None) -> list[str]:
    """The training script's command line for this trial (and its checkpoint, when resuming)."""
    command = [sys.executable, "-m", "qapprox.scripts.train_dqn", "--no-progress", "--env", trial.env, "--seed", str(trial.seed),
               "--logdir", str(trial.directory), "--device", trial.device]
    if trial.total_timesteps is not None:
        command += ["--total-timesteps", str(trial.total_timesteps)]
    for key, value in {**trial.fixed, **trial.config}.items():
        command += [flag(key), value]
    return command + (["--resume", str(resume)] if resume else [])


def run_dirs(trial_dir: Path) -> list[Path]:
    """The training script's run directories inside a trial directory."""
    return [p for p in trial_dir.glob("*__*__*__*") if p.is_dir() and p.name.rsplit("__", 1)[-1].isdigit()]


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest checkpoint of this trial's runs (a run's latest.ckpt, not its best.ckpt), or None."""
    return max(trial_dir.glob(f"*/{CHECKPOINT}"), key=lambda p: p.stat().st_mtime, default=None)


def read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, data) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def die_with_parent() -> None:
    """In the child: SIGKILL when the Ray worker that started it dies (Linux), so no orphan
    keeps writing into the trial directory while the retry runs."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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
    with open(directory / "train.log", "a") as log:
        log.write(f"\n=== attempt {len(attempts)}: {' '.join(train_command(trial, resume))}\n")
        log.flush()
        process = subprocess.Popen(train_command(trial, resume), cwd=REPO_ROOT, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        if trial.kill_after_checkpoint and len(attempts) == 1:
            while latest_checkpoint(directory) is None and process.poll() is None:
                time.sleep(0.05)
            process.kill()
            os.kill(os.getpid(), signal.SIGKILL)  # the Ray worker dies: Ray retries the task
        returncode = process.wait()
    if returncode < 0:
        raise TrialInterrupted(f"trial {trial.name} was killed by signal {-returncode}")
    if returncode != 0:
        last = (directory / "train.log").read_text().strip().splitlines()[-1:] or [""]
        raise TrialFailed(f"trial {trial.name} exited with status {returncode}: {last[0]}")
    done = {"name": trial.name, "finished": time.time(), "attempts": len(attempts),
            "seconds": time.time() - attempts[-1]["started"]}  # of the attempt that finished
    write_json(directory / "done.json", done)
    return done


# --------------------------------------------------------------------------------------------
# The driver: trials as Ray tasks on a local or remote cluster
# --------------------------------------------------------------------------------------------


def check_ray_installed() -> None:
    """A one-line error saying how to install Ray if it is missing — without importing it, so that
    nothing of Ray starts before the sweep's input is checked."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ValueError(RAY_MISSING)


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(RAY_MISSING) from None
    return ray


def connect(address: str | None, num_cpus: int | None, dashboard: bool = False):
    """Join the cluster at `address` ('auto' or HOST:PORT), or start a local one (see LocalCluster):
    loopback only, no dashboard unless `dashboard`, and gone with this process. disconnect() ends it."""
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address:
        ray = import_ray()
        ray.init(address=address, include_dashboard=False, **quiet)
        return ray
    imported = "ray" in sys.modules
    os.environ.update(local_ray_environment())  # before `import ray`: Ray reads it when imported
    ray = import_ray()
    if imported:  # the same settings, applied late where Ray has read them already
        from ray._private import ray_constants
        from ray._raylet import AuthenticationTokenLoader, Config

        ray_constants.ENABLE_RAY_CLUSTER = False
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    if dashboard and ray._private.utils.get_dashboard_dependency_error() is not None:
        raise ValueError("--dashboard needs Ray's dashboard packages: pip install 'ray[default]'")
    cluster = LocalCluster(num_cpus or cpu_count(), dashboard, os.environ.copy())
    try:
        ray.init(address=cluster.address, _node_ip_address=LOOPBACK, **quiet)
    except BaseException:
        cluster.stop()
        raise
    _LOCAL_CLUSTERS.append(cluster)
    if cluster.dashboard_url:
        print(f"ray dashboard: http://{cluster.dashboard_url}", flush=True)
    return ray


def disconnect(ray) -> None:
    """Leave the cluster; a local one started by connect() is stopped, and waited for."""
    ray.shutdown()
    while _LOCAL_CLUSTERS:
        _LOCAL_CLUSTERS.pop().stop()


# --------------------------------------------------------------------------------------------
# The local cluster: on 127.0.0.1 only, and ended with the driver, even by SIGKILL
# --------------------------------------------------------------------------------------------
#
# Process tree (the driver is `python -m scripts.sweep`):
#
#   driver ── keeper (own session, child subreaper) ── head (ray.init: gcs, raylet, …) ── agents, workers, trials
#
# Ray fate-shares gcs_server, raylet, the log monitor, dashboard and autoscaler monitor with the
# process that ran ray.init (prctl PR_SET_PDEATHSIG), but not the raylet's dashboard and runtime-env
# agents: after a SIGKILL they notice their raylet is gone and then block ~60 s publishing that to the
# dead GCS, still listening. Ray's workers put themselves in their own process groups, so killing a
# process group would miss them too. Hence the keeper: a stdlib-only process whose stdin is a pipe
# the driver alone holds open. When the driver exits, however it exits, the pipe reads EOF; the head
# (reading the same pipe) shuts Ray down, and the keeper then SIGKILLs whatever is left below it.
# As the child subreaper (PR_SET_CHILD_SUBREAPER), the keeper inherits every orphan below it — a Ray
# process whose parent died is re-parented to the keeper, not to init — so "no child left" is "no Ray
# process of this cluster left", and it reaps them until there is none.
#
# Loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's own switch for a single-machine cluster
# (its default on macOS and Windows): Ray then takes 127.0.0.1 as the node's address — ray.init would
# otherwise turn _node_ip_address="127.0.0.1" into the address of the default route — and its gRPC
# servers (GCS, raylet, object manager, every core worker) listen on 127.0.0.1 when the node address is
# 127.0.0.1; the runtime-env agent listens on the node address. Set before `import ray` in every process
# of the cluster (they inherit it). Usage statistics, which Ray would send to its servers, are off.
#
# Loopback is open to every user of the machine, so the cluster also takes Ray's token authentication,
# with a new token per cluster handed down in the environment (readable by this user only). Ray ≥ 2.5x
# would otherwise enable it with a token it keeps in ~/.ray/auth_token, a file other users may read,
# and the driver, joining by address, would not find it.

LOOPBACK = "127.0.0.1"
LOCAL_RAY_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                         "RAY_AUTH_MODE": "token"}
LOCAL_START_SECONDS = 180.0  # for the head to answer with its address (ray.init on a loaded 2-core machine)
HEAD_STOP_SECONDS = 10.0  # for the head's ray.shutdown() after the driver is gone, before SIGKILL
_LOCAL_CLUSTERS: list[LocalCluster] = []
PR_SET_CHILD_SUBREAPER = 36


def local_ray_environment() -> dict[str, str]:
    """LOCAL_RAY_ENVIRONMENT and a new authentication token (RAY_AUTH_TOKEN) for one local cluster."""
    import secrets

    return LOCAL_RAY_ENVIRONMENT | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}


class LocalCluster:
    """A one-machine Ray cluster for this process: started by a keeper process, stopped when this
    process closes its end of the keeper's stdin (stop(), or exiting in any way, SIGKILL included).

    `environment` is the cluster's (default: ours with local_ray_environment()); a driver joins it at
    `address` with the same RAY_AUTH_TOKEN and LOCAL_RAY_ENVIRONMENT in its own environment."""

    def __init__(self, num_cpus: int, dashboard: bool = False, environment: dict[str, str] | None = None,
                 timeout: float = LOCAL_START_SECONDS) -> None:
        import selectors

        self.environment = environment or os.environ | local_ray_environment()

        reader, self._lifeline = os.pipe()  # non-inheritable: no other child of ours holds it open
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qapprox.scripts.sweep_lib", "keeper", str(int(num_cpus)), str(int(dashboard))],
                stdin=reader, stdout=subprocess.PIPE, env=self.environment,
                start_new_session=True)  # the terminal's Ctrl-C reaches the driver, which then stops us
        finally:
            os.close(reader)
        atexit.register(self.stop)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            answered = bool(selector.select(timeout))
        try:
            head = json.loads(self.process.stdout.readline() if answered else b"null")
            self.address, self.dashboard_url = str(head["address"]), head.get("dashboard_url")
        except (ValueError, KeyError, TypeError):
            self.stop()
            why = "failed (Ray's message is above)" if answered else f"did not start within {timeout:g} s"
            raise RuntimeError(f"the local Ray cluster {why}") from None

    def stop(self, timeout: float = 3 * HEAD_STOP_SECONDS) -> None:
        """Close the keeper's stdin and wait for it to have ended every process of the cluster."""
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - the keeper is stuck: its orphans stay
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def _head(num_cpus: int, dashboard: bool) -> None:
    """The head process: ray.init a new local cluster, write its address on stdout, then wait for EOF
    on stdin (the driver is gone) and shut it down. Ray's processes inherit neither pipe."""
    lifeline, answer = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # what Ray prints goes where the driver's errors go
    import ray  # LOCAL_RAY_ENVIRONMENT and the token are in our environment already

    context = ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK,
                       include_dashboard=dashboard, dashboard_host=LOOPBACK, logging_level="ERROR",
                       log_to_driver=False)
    answer.write(json.dumps({"address": ray.get_runtime_context().gcs_address,
                             "dashboard_url": context.dashboard_url or None}) + "\n")
    answer.close()
    lifeline.read()
    ray.shutdown()


def _descendants(root: int) -> list[int]:
    """Live (not zombie) processes below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    state, ppid = stat.read().rsplit(b")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != b"Z":
                children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _keeper(num_cpus: int, dashboard: bool) -> None:
    """The keeper process (see the comment above LocalCluster): start the head, wait for EOF on stdin,
    give the head HEAD_STOP_SECONDS to shut Ray down, then SIGKILL and reap everything below us."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:  # pragma: no cover - Linux < 3.4
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a SIGTERM still cleans up (finally below)
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(1))
    head = subprocess.Popen([sys.executable, "-m", "qapprox.scripts.sweep_lib", "head", str(num_cpus), str(int(dashboard))],
                            preexec_fn=die_with_parent)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the head holds the answer pipe alone: EOF if it dies
    try:
        sys.stdin.buffer.read()
        head.wait(HEAD_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    finally:
        deadline = time.monotonic() + HEAD_STOP_SECONDS
        while True:
            _reap()
            left = _descendants(os.getpid())
            if not left or time.monotonic() > deadline:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)


def parse_gpus(text: str) -> float | None:
    """--gpus-per-trial: a fraction ≥ 0, or None for 'auto'."""
    if text == "auto":
        return None
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not (math.isfinite(share) and share >= 0):
        raise ValueError(f"gpus_per_trial={text!r} must be a number ≥ 0 or auto")
    return share


def gpu_share(cluster: dict[str, float], cpus_per_trial: float, gpus_per_trial: float | None) -> float:
    """GPUs per trial; auto (None): the trial's share of the cluster's CPUs, of its GPUs (0 without GPUs).
    A trial that no cluster node could ever hold is a one-line error, not a hang."""
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if cpus_per_trial > cpus:
        raise ValueError(f"cpus_per_trial={cpus_per_trial:g} is more than the Ray cluster's {cpus:g} CPUs")
    share = gpus * cpus_per_trial / cpus if gpus_per_trial is None else gpus_per_trial
    if share > gpus:
        raise ValueError(f"gpus_per_trial={share:g} is more than the Ray cluster's {gpus:g} GPUs")
    return share


def pending(trials: list[Trial]) -> list[Trial]:
    """Trials without done.json: the ones a (re-)run must start or resume."""
    return [t for t in trials if not (t.directory / "done.json").exists()]


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
            print(f"[{len(trials) - len(futures)}/{len(trials)}] {trial.name}: "
                  f"{done['seconds']:.1f} s, {done['attempts']} attempt(s)", flush=True)
        except (ray.exceptions.RayError, TrialFailed, TrialInterrupted) as error:
            cause = getattr(error, "cause", None) or error  # a RayTaskError wraps the trial's exception
            failures.append(str(cause).strip().splitlines()[-1])
            print(f"[{len(trials) - len(futures)}/{len(trials)}] {trial.name}: FAILED, see "
                  f"{trial.directory / 'train.log'}", flush=True)
    return failures


# --------------------------------------------------------------------------------------------
# Aggregation: per-run numbers from event files, then mean, bootstrap interval and IQM over seeds
# --------------------------------------------------------------------------------------------


def bootstrap_band(matrix: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap 95 % interval of the mean over rows (seeds), for every column.

    A resample draws n rows with replacement; its mean is c @ matrix / n with c ~ Multinomial(n, 1/n)."""
    n = matrix.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    low, high = np.percentile(counts @ matrix / n, [2.5, 97.5], axis=0)
    return low, high


def bootstrap_interval(values: np.ndarray) -> tuple[float, float]:
    """Bootstrap 95 % interval of the mean of values (seeded, 10,000 resamples)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    low, high = bootstrap_band(values[:, None])
    return float(low[0]), float(high[0])


def interquartile_mean(values: np.ndarray) -> float:
    """IQM: the mean of the middle half, dropping floor(n/4) values at each end (as rliable)."""
    values = np.sort(np.asarray(values, dtype=float))
    cut = values.size // 4
    return float(values[cut:values.size - cut].mean()) if values.size else math.nan


@dataclasses.dataclass
class Run:
    """A trial's run as TensorBoard shows it, with the time its attempts spent training.

    scalars: tag → (steps, values, wall times), read from the run directory by TensorBoard's
    EventAccumulator, which also drops what a killed attempt logged after the step its successor
    resumed from (the resumed writer's purge_step). attempts: (start, end) wall times per event file."""

    scalars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    attempts: list[tuple[float, float]]

    def training_seconds(self, wall: np.ndarray) -> np.ndarray:
        """Seconds since the run started at each wall time, not counting the pauses between attempts."""
        seconds = wall - self.attempts[0][0]
        for (_, end), (start, _) in zip(self.attempts, self.attempts[1:]):
            seconds -= np.where(wall >= start, start - end, 0.0)
        return seconds

    def curve(self, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """steps, values and training seconds of one tag (empty arrays if it was never logged)."""
        empty = np.array([])
        steps, values, wall = self.scalars.get(tag, (empty, empty, empty))
        return steps, values, self.training_seconds(wall)


def accumulate(path: Path):
    """TensorBoard's EventAccumulator over an event file or a run directory, keeping every point."""
    import logging

    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a resumed run's purge is expected, not news

    accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: no reservoir sampling
    return accumulator.Reload()


def read_run(run_dir: Path) -> Run:
    """The scalars of a run directory, and the start and last wall time of each of its event files."""
    accumulator = accumulate(run_dir)
    scalars = {}
    for tag in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]),
                        np.array([e.wall_time for e in events]))
    attempts = []
    for event_file in sorted(run_dir.glob("events.out.tfevents.*")):
        single = accumulate(event_file)
        walls = [e.wall_time for tag in single.Tags()["scalars"] for e in single.Scalars(tag)]
        start = single.FirstEventTimestamp()
        attempts.append((start, max(walls, default=start)))
    return Run(scalars, sorted(attempts))


def trial_run(trial_dir: Path) -> Run | None:
    """The trial's run: its newest run directory (<env>__<name>__<seed>__<unix time>).

    A resumed attempt writes into the run directory of its checkpoint; a new one is only made when
    an attempt died before its first checkpoint, and then the newest directory is the whole run."""
    newest = max(run_dirs(trial_dir), key=lambda p: (int(p.name.rsplit("__", 1)[-1]), p.stat().st_mtime),
                 default=None)
    return read_run(newest) if newest is not None else None


def run_summary(run: Run | None, threshold: float | None) -> dict[str, float]:
    """Final greedy return, and the first step (and training seconds) where it reached the threshold."""
    steps, values, seconds = run.curve(RETURN_TAG) if run else (np.array([]),) * 3
    solved = np.flatnonzero(values >= threshold) if threshold is not None else np.array([], dtype=int)
    return {"final_return": float(values[-1]) if values.size else math.nan,
            "steps_to_solve": float(steps[solved[0]]) if solved.size else math.nan,
            "seconds_to_solve": float(seconds[solved[0]]) if solved.size else math.nan}


METRICS = ("final_return", "steps_to_solve", "seconds_to_solve")


def statistics(values: list[float]) -> dict[str, float]:
    """mean, bootstrap 95 % interval and IQM over seeds, of the values that exist (solved runs)."""
    finite = np.array([v for v in values if not math.isnan(v)])
    low, high = bootstrap_interval(finite)
    return {"n": int(finite.size), "mean": float(finite.mean()) if finite.size else math.nan,
            "low": low, "high": high, "iqm": interquartile_mean(finite)}


def default_threshold(env: str) -> float | None:
    """The environment's registered reward_threshold (475 for CartPole-v1), if it has one."""
    import gymnasium

    try:
        return gymnasium.spec(env).reward_threshold
    except gymnasium.error.Error:
        return None


def collect(sweep_dir: Path) -> list[dict]:
    """Every trial of a sweep: config name, seed, finished flag, attempts and run (None before its first event)."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep directory {sweep_dir}")
    runs = []
    for trial_file in sorted(sweep_dir.glob("*/trial.json")):
        trial = json.loads(trial_file.read_text())
        runs.append({"name": trial["name"], "config": config_name(trial["config"]), "env": trial["env"],
                     "seed": trial["seed"], "finished": (trial_file.parent / "done.json").exists(),
                     "attempts": len(read_json(trial_file.parent / "attempts.json", [])),
                     "run": trial_run(trial_file.parent)})
    if not runs:
        raise FileNotFoundError(f"no trials (*/trial.json) in {sweep_dir}")
    return runs


def aggregate(runs: list[dict], threshold: float | None) -> tuple[list[dict], list[dict]]:
    """Per-run rows and per-configuration rows (finished runs only) of the report."""
    run_rows = [{"trial": r["name"], "config": r["config"], "seed": r["seed"], "finished": r["finished"],
                 "attempts": r["attempts"], **run_summary(r["run"], threshold)} for r in runs]
    config_rows = []
    for config in dict.fromkeys(r["config"] for r in run_rows):
        rows = [r for r in run_rows if r["config"] == config and r["finished"]]
        row = {"config": config, "seeds": len(rows), "solved": sum(not math.isnan(r["steps_to_solve"]) for r in rows)}
        for metric in METRICS:
            row |= {f"{metric}_{k}": v for k, v in statistics([r[metric] for r in rows]).items() if k != "n"}
        config_rows.append(row)
    return run_rows, config_rows


def curve(runs: list[dict], tag: str, points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its bootstrap 95 % band, on the steps logged inside every seed's range
    (at most `points` of them), each seed linearly interpolated there."""
    series = [r["run"].curve(tag)[:2] for r in runs if r["run"] is not None]
    series = [(s, v) for s, v in series if s.size]
    if not series:
        return (np.array([]),) * 4
    first, last = max(s[0] for s, _ in series), min(s[-1] for s, _ in series)
    steps = np.unique(np.concatenate([s for s, _ in series]))
    steps = steps[(steps >= first) & (steps <= last)]
    if steps.size > points:  # per-episode tags: a regular grid keeps the bootstrap small
        steps = np.unique(np.linspace(first, last, points).round().astype(int))
    matrix = np.stack([np.interp(steps, s, v) for s, v in series])  # seeds × steps
    low, high = bootstrap_band(matrix)
    return steps, matrix.mean(0), low, high


def plot_curves(runs: list[dict], path: Path) -> None:
    """Greedy evaluation and training returns per configuration: mean with a bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = [r for r in runs if r["finished"]]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, tag in zip(axes, (RETURN_TAG, TRAINING_RETURN_TAG)):
        for config in dict.fromkeys(r["config"] for r in finished):
            group = [r for r in finished if r["config"] == config]
            steps, mean, low, high = curve(group, tag)
            if steps.size:
                (line,) = axis.plot(steps, mean, marker="o" if steps.size == 1 else None,
                                    label=f"{config} (n={len(group)})")
                axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        axis.set(title=f"{tag}: mean over seeds, bootstrap 95 % band", xlabel="environment step", ylabel="return")
        axis.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_cell(row: dict, metric: str) -> str:
    mean, low, high, iqm = (row[f"{metric}_{k}"] for k in ("mean", "low", "high", "iqm"))
    if math.isnan(mean):
        return "—"
    digits = 1 if metric != "steps_to_solve" else 0
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] ({iqm:.{digits}f})"


def markdown(config_rows: list[dict], threshold: float | None) -> str:
    """The per-configuration table: mean [bootstrap 95 % interval] (IQM) of each metric."""
    solve = f"≥ {threshold:g}" if threshold is not None else "≥ a threshold (none known: --solve-threshold)"
    lines = [f"Mean [bootstrap 95 % interval] (interquartile mean) over seeds. Solved: greedy "
             f"evaluation return {solve}; steps and seconds to solve are over the solved seeds.", "",
             "| configuration | seeds | solved | final greedy return | steps to solve | seconds to solve |",
             "|---|---:|---:|---|---|---|"]
    lines += [f"| {r['config']} | {r['seeds']} | {r['solved']} | " + " | ".join(format_cell(r, m) for m in METRICS)
              + " |" for r in config_rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def report(sweep_dir: str | Path, threshold: float | None = None) -> dict[str, Path]:
    """Write report.md, report.csv (per configuration), runs.csv (per run) and curves.png."""
    sweep_dir = Path(sweep_dir)
    runs = collect(sweep_dir)
    threshold = default_threshold(runs[0]["env"]) if threshold is None else threshold
    run_rows, config_rows = aggregate(runs, threshold)
    paths = {name: sweep_dir / name for name in ("report.md", "report.csv", "runs.csv", "curves.png")}
    paths["report.md"].write_text(markdown(config_rows, threshold))
    write_csv(paths["report.csv"], config_rows)
    write_csv(paths["runs.csv"], run_rows)
    plot_curves(runs, paths["curves.png"])
    return paths


# --------------------------------------------------------------------------------------------
# Benchmark: the same short seeds one after another, then on the local Ray cluster
# --------------------------------------------------------------------------------------------


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
    ray = connect(None, num_cpus)
    init_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ray_dir = Path(trials[0].sweep_dir) / "ray"
    try:
        failures = run_on_ray(ray, [dataclasses.replace(t, sweep_dir=str(ray_dir)) for t in trials], 1, 0, 0)
        ray_seconds = time.perf_counter() - start
    finally:
        disconnect(ray)
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


if __name__ == "__main__":  # the local cluster's keeper and head processes (LocalCluster)
    role, cpus, with_dashboard = sys.argv[1:]
    {"keeper": _keeper, "head": _head}[role](int(cpus), with_dashboard == "1")
