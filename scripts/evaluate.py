"""Evaluate a DQN checkpoint greedily: `python -m scripts.evaluate PATH --episodes 20 [--video DIR]`.

Prints the mean ± std of the undiscounted return over the episodes (and each return with --verbose).
--video DIR records every episode as MP4 with gymnasium's RecordVideo (needs the `video` extra: moviepy,
and an env that renders rgb_array); episodes then run one after another in a single env.
"""

from __future__ import annotations


from qapprox.dqn.config import INT_RANGES
from qapprox.scripts._cli import ArgumentParser, run, set_threads


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a checkpoint written by scripts.train_dqn or DQN.save")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="env seed ≥ 0 (default: the run's seed + 1,000,000)")
    parser.add_argument("--video", metavar="DIR", help="record the episodes as videos into DIR")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; never the file's)")
    parser.add_argument("--max-checkpoint-bytes", type=int, default=None, metavar="N",
                        help="refuse a larger file before reading it (default: the size its own config implies)")
    parser.add_argument("--verbose", action="store_true", help="also print every episode's return")
    args = parser.parse_args(argv)
    if not 1 <= args.episodes <= INT_RANGES["eval_episodes"][1]:
        raise ValueError(f"--episodes={args.episodes} must be in [1, {INT_RANGES['eval_episodes'][1]:,}]")
    if args.seed is not None and not 0 <= args.seed <= 2**63:
        raise ValueError(f"--seed={args.seed} must be an integer in [0, 2**63]")
    if args.max_checkpoint_bytes is not None and args.max_checkpoint_bytes < 1:
        raise ValueError(f"--max-checkpoint-bytes={args.max_checkpoint_bytes} must be ≥ 1")
    print(f"torch intra-op threads: {set_threads(args.threads)}")
    from qapprox.dqn.agent import DQN

    agent = DQN.load(args.path, device=args.device, threads=args.threads, max_bytes=args.max_checkpoint_bytes, logdir="")
    envs = None
    try:
        if args.video:
            envs = _video_envs(agent.config.env_id, args.video)
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


def _video_envs(env_id: str, directory: str):
    """One env wrapped in RecordVideo (every episode), in a SAME_STEP vector env as DQN expects."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    from qapprox.dqn.env_factory import make_env

    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise ValueError("--video needs moviepy: pip install qapprox[video]") from None
    probe = make_env(env_id)
    modes = probe.metadata.get("render_modes", [])
    probe.close()
    if "rgb_array" not in modes:
        raise ValueError(f"env {env_id!r} does not render rgb_array (render modes: {modes}); cannot record video")

    def factory() -> gym.Env:
        return gym.wrappers.RecordVideo(make_env(env_id, render_mode="rgb_array"), directory,
                                       episode_trigger=lambda episode: True, disable_logger=True)

    return gym.vector.SyncVectorEnv([factory], autoreset_mode=AutoresetMode.SAME_STEP)


if __name__ == "__main__":
    run(main)
