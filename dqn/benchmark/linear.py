"""The vectorised Figure-12.3 sweep against a plain per-run Python loop, and least squares on 10⁶
transitions (what benchmarks/linear.json holds: `linear_benchmark` writes it).

Sweep: accumulating TD(λ) on the 19-state random walk, every (λ, α) × runs × episodes as rows of one
array (approximators.traces.td_lambda). The loop reference (`td_lambda_loop`) runs each (λ, α, run) on
its own with d-vectors; it is timed on the first `loop_runs` runs of every (λ, α) and extrapolated to
all runs in proportion to their time steps. Both learn from the same episodes, so their RMS errors
must agree to rounding; `linear_benchmark` checks that.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qapprox.approximators.features import state_features
from qapprox.approximators.linear import rms_error
from qapprox.approximators.monte_carlo import LinearRegression, regression_data
from qapprox.approximators.traces import EpisodeBatch, td_lambda
from qapprox.dqn.benchmark.report import write
from qapprox.envs import FiniteMDP, make_mdp
from qapprox.envs.validation import check_int

ENV = "random-walk-19"


def td_lambda_loop(batch: EpisodeBatch, X: np.ndarray, alphas: np.ndarray, lams: np.ndarray, runs: int) -> np.ndarray:
    """The reference: accumulating TD(λ) one (α, λ, run) at a time, w after each episode, (E, configs, runs, d).

        δ_t = R_{t+1} + γ wᵀx(S_{t+1}) − wᵀx(S_t),   z_t = γλ z_{t−1} + x(S_t),   w ← w + α δ_t z_t
    """
    F = batch.feature_table(X)
    gamma = batch.gamma
    history = np.empty((batch.length.shape[1], len(alphas), runs, F.shape[1]))
    for k, (alpha, lam) in enumerate(zip(alphas, lams)):
        for n in range(runs):
            w = np.zeros(F.shape[1])
            for e in range(batch.length.shape[1]):
                z = np.zeros_like(w)
                for t in range(batch.length[n, e]):
                    x, x_next = F[batch.index[n, e, t]], F[batch.index[n, e, t + 1]]
                    delta = batch.reward[n, e, t] + gamma * (w @ x_next) - w @ x
                    z = gamma * lam * z + x
                    w = w + alpha * delta * z
                history[e, k, n] = w
    return history


def sweep(mdp: FiniteMDP, lams: Sequence[float], alphas: Sequence[float], runs: int, episodes: int, loop_runs: int,
          rng: np.random.Generator) -> dict[str, Any]:
    """Time the vectorised sweep on all runs and the loop on `loop_runs` runs; check they agree."""
    X = state_features(mdp)
    pi = mdp.uniform_policy()
    v_pi, _ = mdp.evaluate(pi)
    lam_grid, alpha_grid = (g.ravel() for g in np.meshgrid(lams, alphas, indexing="ij"))
    batch = EpisodeBatch.sample(mdp, pi, runs, episodes, rng)

    start = time.perf_counter()
    w = td_lambda(batch, X, trace="accumulating", alpha=alpha_grid, lam=lam_grid)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        w_loop = td_lambda_loop(batch, X, alpha_grid, lam_grid, loop_runs)
    loop = time.perf_counter() - start
    rms = rms_error(w, X, v_pi, mdp.nonterminal)                            # (episodes, configs, runs)
    rms_loop = rms_error(w_loop, X, v_pi, mdp.nonterminal)
    same = rms[:, :, :loop_runs]
    finite = np.isfinite(same) & (same < 1e6)
    if not np.array_equal(finite, np.isfinite(rms_loop) & (rms_loop < 1e6)):
        raise RuntimeError("the loop and the vectorised sweep disagree on which runs diverge")
    difference = float(np.max(np.abs(same[finite] - rms_loop[finite]) / np.maximum(1.0, same[finite])))
    if difference > 1e-9:
        raise RuntimeError(f"the loop and the vectorised sweep differ by {difference:g} in RMS error")
    average = rms.mean(axis=(0, 2))
    best = int(np.nanargmin(average))
    steps = int(batch.length.sum())                                        # per (λ, α), all runs
    loop_all = loop * steps / int(batch.length[:loop_runs].sum())
    return {
        "env": ENV, "trace": "accumulating", "lams": list(lams), "alphas": list(alphas),
        "configs": len(lam_grid), "runs": runs, "episodes": episodes,
        "time_steps_per_config": steps, "lockstep_steps": int(batch.length.max(axis=0).sum()),
        "vectorised_seconds": round(vectorised, 3),
        "loop_runs_timed": loop_runs, "loop_seconds_timed": round(loop, 3),
        "loop_seconds_extrapolated": round(loop_all, 1),
        "speedup": round(loop_all / vectorised, 1),
        "max_relative_rms_difference_loop_vs_vectorised": difference,
        "best": {"lam": float(lam_grid[best]), "alpha": float(alpha_grid[best]), "rms_error": float(average[best])},
    }


def regression(mdp: FiniteMDP, transitions: int, rng: np.random.Generator) -> dict[str, Any]:
    """Least squares of returns on ≥ `transitions` transitions of the walk, sampled in chunks of 1000 episodes."""
    X = state_features(mdp)
    pi = mdp.uniform_policy()
    v_pi, _ = mdp.evaluate(pi)
    episodes, count = [], 0
    while count < transitions:
        chunk = mdp.episodes(pi, 1000, rng)
        episodes += chunk
        count += sum(len(S) for S, _, _ in chunk)
    start = time.perf_counter()
    X_data, G = regression_data(episodes, X, mdp.gamma)
    data_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fit = LinearRegression("lstsq").fit(X_data, G)
    fit_seconds = time.perf_counter() - start
    return {"env": ENV, "episodes": len(episodes), "transitions": int(G.size),
            "build_data_seconds": round(data_seconds, 3), "lstsq_seconds": round(fit_seconds, 3),
            "rms_error_vs_v_pi": float(np.sqrt(np.mean((fit.w - v_pi[mdp.nonterminal]) ** 2)))}


def linear_benchmark(out: Path, command: str, lams: Sequence[float], alphas: Sequence[float], runs: int = 100,
                     episodes: int = 10, loop_runs: int = 4, transitions: int = 1_000_000, seed: int = 0) -> dict[str, Any]:
    """The sweep over lams × alphas, then the regression, from one seeded generator, and the machine they
    ran on: written to `out` (report.write) with the command that ran them, and returned."""
    check_int("loop-runs", loop_runs, 1, check_int("runs", runs, 1))  # the loop times some of the runs
    check_int("episodes", episodes, 1)
    check_int("transitions", transitions, 1)
    mdp = make_mdp(ENV)
    rng = np.random.default_rng(seed)
    result = {
        "command": command,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "sweep": sweep(mdp, lams, alphas, runs, episodes, loop_runs, rng),
        "regression": regression(mdp, transitions, rng),
    }
    write(out, result)
    return result
