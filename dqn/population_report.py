"""The aggregate of a population (dqn.population): its members' runs read back with the sweep's analysis
(dqn.analysis) — one row per member, and over the members the mean, bootstrap 95 % interval and IQM.

    paths = write_aggregate(agent)        # aggregate.png, aggregate.md, aggregate.csv in agent.population_dir

aggregate.png: each member's greedy evaluation return against environment steps (thin lines), their mean
with a bootstrap 95 % band, and the interquartile mean (IQM) over members at each step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


from qapprox.dqn.analysis import (RETURN_TAG, aggregate, align, bootstrap_band, drawable, interquartile_mean,
                                  markdown, read_run, write_csv)

COLUMNS = ("seed", "steps_to_solve", "seconds_to_solve", "final_return", "q_max_abs", "final_gap", "diverged_step")


def write_aggregate(agent: Any) -> dict[str, Path]:
    """The aggregate of a trained population `agent` (DQN with members) in its population folder."""
    members = [m for m in agent.members if m.run_dir is not None]
    return aggregate_runs(agent.population_dir, [m.run_dir for m in members], agent.reward_threshold,
                          [m.seed for m in members], [m.stopped is not None for m in members])


def aggregate_runs(population_dir: Path, run_dirs: list[Path], threshold: float | None, seeds: list[int],
                   stopped: list[bool] | None = None) -> dict[str, Path]:
    """aggregate.png / .md / .csv of the member runs `run_dirs` (seed seeds[k]; `stopped`: stopped by the
    divergence guard) in population_dir."""
    population_dir = Path(population_dir)
    population_dir.mkdir(parents=True, exist_ok=True)
    stopped = stopped or [False] * len(run_dirs)
    runs = [{"name": f"seed{seed}", "config": "population", "seed": seed, "finished": True,
             "outcome": "diverged" if halted else "finished", "attempts": 1,
             "run": read_run(run_dir) if Path(run_dir).is_dir() else None}
            for seed, run_dir, halted in zip(seeds, run_dirs, stopped)]
    member_rows, config_rows = aggregate(runs, threshold)
    paths = {"png": population_dir / "aggregate.png", "md": population_dir / "aggregate.md",
             "csv": population_dir / "aggregate.csv"}
    write_csv(paths["csv"], [{name: row[name] for name in COLUMNS} for row in member_rows])
    lines = [f"# Population of {len(runs)} members", "", markdown(config_rows, threshold), "Per member:", "",
             "| seed | steps to solve | seconds to solve | final greedy return | largest \\|q̂\\| | diverged at |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {_number(r['steps_to_solve'], 0)} | {_number(r['seconds_to_solve'], 1)} | "
              f"{_number(r['final_return'], 1)} | {_number(r['q_max_abs'], 1)} | {_number(r['diverged_step'], 0)} |"
              for r in member_rows]
    paths["md"].write_text("\n".join(lines) + "\n")
    plot(runs, threshold, paths["png"])
    return paths


def _number(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def plot(runs: list[dict], threshold: float | None, path: Path) -> None:
    """Members' evaluation curves, their mean with a bootstrap 95 % band, and the IQM over members."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and open figures stay as they are

    series = [(r["seed"], *r["run"].curve(RETURN_TAG)[:2]) for r in runs if r["run"] is not None]
    series = [(seed, steps, values) for seed, steps, values in series if steps.size]
    figure = Figure(figsize=(8, 4.8))
    axis = figure.subplots()
    for seed, steps, values in series:
        axis.plot(steps, values, color="0.6", linewidth=0.7, alpha=0.7)
    if series:
        grid, matrix = align([(steps, values) for _, steps, values in series], points=200)
        low, high = bootstrap_band(matrix)
        axis.plot(grid, matrix.mean(0), color="C0", linewidth=2, label="mean over members")
        axis.fill_between(grid, low, high, color="C0", alpha=0.25, label="bootstrap 95 % band of the mean")
        axis.plot(grid, [interquartile_mean(column) for column in matrix.T], color="C1", linewidth=1.5,
                  linestyle="--", label="IQM over members")
    if threshold is not None:
        axis.axhline(threshold, color="k", linestyle=":", linewidth=1, label=f"solved ({threshold:g})")
    env = drawable(runs[0]["run"].directory.name.split("__")[0]) if runs and runs[0]["run"] is not None else ""
    axis.set(title=f"{env}: greedy evaluation of {len(runs)} members", xlabel="environment step (per member)",
             ylabel="mean greedy return")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
