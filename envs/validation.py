"""Value checks shared by every layer: each returns the checked value or raises a one-line ValueError that
names the value (through `shown`) and what is allowed.

    n = check_int("n_step", n_step, 1)                  # an integer ≥ 1 (bools refused), as int
    gamma = check_float("gamma", gamma, 0.0, 1.0)       # a finite number in [0, 1], as float
    lr = check_float("learning_rate", lr, 0.0, low_open=True)   # > 0 and finite
    lam = check_unit_interval("lam", [0.0, 0.5, 1.0])  # numbers or arrays in [0, 1], as a float64 array
    seed = check_seed("seed", seed)                     # an integer in [0, 2**32 − 1]
    kind = check_choice("kind", kind, ("mlp", "cnn"))   # one of the names: "kind='rnn' is not one of mlp, cnn"
    kind = check_choice("kind", kind, ("mlp", "cnn"), label="Q-network kind")  # "unknown Q-network kind 'rnn'; …"

It sits at the bottom layer (envs/, imported by approximators/, dqn/ and scripts/). The module itself imports
numpy only, but as qapprox.envs.validation it first runs qapprox/envs/__init__.py, which imports gymnasium and
registers the qapprox/ envs; nothing here imports torch.
What the machine allows (CPUs, memory) is checked in qapprox.approximators.limits.
"""

from __future__ import annotations

import itertools

import math
from collections.abc import Collection
from typing import Any

import numpy as np

MAX_INT = 2**53  # counts and sizes stay exact in float64 (TensorBoard, JSON) and far below int64
SEED_MAX = 2**32 - 1  # numpy takes any seed ≥ 0, torch at most 2**64 − 1; one range for every seed
PCG64_MAX = 2**128 - 1  # numpy's PCG64 state and increment are 128-bit integers


def shown(value: Any, limit: int = 60) -> str:
    """repr(value) in at most about `limit` characters, on one line, for an error message: a long string
    keeps its first `limit` characters and says its length, an array or tensor is named by its shape."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    if getattr(value, "ndim", 0) and hasattr(value, "shape"):
        kind = "a tensor" if type(value).__module__.startswith("torch") else "an array"
        return f"{kind} of shape {list(value.shape)}"
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_float(n: float) -> float:
    """A count (or a product of counts) as a float for a memory estimate: inf where it is beyond floats
    (10**400 runs from a command line), so that the estimate is refused instead of raising OverflowError."""
    try:
        return float(n)
    except OverflowError:
        return math.inf


# ---------------------------------------------------------------- integers
def _bound(n: int) -> str:
    """An integer bound as a reader checks it: 2**53 and 2**128 − 1 by their powers, others with commas."""
    if n >= 2**40 and n & (n - 1) == 0:
        return f"2**{n.bit_length() - 1}"
    if n >= 2**40 and (n + 1) & n == 0:
        return f"2**{n.bit_length()} - 1"
    return f"{n:,}"


def is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool (True is an int to Python, never a count here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int = MAX_INT) -> int:
    """int(value) if it is an integer in [low, high] (bools refused).

    The message says "≥ low" while high is the default cap MAX_INT, which it names only to a value beyond it:
    `n_step=0 must be an integer ≥ 1`, `total_timesteps=10**30 must be an integer in [0, 2**53]`."""
    if is_int(value) and low <= value <= high:
        return int(value)
    if high == MAX_INT and not (is_int(value) and value > high):
        raise ValueError(f"{name}={shown(value)} must be an integer ≥ {_bound(low)}")
    raise ValueError(f"{name}={shown(value)} must be an integer in [{_bound(low)}, {_bound(high)}]")


def check_seed(name: str, seed: Any) -> int:
    """A seed: an integer in [0, SEED_MAX]."""
    return check_int(name, seed, 0, SEED_MAX)


def check_pcg64_increment(name: str, inc: Any) -> int:
    """The increment of numpy's PCG64 bit generator: an odd integer in [0, 2**128 − 1]. numpy makes every
    increment odd; an even one (0 from a forged state) can repeat one draw forever."""
    inc = check_int(name, inc, 0, PCG64_MAX)
    if inc % 2 == 0:
        raise ValueError(f"{name}={inc} must be odd (a PCG64 increment)")
    return inc


def check_shape(name: str, shape: Any, ndim: int | None = None) -> tuple[int, ...]:
    """shape as a tuple, if it is a non-empty tuple or list of positive integers (of length ndim when given)."""
    if not isinstance(shape, (tuple, list)) or not shape or any(not is_int(n) or n < 1 for n in shape):
        raise ValueError(f"{name}={shown(shape)} must be a non-empty tuple of positive integers")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{name}={tuple(shape)} must have {ndim} dimension(s)")
    return tuple(int(n) for n in shape)


# ---------------------------------------------------------------- real numbers
def _allowed(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """What an interval allows, in words: 'is outside [0, 1]', 'must be > 0 and finite', 'must be a finite number'."""
    if math.isinf(low) and math.isinf(high):
        return "must be a finite number"
    if math.isinf(high):
        return f"must be {'>' if low_open else '≥'} {low:g} and finite"
    if math.isinf(low):
        return f"must be {'<' if high_open else '≤'} {high:g} and finite"
    return f"is outside {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _inside(x: Any, low: float, high: float, low_open: bool, high_open: bool) -> Any:
    """Whether finite x lies in the interval (elementwise for arrays; nan is outside)."""
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    return above & below & np.isfinite(x)


def check_float(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """float(value) if it is one finite real number (a Python or numpy int or float, not a bool) in the interval
    from low to high, closed unless low_open / high_open. nan and ±inf are always refused."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = as_float(value)
        if _inside(number, low, high, low_open, high_open):
            return number
    raise ValueError(f"{name}={shown(value)} {_allowed(low, high, low_open, high_open)}")


def check_array(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = False) -> np.ndarray:
    """value (a number, list or array) as a float64 array whose every entry is finite and in the interval; else a
    ValueError naming the first entry outside it (with :g, as `lam=1.5 is outside [0, 1]`)."""
    array = np.asarray(value, dtype=np.float64)
    bad = array[~_inside(array, low, high, low_open, high_open)]
    if bad.size:
        raise ValueError(f"{name}={bad.flat[0]:g} {_allowed(low, high, low_open, high_open)}")
    return array


def check_unit_interval(name: str, value: Any) -> np.ndarray:
    """Numbers in [0, 1] (γ, λ, ε), scalars or arrays, as a float64 array (check_array)."""
    return check_array(name, value, 0.0, 1.0)


def check_positive(name: str, value: Any) -> np.ndarray:
    """Finite numbers > 0 (step sizes α: an α of inf turns every weight into nan), as a float64 array."""
    return check_array(name, value, 0.0, low_open=True)


# ---------------------------------------------------------------- names
def choice_error(name: str, value: Any, allowed: Collection[str], *, label: str | None = None) -> ValueError:
    """The refusal of a name not in `allowed`: `loss='mse' is not one of huber, squared_error`, or with a label
    (what the value is, in words) `unknown Q-network kind 'rnn'; allowed: mlp, cnn, linear`."""
    names = ", ".join(map(str, allowed))
    if label is None:
        return ValueError(f"{name}={shown(value)} is not one of {names}")
    return ValueError(f"unknown {label} {shown(value)}; allowed: {names}")


def check_choice(name: str, value: Any, allowed: Collection[str], *, label: str | None = None) -> Any:
    """value, if it is one of the names in `allowed` (a string: 1 is not "1"); else choice_error's ValueError."""
    if not isinstance(value, str) or value not in allowed:
        raise choice_error(name, value, allowed, label=label)
    return value


def check_name(field: str, name: str) -> str:
    """`name` if it can be one component of a path (no '/', '\\', NUL, not '', '.' or '..')."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"{field}={name!r} must be a plain name: no '/', '\\', '..' or NUL")
    return name


def parse_seeds(text: str, limit: int) -> list[int]:
    """'0-9' → 0..9; '0,3,7-8' → [0, 3, 7, 8]; duplicates dropped, order kept: the seeds of a sweep's
    trials (`qapprox sweep --seeds`) and of a population's members (`qapprox train --seeds`).

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
        raise ValueError(f"seeds={shown(text)} lists {listed:,} seeds; at most {limit:,} are allowed")
    return list(dict.fromkeys(itertools.chain.from_iterable(range(a, b + 1) for a, b in spans)))
