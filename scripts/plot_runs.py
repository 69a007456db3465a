"""Learning curves from TensorBoard runs: `python -m scripts.plot_runs RUN_DIRS… [--tag T …] [--out PNG]`.

Runs are grouped by their name without the seed and time (runs/<env>__<name>__<seed>__<time>);
each group is drawn as the mean over its seeds with a min–max band, on a common step grid
(each run's curve is linearly interpolated onto the grid, within the steps it covers).
--tag may be given several times: one panel per tag. Prints, per group and tag, the number of
seeds and the final mean.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from scripts._cli import ArgumentParser, run
from scripts.sweep_lib import accumulate


def read_scalars(run_dir: str | Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one tag in a run directory, read with TensorBoard's EventAccumulator."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    accumulator = accumulate(run_dir)
    if tag not in accumulator.Tags()["scalars"]:
        raise ValueError(f"{run_dir} has no scalar tag {tag!r}; it has: {', '.join(sorted(accumulator.Tags()['scalars']))}")
    events = accumulator.Scalars(tag)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def group_name(run_dir: Path) -> str:
    parts = run_dir.name.split("__")
    return "__".join(parts[:2]) if len(parts) >= 4 else run_dir.name


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--tag", action="append", help="scalar tag (repeatable; default charts/episodic_return)")
    parser.add_argument("--out", default="learning_curves.png")
    parser.add_argument("--points", type=int, default=200, help="points of the common step grid")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    if args.points < 2:
        raise ValueError(f"--points={args.points} must be ≥ 2")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = args.tag or ["charts/episodic_return"]
    figure, all_axes = plt.subplots(1, len(tags), figsize=(7 * len(tags), 4.5), squeeze=False)
    for tag, axes in zip(tags, all_axes[0]):
        groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        for run_dir in map(Path, args.run_dirs):
            groups[group_name(run_dir)].append(read_scalars(run_dir, tag))
        for name, curves in groups.items():
            end = min(steps[-1] for steps, _ in curves)
            grid = np.linspace(max(steps[0] for steps, _ in curves), end, args.points)
            values = np.stack([np.interp(grid, steps, vals) for steps, vals in curves])
            mean = values.mean(axis=0)
            axes.plot(grid, mean, label=f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
            axes.fill_between(grid, values.min(axis=0), values.max(axis=0), alpha=0.2)
            print(f"{name}: {len(curves)} run(s), final mean {tag} {mean[-1]:.2f} at step {int(grid[-1]):,}")
        axes.set_xlabel("environment steps")
        axes.set_ylabel(tag)
        axes.set_title(tag)
        axes.grid(alpha=0.3)
        axes.legend()
    if args.title:
        figure.suptitle(args.title)
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
