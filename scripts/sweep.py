"""Many seeds and a hyper-parameter sweep of `qapprox train` runs on Ray, then an aggregate report.

    python -m scripts.sweep --env CartPole-v1 --seeds 0-9 \\
        --grid learning_rate=1e-3,3e-4 --grid double_q=true,false --sweep-dir runs/sweeps/lr-double
    python -m scripts.sweep --report runs/sweeps/lr-double
    python -m scripts.sweep --seeds 0-15 --seeds-per-trial 4      # 4 processes of 4 seeds in lockstep

Each trial is one training run in SWEEP_DIR/<configuration>__seed<N>/, or with --seeds-per-trial K a
population of up to K seeds trained in one process in SWEEP_DIR/<configuration>__seeds<first>-<last>/
(the report is the same: a line per seed); re-running the same command skips finished trials and
resumes the others from their checkpoints (see qapprox.dqn.sweep).

Without --address the sweep starts its own Ray cluster on this machine: every Ray process listens
on 127.0.0.1 only, there is no dashboard unless --dashboard, and the cluster ends with this command
(also when it is killed). Every flag is checked before Ray starts; a bad one is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qapprox.approximators.limits import cpu_count
from qapprox.dqn import analysis, sweep
from qapprox.dqn.ray_cluster import MAX_RETRIES, ClusterOptions
from qapprox.dqn.trial_files import write_json
from qapprox.scripts._cli import ArgumentParser, check_output_path, finite_float, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id with a Discrete action space")
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-9 or 0,3,7-8 (default 0-4)")
    parser.add_argument("--seeds-per-trial", type=int, default=1, metavar="K",
                        help="train each configuration's seeds K at a time, in order, as one population "
                             "trial (one process, --cpus-per-trial as given; default 1)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="DQNConfig field and the values to try; repeat for a product grid")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="N random draws of the --search keys per grid point")
    parser.add_argument("--search", action="append", default=[], metavar="KEY=KIND:LOW:HIGH",
                        help=f"random search, KIND in {', '.join(sweep.SEARCH_KINDS)} (int bounds inclusive)")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the random draws (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a DQNConfig field fixed for every trial (not part of trial names)")
    parser.add_argument("--total-timesteps", type=int, default=None, help="environment steps per trial")
    parser.add_argument("--sweep-dir", default=None, help="default runs/sweeps/<env>; reuse it to resume")
    add_cluster_arguments(parser)
    parser.add_argument("--solve-threshold", type=finite_float, default=None,
                        help="greedy return that counts as solved (default: the env's reward_threshold, 475 for CartPole-v1)")
    parser.add_argument("--report", metavar="SWEEP_DIR", default=None,
                        help="only aggregate an existing sweep directory (no Ray needed)")
    parser.add_argument("--bench", action="store_true",
                        help="time the seeds sequentially vs on the local Ray cluster; write --bench-out")
    parser.add_argument("--bench-out", default="benchmarks/sweep.json")
    return parser.parse_args(argv)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of where and how trials run (ClusterOptions), shared with `qapprox triad`."""
    parser.add_argument("--address", default=None,
                        help="join a Ray cluster: auto or HOST:PORT (default: start a local one, on 127.0.0.1 only)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local cluster, 1 to the CPUs this process may use (default: all of them)")
    parser.add_argument("--dashboard", action="store_true",
                        help="start the local cluster's Ray dashboard too (on 127.0.0.1; default: none)")
    parser.add_argument("--cpus-per-trial", type=finite_float, default=1.0, help="default 1")
    parser.add_argument("--gpus-per-trial", default="auto",
                        help="GPU fraction per trial; auto: the trial's CPU share of the cluster's GPUs")
    parser.add_argument("--max-retries", type=int, default=3,
                        help=f"retries of a trial whose worker died, 0 to {MAX_RETRIES} (default 3)")


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    return ClusterOptions(args.address, args.num_cpus, args.dashboard, args.cpus_per_trial, args.gpus_per_trial,
                          args.max_retries)


def print_report(sweep_dir: str | Path, threshold: float | None) -> None:
    paths = analysis.report(sweep_dir, threshold)
    print(paths["report.md"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_report(args.report, args.solve_threshold)
        return 0
    spec = sweep.Sweep(args.env, args.seeds, args.grid, args.search, args.random, args.search_seed, args.set,
                       args.total_timesteps, args.sweep_dir, args.seeds_per_trial)
    cluster = cluster_options(args)
    if args.bench:
        check_output_path("--bench-out", args.bench_out)
    sweep_dir, trials = sweep.prepare(spec, cluster, bench=args.bench)  # checks only: no Ray yet
    sweep.make_sweep_dir(sweep_dir)
    if args.bench:
        result = sweep.benchmark(trials, args.num_cpus or cpu_count())
        write_json(Path(args.bench_out), result)
        print(json.dumps(result, indent=2))
        return 0
    failures = sweep.run(sweep_dir, trials, cluster)
    print_report(sweep_dir, args.solve_threshold)
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    run(main)
