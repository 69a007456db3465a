"""Evaluate a DQN checkpoint greedily: `qapprox evaluate PATH --episodes 20 [--video DIR]`.

Prints the mean ± std of the undiscounted return over the episodes (and each return with --verbose).
--video DIR records every episode as MP4 with gymnasium's RecordVideo (needs the `video` extra: moviepy,
and an env that renders rgb_array); episodes then run one after another in a single env.
"""

from __future__ import annotations

from qapprox.dqn.config import INT_RANGES
from qapprox.envs.validation import check_int, check_seed
from qapprox.scripts._cli import ArgumentParser, run, set_threads


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a checkpoint written by qapprox train or DQN.save")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="env seed in [0, 2**32 − 1] (default: the run's seed + 1,000,000)")
    parser.add_argument("--video", metavar="DIR", help="record the episodes as videos into DIR")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; never the file's)")
    parser.add_argument("--max-checkpoint-bytes", type=int, default=None, metavar="N",
                        help="refuse a larger file before reading it (default: the size its own config implies)")
    parser.add_argument("--verbose", action="store_true", help="also print every episode's return")
    args = parser.parse_args(argv)
    check_int("--episodes", args.episodes, 1, INT_RANGES["eval_episodes"][1])
    if args.seed is not None:
        check_seed("--seed", args.seed)
    if args.max_checkpoint_bytes is not None:
        check_int("--max-checkpoint-bytes", args.max_checkpoint_bytes, 1)
    print(f"torch intra-op threads: {set_threads(args.threads)}")
    from qapprox.dqn.agent import DQN
    from qapprox.dqn.env_factory import make_video_env

    agent = DQN.load(args.path, device=args.device, threads=args.threads, max_bytes=args.max_checkpoint_bytes, logdir="")
    envs = None
    try:
        if args.video:
            envs = make_video_env(agent.config.env_id, args.video)
        returns = agent.evaluate(args.episodes, envs=envs, seed=args.seed)
    finally:
        agent.close()
        if envs is not None:
            envs.close()
    if args.verbose:
        print("returns: " + " ".join(f"{r:g}" for r in returns))
    print(f"{agent.config.env_id}: mean return {returns.mean():.2f} ± {returns.std():.2f} over {len(returns)} "
          f"greedy episodes (step {agent.global_step:,})")
    if args.video:
        print(f"videos: {args.video}")
    return 0


if __name__ == "__main__":
    run(main)
