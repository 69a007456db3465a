"""Deep Q-networks built on approximators/ and envs/.

    from qapprox.dqn import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1")).learn()

The names below load on first use: importing one light module of the package (the sweep's Ray processes,
the analysis of runs) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"DQN": "agent", "DivergenceError": "algorithm", "CheckpointError": "checkpoint", "PRESETS": "config",
          "DQNConfig": "config", "from_toml": "config", "preset": "config"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
