"""The deadly triad inside DQN: the default agent against no target network, no replay, neither, at n = 3 and 1.

Each env's preset, 8 configurations (qapprox.dqn.triad) × --seeds, run as one sweep per env on Ray
(resumable: the same command again skips finished trials), then ROOT/triad.md and triad.csv (steps to
solve, final greedy return, largest |q̂|, final overestimation gap, divergences; mean [bootstrap 95 %
interval] over seeds) and triad.png (mean ± band curves). Each env also gets its sweep report in ROOT/<env>/.

    qapprox triad                                    # CartPole-v1 and Acrobot-v1, seeds 0-4, 50,000 steps each
    qapprox triad --env CartPole-v1 --seeds 0-9 --root runs/triad-cartpole
    qapprox triad --report-only                      # the table and the figure from the trials already run
"""

from __future__ import annotations

import argparse

from qapprox.dqn import triad
from qapprox.scripts._cli import ArgumentParser, run
from qapprox.scripts.sweep import add_cluster_arguments, cluster_options

DEFAULT_ENVS = ["CartPole-v1", "Acrobot-v1"]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", default=None,
                        help=f"an env with a preset; repeat for more (default {' and '.join(DEFAULT_ENVS)})")
    parser.add_argument("--seeds", default="0-4", help="seeds per configuration, e.g. 0-9 (default 0-4)")
    parser.add_argument("--total-timesteps", type=int, default=50_000,
                        help="environment steps per trial, the same for every env (default 50,000)")
    parser.add_argument("--root", default="runs/triad", help="one sweep directory per env inside it (default runs/triad)")
    parser.add_argument("--report-only", action="store_true", help="only write the table and the figure")
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    envs = args.env or DEFAULT_ENVS
    failures = [] if args.report_only else triad.run(envs, args.seeds, args.root, args.total_timesteps,
                                                     cluster_options(args))
    paths = triad.report(args.root, envs)
    print(paths["triad.md"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    run(main)
