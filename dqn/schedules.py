"""Schedules of a hyper-parameter over training steps."""

from __future__ import annotations

from dataclasses import dataclass


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
