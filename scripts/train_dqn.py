"""Train DQN: `qapprox train` solves CartPole-v1 with the default preset.

A thin front: the flags (one per DQNConfig field), the work and the exit codes (0 done, 4 diverged, 2 bad
input, 3 disk full or read-only, 130 stopped by Ctrl-C) are qapprox.dqn.train_cli's; see --help.
"""

from __future__ import annotations

from qapprox.dqn.train_cli import build_parser, config_from_args, main
from qapprox.scripts._cli import run

__all__ = ["build_parser", "config_from_args", "main"]  # the work, flags and exit codes: qapprox.dqn.train_cli

if __name__ == "__main__":
    run(main)
