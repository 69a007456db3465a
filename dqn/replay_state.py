"""What a saved replay state may hold: the rules a state_dict() read back from a file must satisfy before a
ReplayBuffer takes it, so that sampling is correct (and ends). dqn.replay calls check_replay_state in
load_state_dict; a bad state is one line naming the field, and the buffer is left unchanged.

The layout checked is dqn.replay's: `slots` rows per env in one ring each (env e owns rows e·slots … e·slots +
slots − 1), `pointer[e]` the slot of env e's next S_t, `pending[e]` its starts still waiting for their n-step
window (the slots just before the pointer), `valid` the rows where a sampleable transition starts, whose
S_{t+k} is `next_rows`, k = 1 … n slots ahead in the same ring.
"""

from __future__ import annotations

import numpy as np
import torch

from qapprox.envs.validation import PCG64_MAX, check_int, check_pcg64_increment, shown


def check_replay_state(state: dict, settings: dict, arrays: dict[str, np.ndarray], slots: int,
                       n_actions: int | None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(stored arrays, counters) of `state`, checked against a buffer of these settings and arrays: the same
    settings (plain numbers), arrays of the same shapes and dtypes, counters and the PCG64 state in range,
    and rows that agree with each other (check_rows). Raises a one-line ValueError otherwise."""
    if not isinstance(state, dict):
        raise ValueError(f"replay state is a {type(state).__name__}, not a dict")
    for name, value in settings.items():
        saved = state.get(name)
        if type(saved) not in (int, float) or saved != value:  # plain numbers only: a tensor never compares
            raise ValueError(f"replay state has {name}={shown(saved)}; this buffer has {name}={value!r}")
    stored = {}
    for name, array in arrays.items():
        value = state.get(name)
        value = value.cpu().numpy() if isinstance(value, torch.Tensor) else None
        if value is None or value.shape != array.shape or value.dtype != array.dtype:
            found = None if value is None else f"{value.dtype}{list(value.shape)}"
            raise ValueError(f"replay state '{name}' is {found}; expected {array.dtype}{list(array.shape)}")
        stored[name] = value
    counters = {name: check_int(f"replay state '{name}'", _integer(state.get(name)), low, high)
                for name, low, high in (("count", 0, len(stored["valid"])), ("filled", 0, slots),
                                        ("rng_state", 0, PCG64_MAX), ("rng_has_uint32", 0, 1),
                                        ("rng_uinteger", 0, 2**32 - 1))}
    counters["rng_inc"] = check_pcg64_increment("replay state 'rng_inc'", _integer(state.get("rng_inc")))
    check_rows(stored, counters, slots, settings["n_step"], n_actions)
    return stored, counters


def check_rows(stored: dict[str, np.ndarray], counters: dict[str, int], slots: int, n_step: int,
               n_actions: int | None) -> None:
    """What the stored rows must satisfy for sampling to be correct (and to terminate)."""
    def refuse(what: str) -> None:
        raise ValueError(f"replay state: {what}")

    valid = stored["valid"]
    rows = np.flatnonzero(valid)
    if int(valid.sum()) != counters["count"]:
        refuse(f"count={counters['count']} but {int(valid.sum())} rows hold transitions")
    pointer, pending = stored["pointer"], stored["pending"]
    if not ((pointer >= 0) & (pointer < slots)).all():
        refuse(f"a pointer is outside [0, {slots})")
    if not ((pending >= 0) & (pending < n_step)).all():
        refuse(f"a pending count is outside [0, {n_step})")
    waiting = [e * slots + (pointer[e] - 1 - d) % slots for e in range(len(pointer)) for d in range(pending[e])]
    if valid[waiting].any():
        refuse("a start still waiting for its n-step window is marked as a transition")
    if len(rows) and (rows % slots).max() >= counters["filled"]:
        refuse(f"a transition lies beyond filled={counters['filled']} slots")
    next_rows = stored["next_rows"][rows]
    ahead = (next_rows - rows) % slots  # S_{t+k} lies k = 1 … n slots after S_t, in the same env's ring
    if not ((next_rows >= 0) & (next_rows < len(valid)) & (next_rows // slots == rows // slots)
            & (ahead >= 1) & (ahead <= n_step)).all():
        refuse(f"a next-state row index is not 1 to n_step={n_step} rows ahead in its environment's ring")
    actions = stored["actions"]  # every row: a waiting start becomes a transition without its action rewritten
    if len(actions) and (actions.min() < 0 or (n_actions is not None and actions.max() >= n_actions)):
        refuse(f"an action is outside [0, {n_actions if n_actions is not None else 'n_actions'})")
    if not (np.isfinite(stored["returns"]).all() and np.isfinite(stored["step_rewards"]).all()):
        refuse("a reward or return is not finite")
    discounts = stored["discounts"][rows]
    if not ((discounts >= 0) & (discounts <= 1)).all():
        refuse("a discount is outside [0, 1]")
    if stored["obs"].dtype.kind == "f" and not np.isfinite(stored["obs"]).all():
        refuse("an observation is not finite")


def _integer(value):
    """A 0-d integer tensor as an int (how a counter may come back from a file); anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        return int(value)
    return value
