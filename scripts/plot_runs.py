"""Learning curves from TensorBoard runs: `python -m scripts.plot_runs RUN_DIRS… [--tag T …] [--out PNG]`.

Runs are grouped by their name without the seed and time (runs/<env>__<name>__<seed>__<time>);
each group is drawn as the mean over its seeds with a min–max band, on a common step grid
(each run's curve is linearly interpolated onto the grid, within the steps it covers).
--tag may be given several times: one panel per tag. Prints, per group and tag, the number of
seeds and the final mean. Tags and run names are drawn as plain text (no $…$ mathtext).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.scripts._cli import FIGURE_FORMATS, ArgumentParser, figure_path, run

DPI = 120
PANEL_INCHES = 7
MAX_PANELS = 2**16 // (PANEL_INCHES * DPI)  # Agg draws at most 2**16 pixels across
POINT_BYTES = 256  # per point of a curve drawn: grid, mean, band, matplotlib's paths (measured ~190)


def shown(text: str) -> str:
    """text as matplotlib can draw it: an undecodable byte of a command line or a folder name (a lone
    surrogate such as '\\udcff') becomes U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate no command line makes
        return text.encode("utf-8", "replace").decode("utf-8")


def read_scalars(run_dir: str | Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one tag in a run directory, read with TensorBoard's EventAccumulator."""
    from qapprox.scripts.sweep_lib import accumulate

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
    parser.add_argument("--out", default="learning_curves.png",
                        help=f"the figure; without a suffix .png is added (formats: {', '.join(FIGURE_FORMATS)})")
    parser.add_argument("--points", type=int, default=200, help="points of the common step grid")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    if args.points < 2:
        raise ValueError(f"--points={args.points} must be ≥ 2")
    out = figure_path("--out", args.out)
    tags = args.tag or ["charts/episodic_return"]
    if len(tags) > MAX_PANELS:
        raise ValueError(f"--tag given {len(tags)} times; at most {MAX_PANELS} panels fit in one figure "
                         f"({PANEL_INCHES} inches each at {DPI} dpi, 2**16 pixels across)")
    check_memory(f"--points={args.points:,} for {len(args.run_dirs)} run(s) × {len(tags)} tag(s)",
                 float(args.points) * (8 * len(args.run_dirs) + POINT_BYTES) * len(tags))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}  # tag → group → curves
    for tag in tags:  # every run is read before a figure exists
        groups[tag] = defaultdict(list)
        for run_dir in map(Path, args.run_dirs):
            groups[tag][group_name(run_dir)].append(read_scalars(run_dir, tag))
    with plt.rc_context({"text.parse_math": False}):  # tags, run names and titles are text, not TeX
        figure, all_axes = plt.subplots(1, len(tags), figsize=(PANEL_INCHES * len(tags), 4.5), squeeze=False)
        for tag, axes in zip(tags, all_axes[0]):
            for name, curves in groups[tag].items():
                end = min(steps[-1] for steps, _ in curves)
                grid = np.linspace(max(steps[0] for steps, _ in curves), end, args.points)
                values = np.stack([np.interp(grid, steps, vals) for steps, vals in curves])
                mean = values.mean(axis=0)
                axes.plot(grid, mean, label=shown(f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})"))
                axes.fill_between(grid, values.min(axis=0), values.max(axis=0), alpha=0.2)
                print(f"{name}: {len(curves)} run(s), final mean {tag} {mean[-1]:.2f} at step {int(grid[-1]):,}")
            axes.set_xlabel("environment steps")
            axes.set_ylabel(shown(tag))
            axes.set_title(shown(tag))
            axes.grid(alpha=0.3)
            axes.legend()
        if args.title:
            figure.suptitle(shown(args.title))
        figure.tight_layout()
        figure.savefig(out, dpi=DPI)
        plt.close(figure)  # main() may be called again in the same process
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run(main)
