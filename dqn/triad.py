"""The deadly triad inside DQN (Sutton & Barto §11.3): DQN's answers to it, removed one at a time, as a sweep.

Function approximation, bootstrapping and off-policy learning together can make w diverge even with
linear features and exact expectations (Baird's counterexample: envs.baird, approximators.off_policy).
DQN has all three — q̂(s, a, w) is a network, its target y = r^(n) + γ^n q̂(S_{t+n}, a*, w⁻) bootstraps,
and it learns the greedy policy from ε-greedy data — and adds two stabilisers. The ablation takes them
away over each env's preset (dqn.config.PRESETS):

    default    the preset
    no target  target_update_interval = 1, τ = 1: w⁻ = w after every step, so y moves with each update of w
    no replay  buffer_size = batch_size: each minibatch is drawn (uniformly, with replacement) from the
               latest B transitions only, consecutive and correlated, from the current behaviour policy
    neither    both

each at n = 3 and at n = 1: the n-step return leans on q̂ with weight γ^n, so n = 1 bootstraps the most.
A cell × n is one configuration of the sweep (dqn.sweep: trials, Ray, resume, report), seeds × envs.

    cells = configs("CartPole-v1")                     # label → the sweep configuration of each cell
    sweep_dir, trials = prepare("CartPole-v1", "0-4", root="runs/triad")
    paths = report("runs/triad", ["CartPole-v1"])      # triad.md, triad.csv and triad.png
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qapprox.dqn import analysis, sweep
from qapprox.dqn.config import resolve
from qapprox.dqn.ray_cluster import ClusterOptions
from qapprox.dqn.trial import Trial
from qapprox.dqn.trial_files import config_name

CELLS = ("default", "no target", "no replay", "neither")
N_STEPS = (3, 1)
ABLATED = ("target_update_interval", "tau", "buffer_size", "n_step")  # the keys every configuration sets
STYLES = {3: "-", 1: "--"}  # line style of n in the figure; colour is the cell


def label(cell: str, n: int) -> str:
    return f"{cell}, n={n}"


def configs(env: str) -> dict[str, dict[str, str]]:
    """label → the sweep configuration (DQNConfig field → value, spelled as dqn.sweep.canonical spells it)
    of each cell × n over the env's preset (the defaults for an env without one); every configuration sets
    the ABLATED keys, so that each trial's name says what it ran."""
    base = resolve({"env_id": env})[0]
    fields = sweep.config_fields()
    cells = {}
    for cell in CELLS:
        values = {"target_update_interval": base.target_update_interval, "tau": base.tau,
                  "buffer_size": base.buffer_size}
        if cell in ("no target", "neither"):
            values |= {"target_update_interval": 1, "tau": 1.0}
        if cell in ("no replay", "neither"):
            values["buffer_size"] = base.batch_size
        for n in N_STEPS:
            spelled = {key: sweep.canonical(key, str(value), fields) for key, value in (values | {"n_step": n}).items()}
            cells[label(cell, n)] = dict(sorted(spelled.items()))
    return cells


def env_dir(root: str | Path, env: str) -> Path:
    """root/<env>, with an ALE-style "/" as "-": one sweep directory per env."""
    return Path(root) / env.replace("/", "-")


def prepare(env: str, seeds: str, root: str | Path, total_timesteps: int | None = None,
            cluster: ClusterOptions | None = None) -> tuple[Path, list[Trial]]:
    """The env's cells × seeds as sweep trials in root/<env>, every value checked (dqn.sweep.prepare_trials);
    nothing is started or written."""
    directory = env_dir(root, env)
    cells = list(configs(env).values())
    return directory, sweep.prepare_trials(directory, env, seeds, cells, {}, total_timesteps, cluster or ClusterOptions())


def run(envs: list[str], seeds: str, root: str | Path, total_timesteps: int | None,
        cluster: ClusterOptions) -> list[str]:
    """Every env's trials (all checked before the first starts), one sweep per env; the failures' messages.
    A run stopped by the divergence guard is a result (dqn.trial), not a failure."""
    prepared = [prepare(env, seeds, root, total_timesteps, cluster) for env in envs]
    failures = []
    for directory, trials in prepared:
        sweep.make_sweep_dir(directory)
        failures += sweep.run(directory, trials, cluster)
        analysis.report(directory)  # the env's own sweep report: report.md, CSVs, curves.png
    return failures


# ---------------------------------------------------------------- the table and the figure
def collect(root: str | Path, envs: list[str]) -> dict[str, list[dict]]:
    """env → every trial of its sweep in root/<env> (dqn.analysis.collect: the event files read once)."""
    return {env: analysis.collect(env_dir(root, env)) for env in envs}


def rows(collected: dict[str, list[dict]]) -> list[dict]:
    """One row per env × cell × n: the sweep report's statistics over the finished seeds (dqn.analysis),
    with the env, the cell and n named."""
    table = []
    for env, runs in collected.items():
        _, config_rows = analysis.aggregate(runs, analysis.reward_threshold(env))
        by_name = {row["config"]: row for row in config_rows}
        for name, values in configs(env).items():
            row = by_name.get(config_name(values))
            if row is not None:
                cell, n = name.rsplit(", n=", 1)
                table.append({"env": env, "cell": cell, "n_step": int(n), **row})
    if not table:
        raise FileNotFoundError(f"no triad trials for {', '.join(collected)}")
    return table


def _cell(row: dict, metric: str, digits: int) -> str:
    mean, low, high = (row[f"{metric}_{k}"] for k in ("mean", "low", "high"))
    return "—" if math.isnan(mean) else f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(table: list[dict]) -> str:
    """The ablation table: mean [bootstrap 95 % interval] over seeds (dqn.analysis.statistics)."""
    lines = ["| env | cell | n | solved | diverged | steps to solve | final greedy return | largest \\|q̂\\| "
             "| final gap q̂ − G |", "|---|---|---:|---:|---:|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['env']} | {row['cell']} | {row['n_step']} | {row['solved']}/{row['seeds']} | "
                     f"{row['diverged']} | {_cell(row, 'steps_to_solve', 0)} | {_cell(row, 'final_return', 1)} | "
                     f"{_cell(row, 'q_max_abs', 1)} | {_cell(row, 'final_gap', 2)} |")
    return "\n".join(lines) + "\n"


PANELS = ((analysis.RETURN_TAG, "greedy return", "linear", 1), (analysis.Q_MAX_TAG, "largest |q̂| (log)", "log", 1),
          (analysis.GAP_TAG, "overestimation gap q̂ − G (symlog, smoothed)", "symlog", 9))  # tag, title, y, smoothing


def moving_mean(values: np.ndarray, points: int) -> np.ndarray:
    """The mean of each run of `points` consecutive values (fewer at the ends): per-episode tags are noisy."""
    if points == 1 or values.size < points:
        return values
    kernel = np.ones(points)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def plot(collected: dict[str, list[dict]], path: Path) -> None:
    """A row per env: greedy return, largest |q̂| and the overestimation gap of each cell × n over the
    steps, as the mean over seeds with its bootstrap 95 % band (dqn.analysis.curve)."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend stays as it is

    colours = dict(zip(CELLS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    figure = Figure(figsize=(16, 4.2 * len(collected)))
    axes = figure.subplots(len(collected), len(PANELS), squeeze=False)
    for (env, trials), env_axes in zip(collected.items(), axes):
        runs = [r for r in trials if r["finished"]]
        for name, values in configs(env).items():
            group = [r for r in runs if r["config"] == config_name(values)]
            cell, n = name.rsplit(", n=", 1)
            for axis, (tag, _, _, points) in zip(env_axes, PANELS):
                steps, *lines = analysis.curve(group, tag)
                if steps.size:
                    mean, low, high = (moving_mean(line, points) for line in lines)
                    axis.plot(steps, mean, STYLES[int(n)], color=colours[cell], label=f"{name} ({len(group)})")
                    axis.fill_between(steps, low, high, color=colours[cell], alpha=0.12)
        for axis, (_, title, scale, _) in zip(env_axes, PANELS):
            axis.set(title=f"{env}: {title}", xlabel="environment step", yscale=scale)
            axis.grid(alpha=0.3)
        labelled = [axis for axis in env_axes if axis.get_legend_handles_labels()[0]]
        if labelled:
            labelled[0].legend(fontsize=7)
    figure.suptitle("DQN without its answers to the deadly triad: mean over seeds, bootstrap 95 % band")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def report(root: str | Path, envs: list[str]) -> dict[str, Path]:
    """Write root/triad.md, triad.csv (a row per env × cell × n) and triad.png; return their paths."""
    root = Path(root)
    collected = collect(root, envs)
    table = rows(collected)
    paths = {name: root / name for name in ("triad.md", "triad.csv", "triad.png")}
    paths["triad.md"].write_text(markdown(table))
    analysis.write_csv(paths["triad.csv"], table)
    plot(collected, paths["triad.png"])
    return paths
