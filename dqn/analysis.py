"""Reading runs back: TensorBoard event files → curves, statistics over seeds, figures and reports.

    run = read_run("runs/CartPole-v1__dqn__0__1700000000")     # every scalar of a run directory
    steps, values = run.scalar("eval/mean_return")
    paths = report("runs/sweeps/CartPole-v1")                   # a sweep's report.md, CSVs, curves.png
    plot_learning_curves(["runs/a", "runs/b"], ["charts/episodic_return"], "curves.png")

Over n seeds with values x_1..x_n (sorted x_(1) ≤ … ≤ x_(n)):
    mean        x̄ = (1/n) Σ_i x_i
    bootstrap   the 2.5 % and 97.5 % percentiles of x̄* over 10,000 resamples of n values with replacement
    IQM         the mean of x_(k+1)..x_(n−k), k = ⌊n/4⌋ (as rliable)
"Solved" is qapprox.dqn.evaluation's: the first greedy evaluation whose mean return reaches the env's
reward threshold.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from qapprox.approximators.limits import check_memory
from qapprox.dqn.evaluation import first_solved, reward_threshold
from qapprox.dqn.logging import parse_run_dir, run_dirs
from qapprox.dqn.trial_files import config_name, read_json
from qapprox.envs.validation import check_int

RETURN_TAG = "eval/mean_return"  # greedy evaluation return, logged by the training loop
TRAINING_RETURN_TAG = "charts/episodic_return"
Q_MAX_TAG = "losses/q_max_abs"  # the largest |q̂(S_i, a, w)| of the minibatches between two logs
GAP_TAG = "overestimation/gap"  # per episode: mean q̂(S_t, A_t, w) − mean observed G_t
DIVERGED_TAG = "charts/diverged"  # logged once, at the step where the divergence guard stopped the run
FINAL_FRACTION = 0.1  # the final overestimation gap: the episodes that ended in the last 10 % of the steps
METRICS = ("final_return", "steps_to_solve", "seconds_to_solve", "q_max_abs", "final_gap")
DIGITS = {"steps_to_solve": 0, "final_gap": 2}  # decimals in report.md; 1 for the others


# ---------------------------------------------------------------- statistics over seeds
def bootstrap_band(matrix: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap 95 % interval of the mean over rows (seeds), for every column.

    A resample draws n rows with replacement; its mean is c @ matrix / n with c ~ Multinomial(n, 1/n)."""
    n = matrix.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    low, high = np.percentile(counts @ matrix / n, [2.5, 97.5], axis=0)
    return low, high


def bootstrap_interval(values: np.ndarray) -> tuple[float, float]:
    """Bootstrap 95 % interval of the mean of values (seeded, 10,000 resamples)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    low, high = bootstrap_band(values[:, None])
    return float(low[0]), float(high[0])


def interquartile_mean(values: np.ndarray) -> float:
    """IQM: the mean of the middle half, dropping floor(n/4) values at each end (as rliable)."""
    values = np.sort(np.asarray(values, dtype=float))
    cut = values.size // 4
    return float(values[cut:values.size - cut].mean()) if values.size else math.nan


def statistics(values: list[float]) -> dict[str, float]:
    """mean, bootstrap 95 % interval and IQM over seeds, of the values that exist (solved runs)."""
    finite = np.array([v for v in values if not math.isnan(v)])
    low, high = bootstrap_interval(finite)
    return {"n": int(finite.size), "mean": float(finite.mean()) if finite.size else math.nan,
            "low": low, "high": high, "iqm": interquartile_mean(finite)}


# ---------------------------------------------------------------- one run, from its event files
def accumulate(path: Path):
    """TensorBoard's EventAccumulator over an event file or a run directory, keeping every point."""
    import logging

    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a resumed run's purge is expected, not news
    accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: no reservoir sampling
    return accumulator.Reload()


@dataclasses.dataclass
class Run:
    """A run directory as TensorBoard shows it: tag → (steps, values, wall times).

    Read by TensorBoard's EventAccumulator, which also drops what a killed attempt logged after the step
    its successor resumed from (the resumed writer's purge_step)."""

    directory: Path
    scalars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]

    @functools.cached_property
    def attempts(self) -> list[tuple[float, float]]:
        """(start, last) wall time of each event file: one per attempt of a resumed run."""
        spans = []
        for event_file in sorted(self.directory.glob("events.out.tfevents.*")):
            single = accumulate(event_file)
            walls = [e.wall_time for tag in single.Tags()["scalars"] for e in single.Scalars(tag)]
            start = single.FirstEventTimestamp()
            spans.append((start, max(walls, default=start)))
        return sorted(spans)

    def training_seconds(self, wall: np.ndarray) -> np.ndarray:
        """Seconds since the run started at each wall time, not counting the pauses between attempts."""
        seconds = wall - self.attempts[0][0]
        for (_, end), (start, _) in zip(self.attempts, self.attempts[1:]):
            seconds -= np.where(wall >= start, start - end, 0.0)
        return seconds

    def curve(self, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """steps, values and training seconds of one tag (empty arrays if it was never logged)."""
        empty = np.array([])
        steps, values, wall = self.scalars.get(tag, (empty, empty, empty))
        return steps, values, self.training_seconds(wall) if wall.size else empty

    def scalar(self, tag: str) -> tuple[np.ndarray, np.ndarray]:
        """steps and values of one tag; a tag the run never logged is a one-line ValueError naming those it did."""
        if tag not in self.scalars:
            raise ValueError(f"{self.directory} has no scalar tag {tag!r}; it has: {', '.join(sorted(self.scalars))}")
        return self.scalars[tag][:2]


def read_run(run_dir: str | Path) -> Run:
    """Every scalar of a run directory (the one reader of event files here)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    accumulator = accumulate(run_dir)
    scalars = {}
    for tag in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]),
                        np.array([e.wall_time for e in events]))
    return Run(run_dir, scalars)


# ---------------------------------------------------------------- a sweep's trials
def trial_run(trial_dir: Path, seed: int | None = None) -> Run | None:
    """The trial's run: its newest run directory (<env>__<name>__<seed>__<unix time>), of `seed` when
    given (a population trial holds one run directory per member).

    A resumed attempt writes into the run directory of its checkpoint; a new one is only made when
    an attempt died before its first checkpoint, and then the newest directory is the whole run."""
    runs = [p for p in run_dirs(trial_dir) if seed is None or parse_run_dir(p).seed == seed]
    newest = max(runs, key=lambda p: (parse_run_dir(p).time, p.stat().st_mtime), default=None)
    return read_run(newest) if newest is not None else None


def run_summary(run: Run | None, threshold: float | None) -> dict[str, float]:
    """Final greedy return; the first step (and training seconds) where the run was solved; the largest
    |q̂| seen in training; the final overestimation gap (the mean over the episodes that ended in the last
    FINAL_FRACTION of the run's steps); the step where it diverged. nan for what the run did not log."""
    empty = (np.array([]),) * 3
    steps, values, seconds = run.curve(RETURN_TAG) if run else empty
    solved = first_solved(values, threshold)
    q_max = run.curve(Q_MAX_TAG)[1] if run else empty[0]
    gap_steps, gaps, _ = run.curve(GAP_TAG) if run else empty
    final = gap_steps >= (1 - FINAL_FRACTION) * gap_steps[-1] if gap_steps.size else gap_steps.astype(bool)
    diverged = run.curve(DIVERGED_TAG)[0] if run else empty[0]
    return {"final_return": float(values[-1]) if values.size else math.nan,
            "steps_to_solve": float(steps[solved]) if solved is not None else math.nan,
            "seconds_to_solve": float(seconds[solved]) if solved is not None else math.nan,
            "q_max_abs": float(q_max.max()) if q_max.size else math.nan,
            "final_gap": float(gaps[final].mean()) if final.any() else math.nan,
            "diverged_step": float(diverged[0]) if diverged.size else math.nan}


def collect(sweep_dir: str | Path) -> list[dict]:
    """Every run of a sweep, one per seed (a population trial gives one per member): trial name, config
    name, seed, finished flag, its outcome (dqn.trial: finished or diverged, a member's own in done.json's
    "members"; running before done.json), the trial's attempts and the run (None before its first event)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep directory {sweep_dir}")
    runs = []
    for trial_file in sorted(sweep_dir.glob("*/trial.json")):
        trial = read_json(trial_file)
        done = read_json(trial_file.parent / "done.json")
        outcome = "running" if done is None else done.get("outcome", "finished")
        members = {m["seed"]: m["outcome"] for m in (done or {}).get("members", [])}
        attempts = len(read_json(trial_file.parent / "attempts.json", []))
        for seed in trial.get("seeds") or [trial["seed"]]:
            runs.append({"name": trial["name"], "config": config_name(trial["config"]), "env": trial["env"],
                         "seed": seed, "finished": done is not None, "outcome": members.get(seed, outcome),
                         "attempts": attempts, "run": trial_run(trial_file.parent, seed)})
    if not runs:
        raise FileNotFoundError(f"no trials (*/trial.json) in {sweep_dir}")
    return runs


def aggregate(runs: list[dict], threshold: float | None) -> tuple[list[dict], list[dict]]:
    """Per-run rows and per-configuration rows (finished runs only) of the report."""
    run_rows = [{"trial": r["name"], "config": r["config"], "seed": r["seed"], "finished": r["finished"],
                 "outcome": r["outcome"], "attempts": r["attempts"], **run_summary(r["run"], threshold)} for r in runs]
    config_rows = []
    for config in dict.fromkeys(r["config"] for r in run_rows):
        rows = [r for r in run_rows if r["config"] == config and r["finished"]]
        row = {"config": config, "seeds": len(rows), "solved": sum(not math.isnan(r["steps_to_solve"]) for r in rows),
               "diverged": sum(r["outcome"] == "diverged" for r in rows)}
        for metric in METRICS:
            row |= {f"{metric}_{k}": v for k, v in statistics([r[metric] for r in rows]).items() if k != "n"}
        config_rows.append(row)
    return run_rows, config_rows


def align(curves: list[tuple[np.ndarray, np.ndarray]], points: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid, matrix): the curves (steps, values) of several runs on one grid of steps, a row per run.

    The grid is the steps logged inside every run's range [max_i first_i, min_i last_i], or `points` evenly
    spaced steps there when more were logged (per-episode tags); each run is linearly interpolated onto it.
    Runs without a step range in common (one ended before another began) are a one-line ValueError, not
    a curve extrapolated flat."""
    check_int("points", points, 2)
    if not curves or any(steps.size == 0 for steps, _ in curves):
        raise ValueError("no curve to align: a run has no point of this tag")
    first, last = max(steps[0] for steps, _ in curves), min(steps[-1] for steps, _ in curves)
    if first > last:
        raise ValueError(f"the runs share no step range: one ends at step {last:,} before another begins at {first:,}")
    grid = np.unique(np.concatenate([steps for steps, _ in curves]))
    grid = grid[(grid >= first) & (grid <= last)]
    if grid.size > points:  # a regular grid keeps the figure and the bootstrap small
        grid = np.unique(np.linspace(first, last, points).round().astype(grid.dtype))
    return grid, np.stack([np.interp(grid, steps, values) for steps, values in curves])


def curve(runs: list[dict], tag: str, points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its bootstrap 95 % band on the aligned grid (align, at most `points` steps);
    empty arrays when no run has logged the tag yet."""
    series = [r["run"].curve(tag)[:2] for r in runs if r["run"] is not None]
    series = [(s, v) for s, v in series if s.size]
    if not series:
        return (np.array([]),) * 4
    steps, matrix = align(series, points)  # seeds × steps
    low, high = bootstrap_band(matrix)
    return steps, matrix.mean(0), low, high


# ---------------------------------------------------------------- figures and reports
def drawable(text: str) -> str:
    """text as matplotlib can draw it: an undecodable byte of a command line or a folder name (a lone
    surrogate such as '\\udcff') becomes U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate no command line makes
        return text.encode("utf-8", "replace").decode("utf-8")


def plot_curves(runs: list[dict], path: Path) -> None:
    """A sweep's greedy evaluation and training returns per configuration: mean with a bootstrap band."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and open figures stay as they are

    finished = [r for r in runs if r["finished"]]
    figure = Figure(figsize=(12, 4.5))
    axes = figure.subplots(1, 2)
    for axis, tag in zip(axes, (RETURN_TAG, TRAINING_RETURN_TAG)):
        for config in dict.fromkeys(r["config"] for r in finished):
            group = [r for r in finished if r["config"] == config]
            steps, mean, low, high = curve(group, tag)
            if steps.size:
                (line,) = axis.plot(steps, mean, marker="o" if steps.size == 1 else None,
                                    label=f"{config} (n={len(group)})")
                axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        axis.set(title=f"{tag}: mean over seeds, bootstrap 95 % band", xlabel="environment step", ylabel="return")
        axis.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _cell(row: dict, metric: str) -> str:
    mean, low, high, iqm = (row[f"{metric}_{k}"] for k in ("mean", "low", "high", "iqm"))
    if math.isnan(mean):
        return "—"
    digits = DIGITS.get(metric, 1)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] ({iqm:.{digits}f})"


def markdown(config_rows: list[dict], threshold: float | None) -> str:
    """The per-configuration table: mean [bootstrap 95 % interval] (IQM) of each metric."""
    solve = f"≥ {threshold:g}" if threshold is not None else "≥ a threshold (none known: --solve-threshold)"
    lines = [f"Mean [bootstrap 95 % interval] (interquartile mean) over seeds. Solved: greedy "
             f"evaluation return {solve}; steps and seconds to solve are over the solved seeds. Largest "
             f"|q̂|: the largest |q̂(S_i, a, w)| of any training minibatch. Final gap: mean q̂(S_t, A_t, w) − G_t "
             f"over the episodes of the last {FINAL_FRACTION:.0%} of the steps (> 0: overestimation). Diverged: "
             "stopped by the divergence guard (non-finite values); their other metrics are up to that step.", "",
             "| configuration | seeds | solved | diverged | final greedy return | steps to solve | seconds to solve "
             "| largest \\|q̂\\| | final gap |",
             "|---|---:|---:|---:|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['seeds']} | {r['solved']} | {r['diverged']} | "
              + " | ".join(_cell(r, m) for m in METRICS) + " |" for r in config_rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def report(sweep_dir: str | Path, threshold: float | None = None) -> dict[str, Path]:
    """Write a sweep's report.md, report.csv (per configuration), runs.csv (per run) and curves.png.
    threshold: the greedy return that counts as solved (default: the env's reward_threshold)."""
    sweep_dir = Path(sweep_dir)
    runs = collect(sweep_dir)
    threshold = reward_threshold(runs[0]["env"]) if threshold is None else threshold
    run_rows, config_rows = aggregate(runs, threshold)
    paths = {name: sweep_dir / name for name in ("report.md", "report.csv", "runs.csv", "curves.png")}
    paths["report.md"].write_text(markdown(config_rows, threshold))
    write_csv(paths["report.csv"], config_rows)
    write_csv(paths["runs.csv"], run_rows)
    plot_curves(runs, paths["curves.png"])
    return paths


# ---------------------------------------------------------------- learning curves of any runs
DPI = 120
PANEL_INCHES = 7
MAX_PANELS = 2**16 // (PANEL_INCHES * DPI)  # Agg draws at most 2**16 pixels across
POINT_BYTES = 256  # per point of a curve drawn: grid, mean, band, matplotlib's paths (measured ~190)


def group_name(run_dir: Path) -> str:
    """runs/<env>__<name>__<seed>__<time> → <env>__<name>: the seeds of one configuration, together.
    A folder not named by make_run_dir is a group of its own."""
    parsed = parse_run_dir(run_dir)
    return parsed.group if parsed is not None else run_dir.name


def plot_learning_curves(run_dirs: Iterable[str | Path], tags: list[str], out: str | Path, points: int = 200,
                         title: str | None = None) -> list[str]:
    """One panel per tag: each group of runs (group_name) as the mean over its seeds with a min–max band,
    on the group's aligned grid (align: at most `points` steps inside every run's range).

    Sizes are checked before any run is read, and every run is read before the figure is made. Returns
    one line per group and tag: its number of runs and final mean. Text is drawn as text (no $…$ mathtext)."""
    run_dirs = [Path(p) for p in run_dirs]
    check_int("points", points, 2)
    if len(tags) > MAX_PANELS:
        raise ValueError(f"--tag given {len(tags)} times; at most {MAX_PANELS} panels fit in one figure "
                         f"({PANEL_INCHES} inches each at {DPI} dpi, 2**16 pixels across)")
    check_memory(f"--points={points:,} for {len(run_dirs)} run(s) × {len(tags)} tag(s)",
                 float(points) * (8 * len(run_dirs) + POINT_BYTES) * len(tags))
    runs = [read_run(run_dir) for run_dir in run_dirs]
    groups: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}  # tag → group → curves
    for tag in tags:
        groups[tag] = defaultdict(list)
        for run in runs:
            groups[tag][group_name(run.directory)].append(run.scalar(tag))
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and open figures stay as they are

    aligned = {tag: {name: align(curves, points) for name, curves in groups[tag].items()} for tag in tags}
    lines = []
    with matplotlib.rc_context({"text.parse_math": False}):  # tags, run names and titles are text, not TeX
        figure = Figure(figsize=(PANEL_INCHES * len(tags), 4.5))
        all_axes = figure.subplots(1, len(tags), squeeze=False)
        for tag, axes in zip(tags, all_axes[0]):
            for name, (grid, values) in aligned[tag].items():
                curves = groups[tag][name]
                mean = values.mean(axis=0)
                axes.plot(grid, mean, label=drawable(f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})"))
                axes.fill_between(grid, values.min(axis=0), values.max(axis=0), alpha=0.2)
                lines.append(f"{name}: {len(curves)} run(s), final mean {tag} {mean[-1]:.2f} at step {int(grid[-1]):,}")
            axes.set_xlabel("environment steps")
            axes.set_ylabel(drawable(tag))
            axes.set_title(drawable(tag))
            axes.grid(alpha=0.3)
            axes.legend()
        if title:
            figure.suptitle(drawable(title))
        figure.tight_layout()
        figure.savefig(out, dpi=DPI)  # a Figure without pyplot: nothing stays open once it is drawn
    return lines
