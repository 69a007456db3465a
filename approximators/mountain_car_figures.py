"""Sutton & Barto's Mountain Car figures (10.1, 10.2, 10.4, 12.10) from approximators.tile_control, as matplotlib
Figures (no pyplot: figure.savefig(path)) and the numbers behind them.

    data = figure_data("10.2", runs=100)          # the book's protocol: 100 runs × 500 episodes
    draw(data).savefig("figure_10_2.png")

Every figure uses the book's coding, 8 tilings of 8 × 8 tiles (4096-entry index table per action), ε = 0, γ = 1,
w = 0. DEFAULTS are smaller than the book's protocol (fewer runs, episodes and α points) so that a figure takes
about a minute on two cores; BOOK holds the book's. Episodes that have not finished after max_steps lockstep
steps (episodes × 1000: a mean of 1000 steps is off every chart) count as nan and their points are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qapprox.approximators.tile_control import HIGH, LOW, N_ACTIONS, control
from qapprox.envs.validation import check_choice, check_int

FIGURES = ("10.1", "10.2", "10.4", "12.10")
# Per figure: runs, episodes, α·8 values, n or λ values (None where the figure has no such axis).
DEFAULTS = {
    "10.1": dict(runs=1, episodes=1000, alphas8=(0.5,), second=None),
    "10.2": dict(runs=5, episodes=500, alphas8=(0.1, 0.2, 0.5), second=None),
    "10.4": dict(runs=3, episodes=50, alphas8=(0.2, 0.5, 0.8, 1.1, 1.4), second=(1, 2, 4, 8, 16)),
    "12.10": dict(runs=3, episodes=50, alphas8=(0.2, 0.5, 0.8, 1.1, 1.4, 1.7), second=(0.0, 0.68, 0.84, 0.92, 0.96, 0.99)),
}
BOOK = {
    "10.1": dict(runs=1, episodes=9000, alphas8=(0.5,), second=None),
    "10.2": dict(runs=100, episodes=500, alphas8=(0.1, 0.2, 0.5), second=None),
    "10.4": dict(runs=100, episodes=50, alphas8=tuple(np.round(np.arange(0.1, 1.75, 0.1), 2)), second=(1, 2, 4, 8, 16)),
    "12.10": dict(runs=100, episodes=50, alphas8=tuple(np.round(np.arange(0.1, 2.05, 0.1), 2)),
                  second=(0.0, 0.68, 0.84, 0.92, 0.96, 0.98, 0.99)),
}
STEPS_PER_EPISODE_CAP = 1000  # max_steps = episodes × this (module doc)
PANELS = (1, 12, 104, 1000, 9000)  # Figure 10.1: the cost-to-go after these episodes (those ≤ episodes)
GRID = 60                           # Figure 10.1: positions × velocities at which −max_a q̂ is drawn


@dataclass(frozen=True)
class FigureData:
    """What a figure shows: mean_steps[i, j] is configuration (second[i], alphas8[j])'s steps per episode averaged
    over the runs and the episodes (10.4, 12.10), or curves[j] its mean over runs per episode (10.2);
    cost_to_go[k] the grid of −max_a q̂ after panels[k] episodes (10.1)."""

    number: str
    runs: int
    episodes: int
    seed: int
    alphas8: tuple[float, ...]
    second: tuple | None
    seconds: float
    curves: list | None = None
    mean_steps: list | None = None
    panels: tuple[int, ...] | None = None
    cost_to_go: list | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def figure_data(number: str, runs: int | None = None, episodes: int | None = None, seed: int = 0,
                alphas8=None, second=None) -> FigureData:
    """Run Figure `number`'s configurations (DEFAULTS where an argument is None; α given as α·8, the x axis)."""
    number = check_choice("figure", number, FIGURES)
    spec = DEFAULTS[number]
    runs = check_int("runs", spec["runs"] if runs is None else runs, 1)
    episodes = check_int("episodes", spec["episodes"] if episodes is None else episodes, 1)
    alphas8 = tuple(float(a) for a in (spec["alphas8"] if alphas8 is None else alphas8))
    second = spec["second"] if second is None else tuple(second)
    cap = episodes * STEPS_PER_EPISODE_CAP
    if number == "10.1":
        panels = tuple(k for k in PANELS if k < episodes) + (episodes,)
        result = control(episodes, runs=1, alpha=alphas8[0] / 8, seed=seed, snapshots=panels)
        costs = [cost_to_go(result.coder, w[0, 0]).reshape(GRID, GRID).tolist() for w in result.snapshots]
        return FigureData(number, 1, episodes, seed, alphas8[:1], None, result.seconds, panels=panels,
                          cost_to_go=costs)
    kwargs = configurations(number, alphas8, second)
    result = control(episodes, runs=runs, seed=seed, max_steps=cap, **kwargs)
    if number == "10.2":
        return FigureData(number, runs, episodes, seed, alphas8, None, result.seconds,
                          curves=_listed(result.mean_steps))
    mean = result.steps.mean(axis=(1, 2)).reshape(len(second), len(alphas8))  # over runs and episodes
    return FigureData(number, runs, episodes, seed, alphas8, second, result.seconds, mean_steps=_listed(mean))


def configurations(number: str, alphas8, second) -> dict:
    """control()'s keyword arguments for the figure's configurations: alpha (and n or lam, trace) per
    configuration, the values of `second` outer and α inner (the order of FigureData.mean_steps' rows)."""
    if number in ("10.1", "10.2"):
        return {"alpha": np.array(alphas8, dtype=float) / 8}
    a, s = np.meshgrid(np.array(alphas8) / 8, np.array(second), indexing="xy")  # (len(second), len(alphas8))
    if number == "10.4" and not np.all(s == np.round(s)):
        raise ValueError(f"Figure 10.4's values are n, integers ≥ 1; got {list(second)}")
    if number == "10.4":
        return {"alpha": a.ravel(), "n": s.ravel().astype(np.int64)}
    return {"alpha": a.ravel(), "lam": s.ravel(), "trace": "replacing"}


def cost_to_go(coder, w: np.ndarray) -> np.ndarray:
    """−max_a q̂(s, a, w) at the GRID × GRID positions × velocities of Figure 10.1 (row = velocity), flat."""
    return -coder.q_values(w, _grid(), N_ACTIONS).max(-1)


def _grid() -> np.ndarray:
    position, velocity = np.linspace(LOW[0], HIGH[0], GRID), np.linspace(LOW[1], HIGH[1], GRID)
    return np.stack(np.meshgrid(position, velocity, indexing="xy"), -1).reshape(-1, 2)  # row = velocity


def _listed(a: np.ndarray) -> list:
    """nan → None, for JSON."""
    return np.where(np.isfinite(a), a, None).tolist()


def _as_float(rows: list) -> np.ndarray:
    return np.array(rows, dtype=float)  # None → nan


def draw(data: FigureData):
    """The figure of `data` in the book's layout."""
    from matplotlib.figure import Figure

    protocol = f"{data.runs} run{'s' if data.runs > 1 else ''}, seed {data.seed}"
    if data.number == "10.1":
        fig = Figure(figsize=(4.0 * len(data.panels), 4.2))
        grid = _grid().reshape(GRID, GRID, 2)
        for k, (episode, cost) in enumerate(zip(data.panels, data.cost_to_go)):
            ax = fig.add_subplot(1, len(data.panels), k + 1, projection="3d")
            ax.plot_surface(grid[..., 0], grid[..., 1], np.array(cost), cmap="viridis", linewidth=0)
            ax.set(title=f"Episode {episode}", xlabel="Position", ylabel="Velocity", zlabel="")
            ax.tick_params(labelsize=7)
        fig.suptitle(f"Figure 10.1: cost-to-go $-\\max_a \\hat q(s, a, w)$, semi-gradient SARSA, "
                     f"α = {data.alphas8[0]:g}/8, 8 tilings")
        return fig
    fig = Figure(figsize=(7.5, 5.2))
    ax = fig.add_subplot()
    if data.number == "10.2":
        episodes = np.arange(1, data.episodes + 1)
        for alpha8, curve in zip(data.alphas8, data.curves):
            ax.plot(episodes, _as_float(curve), label=f"α = {alpha8:g}/8")
        ax.set(yscale="log", xlabel="Episode", ylabel=f"Mountain Car steps per episode (log scale, mean of {protocol})",
               title="Figure 10.2: semi-gradient SARSA with tile coding")
    else:
        name = "n" if data.number == "10.4" else "λ"
        for value, row in zip(data.second, data.mean_steps):
            ax.plot(data.alphas8, _as_float(row), marker="o", markersize=3, label=f"{name} = {value:g}")
        low = np.nanmin(_as_float(data.mean_steps))  # the book cuts its axis at 300 steps
        ax.set_ylim(min(low - 10, 220 if data.number == "10.4" else 170), 300)
        kind = "n-step semi-gradient SARSA" if data.number == "10.4" else "SARSA(λ), replacing traces"
        ax.set(xlabel="α × number of tilings (8)",
               ylabel=f"steps per episode, mean of the first {data.episodes} episodes and {protocol}",
               title=f"Figure {data.number}: {kind}")
    ax.legend()
    return fig
