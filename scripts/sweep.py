"""Many seeds and a hyper-parameter sweep of scripts.train_dqn on Ray, then an aggregate report.

    python -m scripts.sweep --env CartPole-v1 --seeds 0-9 \\
        --grid learning_rate=1e-3,3e-4 --grid double_q=true,false --sweep-dir runs/sweeps/lr-double
    python -m scripts.sweep --report runs/sweeps/lr-double

Each trial is one training run in SWEEP_DIR/<configuration>__seed<N>/; re-running the same
command skips finished trials and resumes the others from their checkpoints (see sweep_lib).

Without --address the sweep starts its own Ray cluster on this machine: every Ray process listens
on 127.0.0.1 only, there is no dashboard unless --dashboard, and the cluster ends with this command
(also when it is killed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from scripts import sweep_lib
from scripts._cli import ArgumentParser, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id with a Discrete action space")
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-9 or 0,3,7-8 (default 0-4)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="DQNConfig field and the values to try; repeat for a product grid")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="N random draws of the --search keys per grid point")
    parser.add_argument("--search", action="append", default=[], metavar="KEY=KIND:LOW:HIGH",
                        help=f"random search, KIND in {', '.join(sweep_lib.SEARCH_KINDS)} (int bounds inclusive)")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the random draws (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a DQNConfig field fixed for every trial (not part of trial names)")
    parser.add_argument("--total-timesteps", type=int, default=None, help="environment steps per trial")
    parser.add_argument("--sweep-dir", default=None, help="default runs/sweeps/<env>; reuse it to resume")
    parser.add_argument("--address", default=None,
                        help="join a Ray cluster: auto or HOST:PORT (default: start a local one, on 127.0.0.1 only)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local cluster (default: all)")
    parser.add_argument("--dashboard", action="store_true",
                        help="start the local cluster's Ray dashboard too (on 127.0.0.1; default: none)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="default 1")
    parser.add_argument("--gpus-per-trial", default="auto",
                        help="GPU fraction per trial; auto: the trial's CPU share of the cluster's GPUs")
    parser.add_argument("--max-retries", type=int, default=3, help="retries of a trial whose worker died")
    parser.add_argument("--solve-threshold", type=float, default=None,
                        help="greedy return that counts as solved (default: the env's reward_threshold, 475 for CartPole-v1)")
    parser.add_argument("--report", metavar="SWEEP_DIR", default=None,
                        help="only aggregate an existing sweep directory (no Ray needed)")
    parser.add_argument("--bench", action="store_true",
                        help="time the seeds sequentially vs on the local Ray cluster; write --bench-out")
    parser.add_argument("--bench-out", default="benchmarks/sweep.json")
    return parser.parse_args(argv)


def print_report(sweep_dir: str | Path, threshold: float | None) -> None:
    paths = sweep_lib.report(sweep_dir, threshold)
    print(paths["report.md"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_report(args.report, args.solve_threshold)
        return 0
    sweep_lib.check_ray_installed()  # before any work: without Ray, one line saying how to install it
    if args.address is not None and args.dashboard:
        raise ValueError("--dashboard is for the local cluster; a cluster joined with --address has its own")
    if args.cpus_per_trial <= 0 or args.max_retries < 0:
        raise ValueError(f"cpus_per_trial={args.cpus_per_trial} must be > 0 and max_retries={args.max_retries} ≥ 0")
    gpus_per_trial = sweep_lib.parse_gpus(args.gpus_per_trial)
    fields = sweep_lib.config_fields()
    fixed = sweep_lib.parse_assignments(args.set, fields)
    if any(len(values) != 1 for values in fixed.values()):
        raise ValueError(f"--set takes one value per key: {' '.join(args.set)}")
    grid = sweep_lib.parse_assignments(args.grid, fields)
    configs = sweep_lib.configurations(grid, sweep_lib.parse_search(args.search, fields), args.random,
                                       args.search_seed)
    fixed = {key: values[0] for key, values in fixed.items()}
    sweep_lib.check_configs(args.env, configs, fixed, args.total_timesteps)
    sweep_dir = Path(args.sweep_dir or Path("runs", "sweeps", args.env.replace("/", "-")))
    if args.bench:
        sweep_dir = sweep_dir / f"bench-{os.getpid()}"
    trials = sweep_lib.make_trials(sweep_dir, args.env, sweep_lib.parse_seeds(args.seeds), configs, fixed,
                                   args.total_timesteps, device="cpu")

    if args.bench:
        result = sweep_lib.benchmark(trials, args.num_cpus or os.cpu_count())
        Path(args.bench_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.bench_out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0

    todo = sweep_lib.pending(trials)
    print(f"sweep {sweep_dir}: {len(configs)} configuration(s) × {len(trials) // len(configs)} seed(s) = "
          f"{len(trials)} trials; {len(trials) - len(todo)} finished, {len(todo)} to run", flush=True)
    failures: list[str] = []
    if todo:
        ray = sweep_lib.connect(args.address, args.num_cpus, args.dashboard)
        try:
            resources = ray.cluster_resources()
            gpus = sweep_lib.gpu_share(resources, args.cpus_per_trial, gpus_per_trial)
            todo = [dataclasses.replace(t, device="cuda" if gpus > 0 else "cpu") for t in todo]
            print(f"ray: {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU; per trial "
                  f"{args.cpus_per_trial:g} CPU, {gpus:g} GPU, 1 torch thread", flush=True)
            failures = sweep_lib.run_on_ray(ray, todo, args.cpus_per_trial, gpus, args.max_retries)
        finally:
            sweep_lib.disconnect(ray)
    print_report(sweep_dir, args.solve_threshold)
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    run(main)
