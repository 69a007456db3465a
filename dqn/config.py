"""One dataclass of DQN hyper-parameters, presets per environment, and TOML config files.

    config = DQNConfig()                                  # defaults: solve CartPole-v1
    config = preset("Acrobot-v1", seed=3)                 # a preset, then overrides
    config = from_toml("my.toml", base=config)            # a file's keys over a base config
    config, given = resolve({"seed": 3}, config_file="my.toml")   # preset < file < flags, as train_dqn

The defaults are the "CartPole-v1" preset. Every field is also a flag of `qapprox train`.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from qapprox.approximators.kinds import Q_NETWORK_KINDS
from qapprox.dqn.logging import check_run_name
from qapprox.envs.validation import MAX_INT, SEED_MAX, check_choice, check_float, check_int, is_int

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LOSSES = ("huber", "mse")
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
VECTORIZATION = ("sync", "async")
MAX_LAYERS, MAX_WIDTH = 64, 2**20  # hidden: layers and units per layer
# Integer fields with a tighter range than [0 or 1, MAX_INT]: what one process can sensibly hold or run.
INT_RANGES = {
    "seed": (0, SEED_MAX),  # numpy's legacy seeding takes 32 bits
    "n_envs": (1, 4096),  # environment copies in one vector env
    "n_step": (1, 1000),  # the replay's n-step tables are n × n
    "eval_episodes": (1, 10_000),  # one env per evaluation episode
}


@dataclass
class DQNConfig:
    """Hyper-parameters of DQN (Mnih et al., 2015) and its usual improvements.

    Steps are environment steps summed over the n_envs environments (global_step).
    The step size α of the lecture is `learning_rate`.
    """

    # ------------------------------------------------------------ environment
    env_id: str = "CartPole-v1"
    total_timesteps: int = 50_000
    seed: int = 0
    n_envs: int = 1
    vectorization: str = "sync"  # gymnasium SyncVectorEnv (cheapest per step for light envs) | async
    # ------------------------------------------------------------ Q-network q̂(s, ·, w)
    q_network: str = "mlp"  # mlp | cnn (Nature DQN, images) | linear (w_aᵀ x(s); a Q-table on one-hot x)
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    dueling: bool = False
    # ------------------------------------------------------------ learning
    learning_rate: float = 3e-3  # α
    optimizer: str = "adam"  # adam (fused where supported) | sgd (plain: w ← w − α ∇L)
    loss: str = "huber"  # huber (δ clipped to [−1, 1] in the gradient) | mse (½ δ², gradient −δ ∇q̂)
    max_grad_norm: float = 10.0  # clip ‖∇L‖₂ to this; 0 turns clipping off
    gamma: float = 0.99  # γ
    batch_size: int = 64
    train_freq: int = 2  # environment steps between training rounds
    gradient_steps: int = 1  # gradient steps per training round
    learning_starts: int = 1_000  # environment steps of pure collection before the first update
    double_q: bool = True  # y uses argmax of the online network, evaluated by the target network
    # ------------------------------------------------------------ target network w⁻
    target_update_interval: int = 100  # environment steps between target updates
    tau: float = 1.0  # w⁻ ← τ w + (1 − τ) w⁻ at each target update; 1 = hard copy
    # ------------------------------------------------------------ replay
    buffer_size: int = 100_000
    n_step: int = 3  # n-step returns r^(n) = Σ_{k<n} γ^k R_{t+k+1}
    prioritized: bool = False  # proportional prioritized replay (Schaul et al., 2016)
    priority_alpha: float = 0.6  # P(i) ∝ p_i^α
    priority_beta0: float = 0.4  # importance-weight exponent β, annealed linearly to 1
    priority_eps: float = 1e-6  # p_i = |δ_i| + ε
    # ------------------------------------------------------------ exploration: ε-greedy, linear schedule
    exploration_initial: float = 1.0
    exploration_final: float = 0.01
    exploration_fraction: float = 0.1  # of total_timesteps over which ε decays (5,000 steps by default)
    # ------------------------------------------------------------ evaluation, logging, checkpoints
    eval_interval: int = 2_500  # environment steps between greedy evaluations; 0 = none
    eval_episodes: int = 20
    log_interval: int = 1_000  # environment steps between loss / SPS logs (syncs only here)
    logdir: str = "runs"
    run_name: str = "dqn"
    checkpoint_interval: int = 10_000  # environment steps between checkpoints; 0 = final only
    save_replay: bool = False  # include the replay buffer in checkpoints (exact resume)
    # ------------------------------------------------------------ execution
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    threads: int = 1  # torch intra-op threads; one is fastest for small networks
    compile: bool = False  # torch.compile the update (pays off on a GPU)

    def validate(self) -> DQNConfig:
        """Raise a one-line ValueError for the first bad value; return self."""
        check_choice("q_network", self.q_network, Q_NETWORK_KINDS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("device", self.device, DEVICES)
        check_choice("vectorization", self.vectorization, VECTORIZATION)
        check_run_name("run_name", self.run_name)  # one plain name without '__': make_run_dir's part
        if not isinstance(self.logdir, str):
            raise ValueError(f"logdir={self.logdir!r} must be a string ('' writes nothing)")
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id={self.env_id!r} must be a non-empty gymnasium id")
        for name in ("total_timesteps", "learning_starts", "eval_interval", "checkpoint_interval"):
            check_int(name, getattr(self, name), 0)
        for name in ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval",
                     "log_interval", "threads"):
            check_int(name, getattr(self, name), 1)
        for name, (low, high) in INT_RANGES.items():
            check_int(name, getattr(self, name), low, high)
        if not self.hidden or len(self.hidden) > MAX_LAYERS or \
                any(not is_int(h) or not 1 <= h <= MAX_WIDTH for h in self.hidden):
            shown = repr(self.hidden) if len(repr(self.hidden)) < 80 else f"({len(self.hidden)} layers)"
            raise ValueError(f"hidden={shown} must be 1 to {MAX_LAYERS} layer widths in [1, {MAX_WIDTH:,}], e.g. (256, 256)")
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("exploration_initial", "exploration_final", "exploration_fraction", "priority_beta0"):
            check_float(name, getattr(self, name), 0.0, 1.0)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_float("priority_eps", self.priority_eps, 0.0, low_open=True)
        check_float("priority_alpha", self.priority_alpha, 0.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0)  # 0 turns clipping off
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size={self.batch_size} is larger than buffer_size={self.buffer_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-able values (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> DQNConfig:
        """A config from a mapping; an unknown key is a one-line ValueError naming it and the allowed keys."""
        return replace(cls(), values, source)


# ---------------------------------------------------------------- presets
# Each preset is a set of overrides over DQNConfig(); the defaults themselves are "CartPole-v1".
PRESETS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {},
    "Acrobot-v1": {
        "env_id": "Acrobot-v1", "hidden": (256, 256), "total_timesteps": 100_000, "learning_rate": 6.3e-4, "batch_size": 128,
        "buffer_size": 50_000, "learning_starts": 0, "train_freq": 4, "gradient_steps": 4,
        "target_update_interval": 250, "exploration_fraction": 0.12, "exploration_final": 0.1,
        "eval_interval": 10_000, "eval_episodes": 10,
    },
    "MountainCar-v0": {
        "env_id": "MountainCar-v0", "hidden": (256, 256), "total_timesteps": 120_000, "learning_rate": 4e-3, "batch_size": 128,
        "buffer_size": 10_000, "learning_starts": 1_000, "gamma": 0.98, "train_freq": 16, "gradient_steps": 8,
        "target_update_interval": 600, "exploration_fraction": 0.2, "exploration_final": 0.07,
        "eval_interval": 10_000, "eval_episodes": 10,
    },
    # Needs gymnasium[box2d]; the preset ships regardless.
    "LunarLander-v3": {
        "env_id": "LunarLander-v3", "hidden": (256, 256), "total_timesteps": 500_000, "learning_rate": 6.3e-4, "batch_size": 128,
        "buffer_size": 50_000, "learning_starts": 0, "train_freq": 4, "gradient_steps": 4,
        "target_update_interval": 250, "exploration_fraction": 0.12, "exploration_final": 0.1,
        "eval_interval": 25_000, "eval_episodes": 10,
    },
    # Needs the `atari` extra (ale-py). Nature-DQN settings; learning it takes ~10M steps on a GPU.
    "ALE/Pong-v5": {
        "env_id": "ALE/Pong-v5", "q_network": "cnn", "total_timesteps": 10_000_000, "learning_rate": 1e-4,
        "batch_size": 32, "buffer_size": 100_000, "learning_starts": 80_000, "train_freq": 4, "gradient_steps": 1,
        "target_update_interval": 1_000, "n_step": 1, "exploration_fraction": 0.1, "exploration_final": 0.01,
        "eval_interval": 250_000, "eval_episodes": 5, "checkpoint_interval": 250_000, "n_envs": 1,
    },
    # rl-baselines3-zoo's CartPole-v1 hyper-parameters (issue 5's side-by-side benchmark).
    "sb3-zoo-cartpole": {
        "env_id": "CartPole-v1", "total_timesteps": 50_000, "learning_rate": 2.3e-3, "batch_size": 64,
        "buffer_size": 100_000, "learning_starts": 1_000, "gamma": 0.99, "target_update_interval": 10,
        "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16, "exploration_final": 0.04,
        "hidden": (256, 256), "double_q": False, "n_step": 1, "max_grad_norm": 10.0, "loss": "huber",
    },
    # CleanRL dqn.py defaults (network 120-84, no gradient clipping). CleanRL's MSE is mean δ², ours ½ δ²;
    # Adam is invariant to a constant scale of the loss, so the same learning rate gives the same steps.
    "cleanrl-cartpole": {
        "env_id": "CartPole-v1", "total_timesteps": 500_000, "learning_rate": 2.5e-4, "batch_size": 128,
        "buffer_size": 10_000, "learning_starts": 10_000, "gamma": 0.99, "target_update_interval": 500,
        "tau": 1.0, "train_freq": 10, "gradient_steps": 1, "exploration_initial": 1.0, "exploration_final": 0.05,
        "exploration_fraction": 0.5, "hidden": (120, 84), "double_q": False, "n_step": 1, "loss": "mse",
        "max_grad_norm": 0.0, "eval_interval": 50_000,
    },
}
PRESETS["PongNoFrameskip-v4"] = {**PRESETS["ALE/Pong-v5"], "env_id": "PongNoFrameskip-v4"}


def preset(name: str, **overrides: Any) -> DQNConfig:
    """The named preset (a key of PRESETS), with keyword overrides; validated."""
    return resolve(overrides, name, source="overrides")[0]


def replace(config: DQNConfig, values: dict[str, Any], source: str = "config") -> DQNConfig:
    """A copy of `config` with `values` set; unknown keys and wrong types are one-line ValueErrors."""
    allowed = {f.name: f for f in fields(DQNConfig)}
    changes = {}
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in {source}; allowed keys: {', '.join(allowed)}")
        changes[key] = coerce(key, value, allowed[key].type)
    return dataclasses.replace(config, **changes)


def from_toml(path: str | Path, base: DQNConfig | None = None) -> DQNConfig:
    """A TOML file's top-level keys over `base` (default DQNConfig()); missing file → FileNotFoundError."""
    return replace(base or DQNConfig(), _read_toml(path), f"config file {path}")


def _read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a directory, not a TOML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} is not valid TOML: {str(exc).splitlines()[0]}") from None


def resolve(flags: dict[str, Any], preset_name: str | None = None, config_file: str | Path | None = None,
            source: str = "flags") -> tuple[DQNConfig, dict[str, Any]]:
    """The validated config of a run and the fields given for it. Precedence, lowest first:

        DQNConfig() defaults < preset < TOML config file < flags

    The preset is `preset_name`, else the env id's own preset if one ships (the env id of the flags, else
    the file's, else the default's). The fields given are the flags and the file's values that differ
    from the defaults: what a resumed run sets over its checkpoint's config. The training script and the
    sweep (which checks every trial's config before Ray starts) both build configs here."""
    defaults, default_values = DQNConfig(), DQNConfig().to_dict()
    file_values = {} if config_file is None else _read_toml(config_file)
    file_source = f"config file {config_file}"
    from_file = replace(defaults, file_values, file_source).to_dict()
    changed = {name: value for name, value in from_file.items() if value != default_values[name]}
    env_id = flags.get("env_id", changed.get("env_id", defaults.env_id))
    name = preset_name if preset_name is not None else env_id if env_id in PRESETS else None
    if name is not None:
        check_choice("preset", name, PRESETS, label="preset")
    config = defaults if name is None else replace(defaults, PRESETS[name], f"preset {name}")
    config = replace(replace(config, file_values, file_source), flags, source).validate()
    return config, {**changed, **flags}


def flag(name: str) -> str:
    """A DQNConfig field as its command-line flag: learning_rate → --learning-rate (qapprox train's
    parser defines them so, and a sweep's trials pass them so)."""
    return "--" + name.replace("_", "-")


def coerce(name: str, value: Any, annotation: str | type) -> Any:
    """`value` as the field's type, or a one-line ValueError. `annotation` is the field's annotation as the
    dataclass holds it ('tuple[int, ...]') or the type itself (tuple[int, ...], int).

    Text is read as a flag spells it: true / false, 20_000 or 2e4 (an integer), 3e-4, 64,64 or '64 64'.
    The one parser of values: flags, TOML files, saved configs and the sweep's grid values all come here."""
    kind = (annotation if isinstance(annotation, str) else
            str(annotation) if typing.get_args(annotation) else annotation.__name__).replace(" ", "")
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, str):
            value = _parse_number(name, value, int)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
            return int(value)
    elif kind == "float":
        if isinstance(value, str):
            value = _parse_number(name, value, float)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "tuple[int,...]":
        if isinstance(value, str):
            value = [_parse_number(name, part, int) for part in value.replace(",", " ").split()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    raise ValueError(f"{name}={value!r} is not a valid {_TYPE_NAMES.get(kind, kind)}")


_TYPE_NAMES = {"bool": "boolean (true/false)", "int": "integer", "float": "number", "str": "string",
               "tuple[int,...]": "list of integers (e.g. 256,256)"}


def _parse_number(name: str, text: str, kind: type) -> Any:
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {_TYPE_NAMES['int' if kind is int else 'float']}") from None
    if kind is int:
        if not number.is_integer() or abs(number) > MAX_INT:
            raise ValueError(f"{name}={text!r} is not a valid integer (at most 2**53 in size)")
        return int(number)
    return number
