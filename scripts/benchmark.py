"""Benchmark qapprox's DQN against Stable-Baselines3 and CleanRL side by side, and against its floor.

    OMP_NUM_THREADS=1 qapprox benchmark                       # everything, 5 seeds (long)
    qapprox benchmark --suites sb3,default --seeds 0,1,2       # a subset
    qapprox benchmark --suites cleanrl --cleanrl-python .venv-cleanrl/bin/python
    qapprox benchmark --report-only                            # redraw table and PNGs

Suites (each writes benchmarks/dqn_<name>.json as it goes; the Markdown table and PNGs are drawn from
whichever of those files exist, so suites run separately compose): floor (bare env step, batch-1
action, one update, per preset used), sb3 (qapprox and SB3 at the zoo preset), default (qapprox's
default preset), cleanrl (CleanRL's dqn.py at its defaults, and qapprox's cleanrl-cartpole preset),
population (K = 1, 4, 16, 64 seeds in lockstep against one run and SB3's four seeds; its own JSON).
The machinery is qapprox.dqn.benchmark (suites.py says how the runs are made).

Each side runs at each of its thread settings on the first seed (--qapprox-threads, default 1;
--baseline-threads, default "1,default" = torch's own choice) and at its faster one after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qapprox.dqn.benchmark.suites import SUITES, BenchmarkSettings, run_suites, write_report
from qapprox.scripts._cli import ArgumentParser, recorded_command, run


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
    try:
        seeds = tuple(int(s) for s in comma_list(args.seeds))
    except ValueError:
        raise ValueError(f"seeds={args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    return BenchmarkSettings(
        suites=comma_list(args.suites), seeds=seeds, steps=args.steps, qapprox_threads=comma_list(args.qapprox_threads),
        baseline_threads=comma_list(args.baseline_threads), eval_episodes=args.eval_episodes,
        floor_iterations=args.floor_iterations, cleanrl_version=args.cleanrl_version, cleanrl_python=args.cleanrl_python,
        cleanrl_cache=Path(args.cleanrl_cache))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    defaults = BenchmarkSettings()
    parser = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--seeds", default=",".join(map(str, defaults.seeds)), help="comma-separated seeds (default: 0,1,2,3,4)")
    parser.add_argument("--steps", type=int, help="environment steps per training run (default: each preset's own)")
    parser.add_argument("--baseline-threads", default=",".join(defaults.baseline_threads),
                        help="thread settings tried for SB3 and CleanRL on the first seed")
    parser.add_argument("--qapprox-threads", default=",".join(defaults.qapprox_threads),
                        help="thread settings tried for qapprox on the first seed (e.g. 1,2)")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes, help="greedy evaluation episodes after training")
    parser.add_argument("--floor-iterations", type=int, default=defaults.floor_iterations,
                        help="env steps and forward passes timed by the floor")
    parser.add_argument("--cleanrl-version", default=defaults.cleanrl_version)
    parser.add_argument("--cleanrl-python", default=defaults.cleanrl_python,
                        help="interpreter for CleanRL's dqn.py (needs gymnasium<1.0, stable-baselines3, tensorboard)")
    parser.add_argument("--cleanrl-cache", default=str(defaults.cleanrl_cache), help="where cleanrl's wheel goes")
    parser.add_argument("--out-dir", default="benchmarks")
    parser.add_argument("--report-only", action="store_true", help="only redraw the Markdown table and PNGs from the JSON files")
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    out_dir = Path(args.out_dir)
    if not args.report_only:
        run_suites(settings, out_dir, command=recorded_command(parser.prog, "benchmark", argv),
                   log=lambda line: print(line, flush=True))
    for path in write_report(out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run(main)
