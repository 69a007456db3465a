"""The benchmark's results: their JSON files (`write`), summaries, the Markdown table and learning-curve PNGs.

A run (one dict per training run, as `worker.measure` or `cleanrl.run` returns it) has `episodes`:
rows (environment steps done, seconds since training began, return). It is solved at the first row
where `evaluation.first_solved` finds the mean of the last SOLVE_WINDOW training returns ≥ the env's
reward threshold (475 on CartPole-v1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from qapprox.dqn.evaluation import first_solved, reward_threshold, rolling_mean

SOLVE_WINDOW = 10  # training episodes: every side is judged on its own, CleanRL's script cannot evaluate
LEGACY_ENV_ID = "CartPole-v1"  # the env of result files written before runs recorded theirs
LABELS = {  # (kind, preset) → the name shown in tables and legends
    ("qapprox", "sb3-zoo-cartpole"): "qapprox @ zoo preset",
    ("sb3", "sb3-zoo-cartpole"): "SB3 @ zoo preset",
    ("qapprox", "CartPole-v1"): "qapprox @ default preset",
    ("qapprox", "cleanrl-cartpole"): "qapprox @ cleanrl preset",
    ("cleanrl", "cleanrl-defaults"): "CleanRL dqn.py @ its defaults",
}


def write(path: Path, data: dict) -> None:
    """A result file of the benchmark (every suite's, linear.json, memory.json): data as JSON at path, its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def label(run: dict) -> str:
    return LABELS.get((run["kind"], run["preset"]), f"{run['kind']} @ {run['preset']}")


def run_threshold(run: dict) -> float | None:
    """The reward threshold of the run's env (gymnasium's registry)."""
    return reward_threshold(run.get("env_id", LEGACY_ENV_ID))


def solve_point(episodes: list, threshold: float | None) -> tuple[int, float] | None:
    """(step, seconds) of the first episode end where the last-SOLVE_WINDOW mean of training returns is
    ≥ threshold (`evaluation.first_solved`)."""
    if not episodes:
        return None
    rows = np.asarray(episodes, dtype=float)
    first = first_solved(rows[:, 2], threshold, window=SOLVE_WINDOW)
    return None if first is None else (int(rows[first, 0]), float(rows[first, 1]))


def describe(run: dict) -> dict[str, Any]:
    """One table row of a run: the numbers the benchmark reports per seed."""
    solved = solve_point(run["episodes"], run_threshold(run))
    threads = run.get("thread_setting", run["threads"])
    if threads == "default" and isinstance(run["threads"], int):
        threads = f"default = {run['threads']}"
    return {"label": label(run), "seed": run["seed"], "threads": threads, "steps": run["steps"],
            "seconds": run["seconds"], "sps": run["sps"],
            "solve_step": solved[0] if solved else None, "solve_seconds": solved[1] if solved else None,
            "eval_mean": float(np.mean(run["eval_returns"])) if run["eval_returns"] else None,
            "load": run.get("load_before")}


def spread(values: list[float | None]) -> dict[str, float | int]:
    """Median and range; None (never solved) counts as +inf, so a median can be 'not solved'."""
    numbers = [math.inf if v is None else float(v) for v in values]
    return {"median": median(numbers), "min": min(numbers), "max": max(numbers), "n": len(numbers),
            "unsolved": sum(v is None for v in values)}


def summarise(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """Per label: median and range of seconds, SPS, solve step, solve seconds and greedy evaluation mean."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(label(run), []).append(describe(run))
    summary = {}
    for name, group in groups.items():
        stats = {key: spread([row[key] for row in group]) for key in ("steps", "seconds", "sps", "solve_step", "solve_seconds")}
        evals = [row["eval_mean"] for row in group if row["eval_mean"] is not None]
        if evals:
            stats["eval_mean"] = spread(evals)
        summary[name] = stats
    return summary


def targets(summary: dict[str, dict], floors: dict[str, dict]) -> list[dict[str, Any]]:
    """The issue's targets as measured ratios (medians); missing sides are left out."""
    q_zoo, sb3 = summary.get("qapprox @ zoo preset"), summary.get("SB3 @ zoo preset")
    q_default, q_clean = summary.get("qapprox @ default preset"), summary.get("qapprox @ cleanrl preset")
    clean = summary.get("CleanRL dqn.py @ its defaults")
    out = []
    if q_zoo and sb3:
        out.append({"target": "SPS at the zoo preset, qapprox / SB3", "goal": "≥ 2 (stretch 3)",
                    "ratio": q_zoo["sps"]["median"] / sb3["sps"]["median"], "met": q_zoo["sps"]["median"] >= 2 * sb3["sps"]["median"]})
    if q_clean and clean:
        ratio = q_clean["sps"]["median"] / clean["sps"]["median"]
        out.append({"target": "SPS at CleanRL's preset, qapprox / CleanRL", "goal": "≥ 1.5", "ratio": ratio, "met": ratio >= 1.5})
    for name, group in (("sb3-zoo-cartpole", q_zoo), ("CartPole-v1", q_default), ("cleanrl-cartpole", q_clean)):
        if group and name in floors:
            overhead = floors[name]["floor_sps"] / group["sps"]["median"] - 1.0
            out.append({"target": f"overhead over the floor at {name} (floor SPS / training SPS − 1)", "goal": "≤ 0.10",
                        "ratio": overhead, "met": overhead <= 0.10})
    if q_default and sb3:
        # A baseline that never solved took more than its run: the ratio is then only bounded above.
        for key, goal, length in (("solve_step", 0.5, "steps"), ("solve_seconds", 0.25, "seconds")):
            ours, theirs = q_default[key]["median"], sb3[key]["median"]
            bound = math.isinf(theirs)
            ratio = None if math.isinf(ours) else ours / (sb3[length]["median"] if bound else theirs)
            out.append({"target": f"{key.replace('_', ' ')} to solve, qapprox default / SB3 zoo", "goal": f"≤ {goal}",
                        "ratio": ratio, "upper_bound": bound, "met": ratio is not None and ratio <= goal})
    return out


# ---------------------------------------------------------------------- Markdown
def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "not solved"
    return f"{value:,.{digits}f}"


def _cell(stats: dict, digits: int = 0) -> str:
    if stats.get("unsolved") == stats["n"]:
        return f"not solved ({stats['n']}/{stats['n']})"
    unsolved = f", {stats['unsolved']}/{stats['n']} unsolved" if stats.get("unsolved") else ""
    return f"{_number(stats['median'], digits)} ({_number(stats['min'], digits)} – {_number(stats['max'], digits)}{unsolved})"


def markdown(results: dict[str, dict]) -> str:
    """BENCHMARKS-style Markdown: per-seed rows, medians with ranges, the floor and the targets."""
    lines = ["# DQN benchmark", "", "Drawn from the result files of these commands:", ""]
    floors = results.get("floor", {}).get("floors", {})
    runs = [run for suite in ("sb3", "default", "cleanrl") for run in results.get(suite, {}).get("runs", [])]
    for command in dict.fromkeys(data["command"] for data in results.values()):
        suites = [suite for suite, data in results.items() if data["command"] == command]
        data = results[suites[0]]
        lines += [f"- suites {', '.join(suites)}: `{command}`", f"  - machine: {data['machine']}",
                  "  - versions: " + ", ".join(f"{name} {version}" for name, version in data["versions"].items())]
        lines += [f"  - {note}" for suite in suites for note in results[suite].get("notes", [])]
    if runs:
        lines += ["", "## Per run", "",
                  "| side | seed | threads | wall s | env steps/s | solve step | solve s | greedy eval (20) | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in map(describe, runs):
            lines.append(f"| {row['label']} | {row['seed']} | {row['threads']} | {row['seconds']:.1f} | {row['sps']:,.0f} | "
                         f"{_number(row['solve_step'])} | {_number(row['solve_seconds'], 1)} | {_number(row['eval_mean'], 1)} | "
                         f"{_number(row['load'], 2)} |")
        summary = summarise(runs)
        lines += ["", "## Medians (range)", "",
                  "| side | runs | wall s | env steps/s | solve step | solve s | greedy eval |", "|---|---|---|---|---|---|---|"]
        for name, stats in summary.items():
            lines.append(f"| {name} | {stats['sps']['n']} | {_cell(stats['seconds'], 1)} | {_cell(stats['sps'])} | "
                         f"{_cell(stats['solve_step'])} | {_cell(stats['solve_seconds'], 1)} | "
                         f"{_cell(stats['eval_mean'], 1) if 'eval_mean' in stats else '–'} |")
    if floors:
        lines += ["", "## Floor (one thread; best of 3 timings)", "",
                  "| preset | env step µs | vector env (N=1) µs | vector env (N=8) µs per env | act (batch 1) µs | "
                  "update fused Adam µs | update default Adam µs | update qapprox µs | updates / env step | floor SPS |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, f in floors.items():
            lines.append(f"| {name} | {f['env_step'] * 1e6:.1f} | {f['vector_env_step_n1'] * 1e6:.1f} | "
                         f"{f['vector_env_step_n8'] * 1e6:.1f} | {f['act_batch1'] * 1e6:.1f} | {f['update_fused_adam'] * 1e6:.0f} | "
                         f"{f['update_default_adam'] * 1e6:.0f} | {_number(f['update_qapprox'] * 1e6 if 'update_qapprox' in f else None)} | "
                         f"{f['updates_per_env_step']:.3g} | {f['floor_sps']:,.0f} |")
    if runs:
        lines += ["", "## Targets (medians)", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for t in targets(summary, floors):
            measured = "n/a (qapprox did not solve)" if t["ratio"] is None else _number(t["ratio"], 2)
            if t.get("upper_bound"):
                measured = f"< {measured} (SB3's median never solved: bounded by its full run)"
            lines.append(f"| {t['target']} | {t['goal']} | {measured} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- learning curves
def plot(runs: list[dict], path: Path, title: str) -> None:
    """Last-10 mean of training returns against environment steps (left) and wall seconds (right), saved
    to path. A matplotlib Figure outside pyplot: the caller's backend is left alone, nothing to close."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5))
    by_step, by_time = figure.subplots(1, 2)
    colours: dict[str, str] = {}
    for run in runs:
        if not run["episodes"]:
            continue
        rows = np.asarray(run["episodes"], dtype=float)
        curve = rolling_mean(rows[:, 2], SOLVE_WINDOW)
        name = label(run)
        first = name not in colours
        colours.setdefault(name, f"C{len(colours)}")
        for axis, x in ((by_step, rows[:, 0]), (by_time, rows[:, 1])):
            axis.plot(x, curve, color=colours[name], alpha=0.8, linewidth=1.2, label=name if first else None)
    for axis, xlabel in ((by_step, "environment steps"), (by_time, "wall seconds of training")):
        for line in {run_threshold(run) for run in runs} - {None}:
            axis.axhline(line, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(f"mean of the last {SOLVE_WINDOW} training returns")
        axis.grid(alpha=0.3)
    by_step.legend(loc="lower right", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
