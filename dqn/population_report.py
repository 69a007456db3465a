"""The aggregate of a population (dqn.population): its members' runs read back with the sweep's analysis
(dqn.analysis) — one row per member, and over the members the mean, median, IQM and bootstrap 95 % interval.

    paths = write_aggregate(agent)                        # a trained population, into agent.population_dir
    paths = aggregate(population_dir, run_dirs, 475.0)    # the same from the members' run folders

aggregate.png: each member's greedy evaluation return against environment steps (thin lines); at each step,
over the members evaluated there, the mean with its bootstrap 95 % band and the IQM; the threshold dashed.
A member that diverged stops there and leaves the statistics from that step on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from qapprox.dqn import analysis
from qapprox.dqn.logging import parse_run_dir

COLUMNS = ("seed", "steps_to_solve", "seconds_to_solve", "final_return", "best_return", "diverged_step")
SUMMARISED = COLUMNS[1:5]  # the columns with statistics over members (diverged_step: only how many)
HEADERS = ("seed", "steps to solve", "seconds to solve", "final greedy return", "best greedy return",
           "diverged at step")
DIGITS = {"steps_to_solve": 0, "diverged_step": 0}  # decimals of a member's value in aggregate.md; 1 otherwise
POINTS = 200  # at most this many steps on the figure's grid of the mean, band and IQM


def write_aggregate(agent: Any) -> dict[str, Path]:
    """aggregate(...) of a trained population `agent` (DQN with members): its members with a run folder."""
    members = [m for m in agent.members if m.run_dir is not None]
    return aggregate(agent.population_dir, [m.run_dir for m in members], agent.reward_threshold,
                     [m.seed for m in members])


def aggregate(population_dir: str | Path, run_dirs: list[Path], threshold: float | None,
              seeds: list[int] | None = None) -> dict[str, Path]:
    """Write aggregate.png, aggregate.md and aggregate.csv of the member runs `run_dirs` into population_dir.

    seeds[k] is run k's seed (default: read from its folder's name). Per member, run_summary's steps and
    seconds to solve (the first evaluation ≥ threshold), final and best greedy return, the step it diverged;
    nan (blank in the CSV, — in the table) for what a member did not log. Returns {"png", "md", "csv"} paths."""
    population_dir, run_dirs = Path(population_dir), [Path(d) for d in run_dirs]
    if seeds is None:
        parsed = [parse_run_dir(d) for d in run_dirs]
        if None in parsed:
            raise ValueError(f"no seed in run folder name {run_dirs[parsed.index(None)].name!r}: pass seeds=")
        seeds = [p.seed for p in parsed]
    if len(seeds) != len(run_dirs):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(run_dirs)} run folders; one per run")
    population_dir.mkdir(parents=True, exist_ok=True)
    runs = [analysis.read_run(d) if d.is_dir() else None for d in run_dirs]
    rows = [_member_row(seed, run, threshold) for seed, run in zip(seeds, runs)]
    summary = _summary(rows)
    env = next((p.env for p in map(parse_run_dir, run_dirs) if p is not None), population_dir.name)
    paths = {"png": population_dir / "aggregate.png", "md": population_dir / "aggregate.md",
             "csv": population_dir / "aggregate.csv"}
    analysis.write_csv(paths["csv"], [{c: "" if _missing(r[c]) else r[c] for c in COLUMNS} for r in rows + summary])
    paths["md"].write_text(_markdown(env, rows, summary, threshold))
    _plot(env, seeds, runs, threshold, paths["png"])
    return paths


def _member_row(seed: int, run: analysis.Run | None, threshold: float | None) -> dict[str, Any]:
    summary = analysis.run_summary(run, threshold)
    returns = run.curve(analysis.RETURN_TAG)[1] if run is not None else np.array([])
    return {"seed": seed, **{c: summary[c] for c in ("steps_to_solve", "seconds_to_solve", "final_return")},
            "best_return": float(returns.max()) if returns.size else math.nan,
            "diverged_step": summary["diverged_step"]}


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows n, mean, median, IQM, bootstrap low and high: over the members with a value (solved ones for the
    steps and seconds to solve; n of diverged_step is how many diverged)."""
    columns = {c: analysis.statistics([r[c] for r in rows]) for c in SUMMARISED}
    for c in SUMMARISED:
        finite = [r[c] for r in rows if not math.isnan(r[c])]
        columns[c]["median"] = float(np.median(finite)) if finite else math.nan
    summary = [{"seed": "n", **{c: columns[c]["n"] for c in SUMMARISED},
                "diverged_step": sum(not math.isnan(r["diverged_step"]) for r in rows)}]
    for name, key in (("mean", "mean"), ("median", "median"), ("IQM", "iqm"), ("bootstrap 2.5 %", "low"),
                      ("bootstrap 97.5 %", "high")):
        summary.append({"seed": name, **{c: columns[c][key] for c in SUMMARISED}, "diverged_step": math.nan})
    return summary


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _number(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def _markdown(env: str, rows: list[dict], summary: list[dict], threshold: float | None) -> str:
    k, (n, *statistics) = len(rows), summary
    solve = f"≥ {threshold:g}" if threshold is not None else "≥ a threshold (none known for this env)"
    lines = [f"# {env}: a population of {k} members", "",
             f"Solved: the first greedy evaluation with mean return {solve}. {n['steps_to_solve']} of {k} members "
             f"solved; {n['diverged_step']} diverged (stopped by the divergence guard; their other columns are up "
             "to that step). Final and best: the last and the highest greedy evaluation return.", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---:|" * len(HEADERS)]
    lines += ["| " + " | ".join([str(r["seed"])] + [_number(r[c], DIGITS.get(c, 1)) for c in COLUMNS[1:]]) + " |"
              for r in rows]
    lines += ["", "Over the members with a value (steps and seconds to solve: over the solved members); bootstrap: "
              "the 95 % interval of the mean.", "",
              "| over members | " + " | ".join(HEADERS[1:5]) + " |", "|---|" + "---:|" * 4,
              "| n | " + " | ".join(f"{n[c]} of {k}" for c in SUMMARISED) + " |"]
    by_name = {r["seed"]: r for r in statistics}
    lines += [f"| {name} | " + " | ".join(_number(by_name[name][c], 1) for c in SUMMARISED) + " |"
              for name in ("mean", "median", "IQM")]
    lines.append("| bootstrap 95 % | " + " | ".join(
        "—" if math.isnan(by_name["bootstrap 2.5 %"][c]) else
        f"[{by_name['bootstrap 2.5 %'][c]:,.1f}, {by_name['bootstrap 97.5 %'][c]:,.1f}]" for c in SUMMARISED) + " |")
    return "\n".join(lines) + "\n"


def _plot(env: str, seeds: list[int], runs: list[analysis.Run | None], threshold: float | None, path: Path) -> None:
    """Members' evaluation curves; at each step of a grid, over the members evaluated in their range there
    (linearly interpolated between evaluations), the mean, its bootstrap 95 % interval and the IQM."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and open figures stay as they are

    series = [run.curve(analysis.RETURN_TAG)[:2] for run in runs if run is not None]
    series = [(steps, values) for steps, values in series if steps.size]
    with matplotlib.rc_context({"text.parse_math": False}):  # an env or folder name is text, not TeX
        figure = Figure(figsize=(8, 4.8))
        axis = figure.subplots()
        for i, (steps, values) in enumerate(series):
            axis.plot(steps, values, color="0.55", linewidth=0.7, alpha=0.8, label="members" if i == 0 else None)
        if series:
            grid = np.unique(np.concatenate([steps for steps, _ in series]))
            if grid.size > POINTS:
                grid = np.unique(np.linspace(grid[0], grid[-1], POINTS).round())
            inside = [np.where((grid >= s[0]) & (grid <= s[-1]), np.interp(grid, s, v), np.nan) for s, v in series]
            columns = [column[~np.isnan(column)] for column in np.stack(inside).T]  # the members evaluated there
            band = np.array([analysis.bootstrap_interval(column) for column in columns])
            axis.plot(grid, [c.mean() for c in columns], color="C0", linewidth=2, label="mean over members")
            axis.fill_between(grid, band[:, 0], band[:, 1], color="C0", alpha=0.25,
                              label="bootstrap 95 % band of the mean")
            axis.plot(grid, [analysis.interquartile_mean(c) for c in columns], color="C1", linewidth=1.5, label="IQM")
        if threshold is not None:
            axis.axhline(threshold, color="k", linestyle="--", linewidth=1, label=f"solved ({threshold:g})")
        axis.set(title=analysis.drawable(f"{env}: greedy evaluation return of K = {len(seeds)} members"),
                 xlabel="environment step (per member)", ylabel="mean greedy return")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8, loc="best")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
