"""Schedules of a hyper-parameter over training steps, and DQN's two: ε of ε-greedy and β of prioritized replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qapprox.dqn.config import DQNConfig


@dataclass(frozen=True)
class LinearSchedule:
    """value(t) = start + (end − start) · min(1, t / duration): ε of ε-greedy, β of prioritized replay.

    duration ≤ 0 means `end` from the first step.
    """

    start: float
    end: float
    duration: float

    def __call__(self, step: int) -> float:
        if self.duration <= 0:
            return self.end
        return self.start + (self.end - self.start) * min(1.0, step / self.duration)


def dqn_schedules(config: DQNConfig, total_timesteps: int) -> tuple[LinearSchedule, LinearSchedule]:
    """(ε, β) over a run of `total_timesteps` env steps: ε decays linearly from exploration_initial to
    exploration_final over exploration_fraction of the run; β rises from priority_beta0 to 1 at its end."""
    epsilon = LinearSchedule(config.exploration_initial, config.exploration_final,
                             config.exploration_fraction * total_timesteps)
    beta = LinearSchedule(config.priority_beta0, 1.0, total_timesteps)
    return epsilon, beta
