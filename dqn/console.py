"""What the training loop hears and shows on the console: Ctrl-C and a progress bar.

    with StopOnSigint() as stop:
        while not stop.requested: ...       # the first Ctrl-C ends the loop after its current step
    bar = make_progress_bar(enabled, start, total)   # a tqdm bar, or None
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopOnSigint:
    """Within the block, the first Ctrl-C only sets `requested`; the loop finishes its step and stops.
    Outside the main thread (where no signal handler can be set) it never requests a stop."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def make_progress_bar(enabled: bool, start: int, total: int) -> Any:
    """A tqdm bar over environment steps from `start` to `total`, or None when not `enabled` (tqdm is
    imported only then)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, smoothing=0.1)
