"""The schema of an agent's checkpoint: everything the file holds is checked against these rules before any
of it is used; each failure is a CheckpointError naming the path and the field. Execution settings in the
file are never obeyed (EXECUTION_FIELDS). dqn.checkpoint reads the bytes; this module says what they may mean.

    meta = parse_meta(path, state["meta"])                       # config, counters, shapes, RNG states
    check_tensors(path, "q", state["q"], expected_state_dict)   # keys, shapes, dtypes, finite values
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qapprox.dqn.checkpoint import CheckpointError
from qapprox.dqn.config import DQNConfig
from qapprox.envs.validation import MAX_INT, PCG64_MAX, check_int, check_pcg64_increment

EXECUTION_FIELDS = ("threads", "device", "compile", "vectorization")  # the caller's, or DQNConfig's defaults


@dataclass(frozen=True)
class CheckpointMeta:
    """The checked meta of an agent's checkpoint."""

    config: DQNConfig  # with EXECUTION_FIELDS at their defaults
    global_step: int
    episodes: int
    updates: int
    best_eval_return: float | None
    solved_step: int | None
    obs_shape: tuple[int, ...]
    n_actions: int
    numpy_rng: dict[str, Any]
    python_random: tuple


def parse_meta(path: str | Path, meta: Any) -> CheckpointMeta:
    """The meta dict of a checkpoint, checked field by field (types, ranges, shapes)."""
    meta = _dict(path, "meta", meta)
    raw_config = _dict(path, "config", meta.get("config"))
    try:
        config = DQNConfig.from_dict({k: v for k, v in raw_config.items() if k not in EXECUTION_FIELDS},
                                     source="its config").validate()
    except ValueError as exc:
        raise CheckpointError(f"{path}: config: {exc}") from None
    counters = _dict(path, "counters", meta.get("counters"))
    global_step = _int(path, "counters.global_step", counters.get("global_step"), 0, MAX_INT)
    best = counters.get("best_eval_return")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
        raise CheckpointError(f"{path}: counters.best_eval_return={best!r} must be a finite number or null")
    solved = counters.get("solved_step")
    obs_shape = meta.get("obs_shape")
    if not isinstance(obs_shape, list) or not 1 <= len(obs_shape) <= 4:
        raise CheckpointError(f"{path}: obs_shape={obs_shape!r} must be a list of 1 to 4 positive integers")
    obs_shape = tuple(_int(path, "obs_shape", size, 1, 2**24) for size in obs_shape)
    if math.prod(obs_shape) > 2**28:
        raise CheckpointError(f"{path}: obs_shape={list(obs_shape)} has more than 2**28 elements")
    return CheckpointMeta(
        config=config, global_step=global_step,
        episodes=_int(path, "counters.episodes", counters.get("episodes"), 0, MAX_INT),
        updates=_int(path, "counters.updates", counters.get("updates"), 0, MAX_INT),
        best_eval_return=None if best is None else float(best),
        solved_step=None if solved is None else _int(path, "counters.solved_step", solved, 0, global_step),
        obs_shape=obs_shape, n_actions=_int(path, "n_actions", meta.get("n_actions"), 1, 2**20),
        numpy_rng=_numpy_rng(path, meta.get("numpy_rng")), python_random=_python_random(path, meta.get("python_random")),
    )


def check_tensors(path: str | Path, name: str, saved: Any, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`saved`, a state dict with exactly `expected`'s keys, shapes and dtypes and finite values."""
    saved = _dict(path, name, saved)
    if set(saved) != set(expected):
        missing, extra = (sorted(keys, key=repr) for keys in (set(expected) - set(saved), set(saved) - set(expected)))
        raise CheckpointError(f"{path}: {name} has keys missing {missing[:3]} / unexpected {extra[:3]}")
    for key, reference in expected.items():
        value = saved[key]
        if not isinstance(value, torch.Tensor) or value.shape != reference.shape or value.dtype != reference.dtype:
            found = f"{value.dtype}{list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path}: {name}.{key} is {found}; expected {reference.dtype}{list(reference.shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: {name}.{key} holds non-finite values (nan or inf); refused")
    return saved


def check_optimizer_state(path: str | Path, saved: Any, optimizer: str,
                          shapes: list[torch.Size]) -> dict[int, dict[str, torch.Tensor]]:
    """The optimiser state of the one flat w: {} or {0: {step, exp_avg, exp_avg_sq}} for Adam, {} for SGD.

    Adam's moments kept per parameter tensor (qapprox before the flat w: state {0 … k−1}, one entry per
    tensor of `shapes`) are checked tensor by tensor and concatenated in parameter order, which is w's
    order. The hyper-parameters (param_groups) are never taken from the file: they come from the config.
    """
    saved = _dict(path, "optimizer", saved)
    state = saved.get("state", {})
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: optimizer.state must be a dict, not {type(state).__name__}")
    if not state:
        return {}
    if optimizer == "sgd":
        if any(not isinstance(entry, dict) or any(v is not None for v in entry.values()) for entry in state.values()):
            raise CheckpointError(f"{path}: optimizer.state holds values; plain SGD keeps no state")
        return {}
    keys = sorted(state, key=repr)
    if keys == [0]:
        shapes = [torch.Size([sum(shape.numel() for shape in shapes)])]
    elif keys != list(range(len(shapes))):
        raise CheckpointError(f"{path}: optimizer.state has entries {keys[:4]}; expected [0] (the flat w) "
                              f"or one per parameter tensor (0 … {len(shapes) - 1})")
    steps, moments = [], {"exp_avg": [], "exp_avg_sq": []}
    for index, shape in enumerate(shapes):
        entry = _dict(path, f"optimizer.state[{index}]", state[index])
        if set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise CheckpointError(f"{path}: optimizer.state[{index}] has keys {sorted(map(str, entry))[:4]}; "
                                  "Adam's are exp_avg, exp_avg_sq, step")
        step = entry["step"]
        if not isinstance(step, torch.Tensor) or step.numel() != 1 or not step.is_floating_point() or \
                not 0 <= float(step) <= MAX_INT:
            raise CheckpointError(f"{path}: optimizer.state[{index}].step must be one number in [0, 2**53]")
        steps.append(step.reshape(()).float())
        reference = torch.empty(shape, dtype=torch.float32)
        checked = check_tensors(path, f"optimizer.state[{index}]", {k: entry[k] for k in moments},
                                {"exp_avg": reference, "exp_avg_sq": reference})
        if (checked["exp_avg_sq"] < 0).any():
            raise CheckpointError(f"{path}: optimizer.state[{index}].exp_avg_sq has negative values")
        for key in moments:
            moments[key].append(checked[key].reshape(-1))
    return {0: {"step": steps[0], **{key: torch.cat(parts) for key, parts in moments.items()}}}


def check_torch_rng(path: str | Path, saved: Any) -> torch.Tensor:
    """A CPU generator state that torch accepts (tried on a scratch generator, not the global one)."""
    reference = torch.get_rng_state()
    if not isinstance(saved, torch.Tensor) or saved.dtype != reference.dtype or saved.shape != reference.shape:
        raise CheckpointError(f"{path}: torch_rng must be a {reference.dtype} tensor of shape {list(reference.shape)}")
    try:
        torch.Generator().set_state(saved)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: torch_rng is not a valid generator state ({str(exc).splitlines()[0]})") from None
    return saved


def _dict(path: str | Path, name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: {name} must be a dict, not {type(value).__name__}")
    return value


def _int(path: str | Path, name: str, value: Any, low: int, high: int) -> int:
    """check_int, failing as a CheckpointError that names the file (a JSON integer in [low, high], not a bool)."""
    return _checked(path, check_int, name, value, low, high)


def _checked(path: str | Path, check: Callable[..., Any], *args: Any) -> Any:
    """check(*args), a qapprox.envs.validation check, with its ValueError raised as a CheckpointError on `path`."""
    try:
        return check(*args)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _numpy_rng(path: str | Path, value: Any) -> dict[str, Any]:
    """numpy's PCG64 bit-generator state, as bit_generator.state returns it."""
    value = _dict(path, "numpy_rng", value)
    inner = _dict(path, "numpy_rng.state", value.get("state"))
    if value.get("bit_generator") != "PCG64" or set(value) != {"bit_generator", "state", "has_uint32", "uinteger"} \
            or set(inner) != {"state", "inc"}:
        raise CheckpointError(f"{path}: numpy_rng must be a PCG64 state (bit_generator, state, has_uint32, uinteger)")
    return {"bit_generator": "PCG64",
            "state": {"state": _int(path, "numpy_rng.state.state", inner["state"], 0, PCG64_MAX),
                      "inc": _checked(path, check_pcg64_increment, "numpy_rng.state.inc", inner["inc"])},
            "has_uint32": _int(path, "numpy_rng.has_uint32", value["has_uint32"], 0, 1),
            "uinteger": _int(path, "numpy_rng.uinteger", value["uinteger"], 0, 2**32 - 1)}


def _python_random(path: str | Path, value: Any) -> tuple:
    """random.getstate() as JSON: [3, [625 words of the Mersenne Twister, the last its index ≤ 624], gauss]."""
    if not (isinstance(value, list) and len(value) == 3 and value[0] == 3 and isinstance(value[1], list)
            and len(value[1]) == 625 and all(type(word) is int and 0 <= word < 2**32 for word in value[1])
            and value[1][-1] <= 624 and (value[2] is None or (type(value[2]) is float and math.isfinite(value[2])))):
        raise CheckpointError(f"{path}: python_random is not a state of Python's random module (version 3)")
    return (3, tuple(value[1]), value[2])
