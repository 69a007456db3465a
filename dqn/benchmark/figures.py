"""Figures 9.1–9.10 and 10.1–12.10 at their protocols against a plain per-run Python loop (what
benchmarks/figures.json holds: `figures_benchmark` writes it).

Batched: the whole figure as its script makes it (prediction_figures.figure_numbers, mountain_car_figures.
figure_data), timed once at the book's protocol (BOOK; DEFAULT(S) with quick=True).

Loop, prediction (1000-state walk): semi_gradient.n_step_td_loop, one configuration and one run at a time, on
the first chunk of episodes `learn` samples (the same generator, so the same episodes): the first `loop_runs`
runs (9.1 and 9.2 left have one run: its first CHUNK_EPISODES episodes), every configuration. It is
extrapolated to the protocol in proportion to time steps, configs × runs × episodes × E[T] (E[T] from the walk's
model, monte_carlo.episode_lengths). The batched n_step_td on those same episodes must give the loop's w to
rounding (relative 1e-9; runs that diverge must diverge in both).

Loop, control (Mountain Car): `sarsa_loop`, the book's boxed algorithms (§10.2 n-step SARSA, §12.7 SARSA(λ)) for
one run of one configuration on gymnasium's own MountainCar-v0 (unwrapped: no time limit), a dense w of
|A|·size and scalar work per step, with tile_control's coder, ε-greedy and per-row random stream (RowGenerator),
so that a run takes the steps per episode of the batched run with its seed exactly. It is timed on `loop_runs`
(configuration, run 0) rows spread over the configurations, checked against a batched `control` of those rows,
and extrapolated to the protocol by environment steps, Σ over configurations of runs × the steps the figure
reports: a lower bound where some run hit the figure's cap (that configuration's mean is None), so the speed-up
is one too; `_upper` counts every run of such a configuration at the cap. Figure 10.1 is one run: the loop runs all of
it and its cost-to-go must equal the figure's last panel.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from qapprox.approximators import mountain_car_figures as mcf
from qapprox.approximators import prediction_figures as pf
from qapprox.approximators.monte_carlo import episode_lengths
from qapprox.approximators.policies import epsilon_greedy
from qapprox.approximators.semi_gradient import n_step_td, n_step_td_loop, stack_features
from qapprox.approximators.tile_control import N_ACTIONS, RowGenerator, control, mountain_car_coder
from qapprox.approximators.tile_coding import TileCoder
from qapprox.approximators.traces import EpisodeBatch
from qapprox.approximators.walk_features import walk_features
from qapprox.dqn.benchmark.report import write
from qapprox.envs.random_walk import random_walk_1000
from qapprox.envs.validation import check_choice, check_int, check_seed

FIGURES = pf.FIGURES + mcf.FIGURES
TOLERANCE = 1e-9  # relative difference allowed between loop and batched weights (different rounding order)


# ------------------------------------------------------------------ the plain SARSA loop (one run)
def sarsa_loop(episodes: int, *, alpha: float, n: int | None = None, lam: float | None = None,
               trace: str = "replacing", epsilon: float = 0.0, gamma: float = 1.0, seed: int = 0,
               max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray, TileCoder]:
    """One run of n-step semi-gradient SARSA (lam None; n = 1 by default) or SARSA(λ) on MountainCar-v0 from
    w = 0, as the book's boxes write them (tile_control's doc has the equations). Returns (the steps of each
    episode, nan for those not ended after max_steps environment steps; w of |A|·size; the coder)."""
    if n is not None and lam is not None:
        raise ValueError("give n (n-step SARSA) or lam (SARSA(λ)), not both")
    episodes = check_int("episodes", episodes, 1)
    env = gym.make("MountainCar-v0").unwrapped                     # the book's task: no time limit
    coder = mountain_car_coder()
    rng = RowGenerator.from_seeds([seed])                           # the stream of row `seed` of `control`
    w = np.zeros(N_ACTIONS * coder.size)
    actions, n = np.arange(N_ACTIONS), 1 if n is None else n
    steps, total = np.full(episodes, np.nan), 0

    def tiles(s) -> np.ndarray:                                     # i(s, a) for every a: (|A|, tilings)
        return coder.active_sa(np.asarray(s)[None, :], actions, N_ACTIONS)

    def policy(i_all: np.ndarray) -> int:                           # A ~ ε-greedy(q̂(s, ·, w)), ties at random
        return int(epsilon_greedy(w[i_all].sum(-1)[None], epsilon, rng, random_ties=True)[0])

    s, _ = env.reset(seed=seed)
    for e in range(episodes):
        if e:
            s, _ = env.reset()
        start, ended = total, False
        i_all = tiles(s)
        a = policy(i_all)
        if lam is None:                                             # n-step SARSA, §10.2's box
            F, R, T, t = [i_all[a]], [0.0], np.inf, 0               # F[t] = i(S_t, A_t), R[t] = R_t
            while True:
                if t < T:
                    s, r, terminated, _, _ = env.step(a)
                    total += 1
                    R.append(r)
                    if terminated:
                        T = t + 1
                    else:
                        i_all = tiles(s)
                        a = policy(i_all)
                        F.append(i_all[a])
                tau = t - n + 1
                if tau >= 0:
                    G = sum(gamma ** (i - tau - 1) * R[i] for i in range(tau + 1, min(tau + n, T) + 1))  # (10.4)
                    if tau + n < T:
                        G += gamma**n * w[F[tau + n]].sum()
                    w[F[tau]] += alpha * (G - w[F[tau]].sum())      # (10.5), x binary
                ended = tau == T - 1
                if ended or (T == np.inf and max_steps is not None and total >= max_steps):
                    break
                t += 1
        else:                                                       # SARSA(λ), §12.7's box
            F, z = i_all[a], np.zeros_like(w)
            while True:
                s, r, ended, _, _ = env.step(a)
                total += 1
                delta = r - w[F].sum()                              # δ ← R − Σ_{i∈F(S,A)} w_i
                if trace == "accumulating":
                    z[F] += 1.0
                else:
                    z[F] = 1.0
                if ended:
                    w += alpha * delta * z
                    break
                i_all = tiles(s)
                a = policy(i_all)
                delta += gamma * w[i_all[a]].sum()                  # δ ← δ + γ Σ_{i∈F(S',A')} w_i
                w += alpha * delta * z
                z *= gamma * lam
                F = i_all[a]
                if max_steps is not None and total >= max_steps:
                    break
        if not ended:                                               # the cap: this episode and the rest are nan
            break
        steps[e] = total - start
        if max_steps is not None and total >= max_steps:
            break
    return steps, w, coder


# ------------------------------------------------------------------ prediction: Figures 9.1, 9.2, 9.5, 9.10
def _prediction_parts(figure: str, protocol: dict) -> list[dict[str, Any]]:
    """What `figure_numbers` learns, as parts of (features per config, n, α, runs, episodes): 9.2 has two."""
    mdp = random_walk_1000()
    if figure in ("9.1", "9.2"):
        parts = [{"name": "state values", "X": [walk_features(mdp, "aggregation", groups=10)],
                  "n": [np.inf if figure == "9.1" else 1.0], "alpha": [protocol["alpha"]], "runs": 1,
                  "episodes": protocol["episodes"]}]
        if figure == "9.2":
            n, alpha = pf.sweep_configs()
            parts.append({"name": "n-step sweep", "X": [walk_features(mdp, "aggregation", groups=20)] * n.size,
                          "n": n.tolist(), "alpha": alpha.tolist(), "runs": protocol["runs"], "episodes": 10})
        return parts
    X, alpha = pf.basis_curves(mdp, figure)
    return [{"name": "gradient MC", "X": list(X.values()), "n": [np.inf] * len(X), "alpha": list(alpha.values()),
             "runs": protocol["runs"], "episodes": protocol["episodes"]}]


def _agree(batched: np.ndarray, loop: np.ndarray) -> float:
    """The largest relative difference of two weight histories where neither diverged (|w| < 1e6); inf when
    they disagree on which ones diverged."""
    ok_b, ok_l = np.isfinite(batched) & (np.abs(batched) < 1e6), np.isfinite(loop) & (np.abs(loop) < 1e6)
    if not np.array_equal(ok_b, ok_l):
        return float("inf")
    if not ok_b.any():
        return 0.0
    return float(np.max(np.abs(batched[ok_b] - loop[ok_b]) / np.maximum(1.0, np.abs(batched[ok_b]))))


def prediction_loop(figure: str, protocol: dict, loop_runs: int, seed: int) -> dict[str, Any]:
    """The loop on the first chunk of each part's episodes (module doc), its extrapolation and its check."""
    mdp = random_walk_1000()
    pi = mdp.uniform_policy()
    mean_length, _ = episode_lengths(mdp, pi, 1)
    seconds = extrapolated = batched_learning = difference = 0.0
    steps_measured, runs_measured, episodes_measured, steps_protocol = 0, [], [], 0.0
    for part in _prediction_parts(figure, protocol):
        runs, episodes, configs = part["runs"], part["episodes"], len(part["X"])
        rng = np.random.default_rng(check_seed("seed", seed))  # learn's generator and first chunk
        batch = EpisodeBatch.sample(mdp, pi, runs, min(max(1, pf.CHUNK_EPISODES // runs), episodes), rng)
        X = part["X"][0] if configs == 1 else stack_features(part["X"])
        with np.errstate(over="ignore", invalid="ignore"):  # the batched learning alone, all runs of the chunk
            start = time.perf_counter()
            n_step_td(batch, X, n=np.array(part["n"]), alpha=np.array(part["alpha"]))
            batched_learning += (time.perf_counter() - start) * configs * runs * episodes * mean_length / (
                configs * int(batch.length.sum()))
        k = min(loop_runs, runs)
        batch = dataclasses.replace(batch, index=batch.index[:k], reward=batch.reward[:k], length=batch.length[:k])
        with np.errstate(over="ignore", invalid="ignore"):
            history = n_step_td(batch, X, n=np.array(part["n"]), alpha=np.array(part["alpha"]))
            start = time.perf_counter()
            loops = [n_step_td_loop(batch, Xc, n=nc, alpha=ac)
                     for Xc, nc, ac in zip(part["X"], part["n"], part["alpha"])]
            measured = time.perf_counter() - start
        for c, w in enumerate(loops):
            difference = max(difference, _agree(history[:, c, :, : w.shape[-1]], w))
        steps = configs * int(batch.length.sum())
        protocol_steps = configs * runs * episodes * mean_length
        seconds += measured
        extrapolated += measured * protocol_steps / steps
        steps_measured += steps
        steps_protocol += protocol_steps
        runs_measured.append(k)
        episodes_measured.append(int(batch.length.shape[1]))
    return {"loop_seconds_measured": seconds, "loop_runs_measured": runs_measured,
            "loop_episodes_measured": episodes_measured, "loop_time_steps_measured": steps_measured,
            "protocol_time_steps_expected": round(steps_protocol), "loop_seconds_extrapolated": extrapolated,
            # learning alone on both sides (batched_seconds also samples the episodes and measures √VE)
            "batched_learning_seconds_extrapolated": round(batched_learning, 3),
            "learning_speedup": round(extrapolated / batched_learning, 2),
            "max_relative_difference": difference, "results_agree": difference <= TOLERANCE}


# ------------------------------------------------------------------ control: Figures 10.1, 10.2, 10.4, 12.10
def _control_configs(number: str, spec: dict) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each configuration's keyword arguments of sarsa_loop / control, in figure_data's order
    (mountain_car_figures.configurations), and the shared ones."""
    kwargs = mcf.configurations(number, spec["alphas8"], spec["second"])
    shared = {k: v for k, v in kwargs.items() if np.ndim(v) == 0}
    per_config = {k: v for k, v in kwargs.items() if k not in shared}
    return [{k: v[c].item() for k, v in per_config.items()} for c in range(len(kwargs["alpha"]))], shared


def _protocol_steps(data: mcf.FigureData, cap: int) -> tuple[float, float]:
    """Bounds on the environment steps a per-run loop takes for the figure: Σ runs × its means; a mean left out
    (None: some run hit the cap) counts 0 in the lower bound and as every run going to the cap in the upper."""
    means = np.array(data.curves if data.number == "10.2" else data.mean_steps, dtype=float)
    per_mean = data.runs * (1 if data.number == "10.2" else data.episodes)
    lower = float(np.nansum(means) * per_mean)
    cut = np.isnan(means).any(axis=-1) if data.number == "10.2" else np.isnan(means)
    return lower, lower + float(cut.sum()) * data.runs * cap


def control_loop(number: str, spec: dict, data: mcf.FigureData, loop_runs: int, seed: int) -> dict[str, Any]:
    """The loop on `loop_runs` (configuration, run 0) rows (module doc), checked and extrapolated; 10.1 whole."""
    configs, shared = _control_configs(number, spec)
    episodes = spec["episodes"]
    if number == "10.1":
        start = time.perf_counter()
        steps, w, coder = sarsa_loop(episodes, seed=seed, **configs[0])
        measured = time.perf_counter() - start
        cost = mcf.cost_to_go(coder, w)
        difference = float(np.max(np.abs(cost - np.ravel(data.cost_to_go[-1]))))
        total = int(np.nansum(steps))
        return {"loop_seconds_measured": measured, "loop_runs_measured": 1, "loop_env_steps_measured": total,
                "protocol_env_steps": total, "loop_seconds_extrapolated": measured,
                "max_cost_to_go_difference": difference, "results_agree": difference <= TOLERANCE}
    m = min(loop_runs, len(configs))
    chosen = [k * len(configs) // m for k in range(m)]              # spread over the configurations
    cap = episodes * mcf.STEPS_PER_EPISODE_CAP                       # figure_data's max_steps
    start = time.perf_counter()
    loops = [sarsa_loop(episodes, seed=seed, max_steps=cap, **configs[c], **shared)[0] for c in chosen]
    measured = time.perf_counter() - start
    rows = {key: [configs[c][key] for c in chosen] for key in configs[0]}
    check = control(episodes, runs=1, seed=seed, max_steps=cap, **rows, **shared)
    agree = all(np.array_equal(s, check.steps[k, 0], equal_nan=True) for k, s in enumerate(loops))
    steps = int(sum(cap if np.isnan(s).any() else np.sum(s) for s in loops))  # a cut run stopped at the cap
    total, upper = _protocol_steps(data, cap)
    return {"loop_seconds_measured": measured, "loop_runs_measured": len(chosen),
            "loop_configs_measured": [configs[c] for c in chosen], "loop_env_steps_measured": steps,
            "protocol_env_steps": int(total), "protocol_env_steps_upper": int(upper),
            "loop_seconds_extrapolated": measured * total / steps,
            "loop_seconds_extrapolated_upper": round(measured * upper / steps, 3), "results_agree": agree}


# ------------------------------------------------------------------ the benchmark
def protocol_of(figure: str, quick: bool = False) -> dict:
    """The figure's book protocol (BOOK), or with quick its minute-long defaults (DEFAULT / DEFAULTS)."""
    figure = check_choice("figure", figure, FIGURES)
    if figure in pf.FIGURES:
        return dict((pf.DEFAULT if quick else pf.BOOK)[figure])
    return dict((mcf.DEFAULTS if quick else mcf.BOOK)[figure])


def figure_benchmark(figure: str, protocol: dict, loop_runs: int = 4, seed: int = 0) -> dict[str, Any]:
    """One figure: the batched figure timed at `protocol` (protocol_of's keys), then the loop (module doc)."""
    figure = check_choice("figure", figure, FIGURES)
    start = time.perf_counter()
    if figure in pf.FIGURES:
        pf.figure_numbers(figure, runs=protocol.get("runs"), episodes=protocol["episodes"],
                          alpha=protocol.get("alpha"), seed=seed)
        batched = time.perf_counter() - start
        loop = prediction_loop(figure, protocol, loop_runs, seed)
    else:
        data = mcf.figure_data(figure, runs=protocol["runs"], episodes=protocol["episodes"], seed=seed,
                               alphas8=protocol["alphas8"], second=protocol["second"])
        batched = time.perf_counter() - start
        loop = control_loop(figure, protocol, data, loop_runs, seed)
    speedup = loop["loop_seconds_extrapolated"] / batched
    loop["loop_seconds_measured"] = round(loop["loop_seconds_measured"], 3)
    loop["loop_seconds_extrapolated"] = round(loop["loop_seconds_extrapolated"], 3)
    return {"protocol": {**protocol, "seed": seed}, "batched_seconds": round(batched, 3), **loop,
            "speedup": round(speedup, 2)}


def figures_benchmark(out: Path, command: str, figures: Sequence[str] = FIGURES, loop_runs: int = 4,
                      quick: bool = False, seed: int = 0, protocols: dict[str, dict] | None = None) -> dict[str, Any]:
    """Every figure of `figures` in turn, and the machine they ran on: written to `out` (report.write) with the
    command that ran them, and returned. protocols: a figure's own protocol instead of protocol_of's."""
    figures = [check_choice("figure", f, FIGURES) for f in figures]
    check_int("loop-runs", loop_runs, 1)
    seed = check_seed("seed", seed)
    result = {
        "command": command,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "gymnasium": gym.__version__},
        "figures": {},
    }
    for figure in figures:
        given = (protocols or {}).get(figure)
        name = "given" if given is not None else "default" if quick else "book"
        protocol = protocol_of(figure, quick) if given is None else given
        result["figures"][figure] = {"protocol_name": name, **figure_benchmark(figure, protocol, loop_runs, seed)}
        write(out, result)                                          # what is done so far survives a later failure
    return result
