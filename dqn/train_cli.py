"""A training run from flags: the work of `qapprox train` (scripts/train_dqn.py) and of every sweep trial.

    python -m qapprox.dqn.train_cli --env CartPole-v1 --seed 3 --logdir runs --no-progress

main(argv) builds the DQNConfig (dqn.config.resolve: defaults < preset < --config FILE < flags), or resumes a
checkpoint (DQN.load), learns, and returns the exit status: 0 done, 4 diverged, 130 stopped by Ctrl-C. Run
as a program, bad input is one line and 2, a full or read-only disk one line and 3 (dqn.command_line.run).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from qapprox.dqn.command_line import EXIT_DIVERGED, ArgumentParser, run, set_threads
from qapprox.dqn.config import PRESETS, DQNConfig, coerce, flag, resolve
from qapprox.dqn.population import MAX_MEMBERS
from qapprox.envs.validation import check_int, parse_seeds

ALIASES = {"env_id": ["--env"]}
# --help: the description (its first line) and the epilog (the rest)
HELP = """Train DQN: `qapprox train` solves CartPole-v1 with the default preset.

    python -m scripts.train_dqn                                   # CartPole-v1, default preset
    python -m scripts.train_dqn --env Acrobot-v1                  # that env's preset, if one ships
    python -m scripts.train_dqn --preset sb3-zoo-cartpole --seed 3
    python -m scripts.train_dqn --config my.toml --learning-rate 5e-4
    python -m scripts.train_dqn --resume runs/…/checkpoints/latest.ckpt
    python -m scripts.train_dqn --seeds 0-15                      # 16 agents in lockstep in one process
    python -m scripts.train_dqn --resume runs/CartPole-v1__dqn__population__…/

Every field of dqn.config.DQNConfig is a flag (--learning-rate 1e-3, --double-q false, --hidden 128,128).
Precedence: defaults < preset (--preset, or the env id's own preset) < --config FILE < flags.
Writes TensorBoard logs and checkpoints (checkpoints/latest.ckpt, best.ckpt) under the run dir.
--seeds trains a population, one member per seed, each learning as --seed N alone would: one run dir per
member (runs/<env>__<name>__<seed>__<time>/) and the population's folder with the aggregate
(aggregate.png, aggregate.md, aggregate.csv) and population.json, which --resume takes.
Exit status: 0 done, 4 diverged, 2 bad input, 3 disk full or read-only, 130 stopped by Ctrl-C (a checkpoint is saved).
"""


def build_parser() -> argparse.ArgumentParser:
    """One flag per DQNConfig field, typed by its annotation; defaults stay unset (None) to keep precedence."""
    parser = ArgumentParser(description=HELP.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="\n".join(HELP.splitlines()[1:]))
    parser.add_argument("--preset", choices=sorted(PRESETS), help="named hyper-parameters (default: the env id's, if any)")
    parser.add_argument("--config", metavar="FILE", help="TOML file of config fields")
    parser.add_argument("--resume", metavar="PATH", help="continue from a checkpoint (total_timesteps is the overall target); "
                        "the run writes beside it, in the folder above its checkpoints/ folder")
    parser.add_argument("--max-checkpoint-bytes", type=int, default=None, metavar="N",
                        help="with --resume: refuse a larger file before reading it (default: the size its config implies)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--seeds", metavar="SEEDS", help="a population, one member per seed: 0-15, 0,3,7 (not with --seed)")
    defaults = DQNConfig()
    group = parser.add_argument_group("config fields (dqn.config.DQNConfig)")
    for field in fields(DQNConfig):
        names = [flag(field.name)] + ALIASES.get(field.name, []) + ([f"--{field.name}"] if "_" in field.name else [])
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default).lower() if isinstance(default, bool) else default
        group.add_argument(*names, dest=field.name, default=None, metavar=field.type.upper().replace("TUPLE[INT, ...]", "INTS"),
                           type=_typed(field.name, field.type), help=f"default: {shown}")
    return parser


def _typed(name: str, annotation: str):
    def parse(text: str):
        try:
            return coerce(name, text, annotation)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = annotation
    return parse


def config_from_args(args: argparse.Namespace) -> tuple[DQNConfig, dict]:
    """(config, the fields given) by dqn.config.resolve: defaults < preset < config file < flags."""
    flags = {field.name: getattr(args, field.name) for field in fields(DQNConfig) if getattr(args, field.name) is not None}
    return resolve(flags, args.preset, args.config)


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) one run from flags; 0 done, 4 diverged, 130 stopped by Ctrl-C (bad input and a full
    disk are exceptions that run() turns into 2 and 3)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from qapprox.dqn.agent import DQN, DivergenceError  # after parsing: --help stays fast
    from qapprox.dqn.population_report import write_aggregate

    config, given = config_from_args(args)
    set_threads(config.threads)  # the agent's first log line states it
    if args.max_checkpoint_bytes is not None:
        check_int("--max-checkpoint-bytes", args.max_checkpoint_bytes, 1)
    seeds = None
    if args.seeds is not None:
        if args.seed is not None or args.resume:
            raise ValueError("--seeds names a new population's seeds: not with --seed or --resume")
        seeds = parse_seeds(args.seeds, MAX_MEMBERS)
    if not config.logdir:
        print("logdir is empty: no TensorBoard logs and no checkpoints are written")
    if args.resume:
        agent = DQN.load(args.resume, max_bytes=args.max_checkpoint_bytes, **given)
        if given.get("logdir") or "run_name" in given:
            where = agent.population_dir if len(agent.members) > 1 else agent.run_dir
            print(f"note: --logdir and --run-name name new runs; resuming continues in {where}")
        print(f"resuming {args.resume} at step {agent.global_step:,} of {agent.config.total_timesteps:,}")
    else:
        agent = DQN(config, seeds=seeds)
    population = len(agent.members) > 1
    print(f"population dir: {agent.population_dir} ({len(agent.members)} members)" if population
          else f"run dir: {agent.run_dir}")
    try:
        agent.learn(progress_bar=not args.no_progress)
    except DivergenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    finally:
        agent.close()
    resume = agent.population_dir if population else agent.last_checkpoint
    if population:
        print(members_table(agent))
        if agent.population_dir is not None:
            paths = write_aggregate(agent)
            print(f"aggregate: {', '.join(str(p) for p in paths.values())}")
            print(f"TensorBoard: tensorboard --logdir {agent.population_dir.parent}")
    else:
        print(f"steps {agent.global_step:,}  episodes {agent.episodes:,}  updates {agent.updates:,}  "
              f"recent return {agent.recent_return:.1f}  best eval {agent.best_eval_return:.1f}  "
              f"solved at step {agent.solved_step if agent.solved_step is not None else '-'}")
        if agent.run_dir is not None:
            print(f"checkpoint: {agent.last_checkpoint}")
            print(f"TensorBoard: tensorboard --logdir {agent.run_dir}")
    if agent.interrupted:
        print(f"stopped by Ctrl-C at step {agent.global_step:,}; resume with --resume {resume}")
        return 130
    return 0


def members_table(agent) -> str:
    """One line per member: seed, episodes, recent return, best evaluation, step solved, or why it stopped."""
    lines = [f"steps {agent.global_step:,} per member  updates {agent.updates:,}",
             f"{'seed':>6} {'episodes':>9} {'recent':>8} {'best eval':>10} {'solved at':>10}"]
    for member in agent.members:
        solved = member.solved_step if member.solved_step is not None else "-"
        line = (f"{member.seed:>6} {member.episodes:>9,} {member.recent_return:>8.1f} "
                f"{member.best_eval_return:>10.1f} {solved:>10}")
        lines.append(line + ("  stopped: diverged" if member.stopped else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    run(main)
