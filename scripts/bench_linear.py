"""Benchmark: the vectorised Figure-12.3 sweep against a plain per-run Python loop, and least
squares on 10⁶ transitions. Writes benchmarks/linear.json.

    OMP_NUM_THREADS=1 python -m scripts.bench_linear

Sweep: accumulating TD(λ) on the 19-state random walk, 8 λ × 10 α × 100 runs × 10 episodes, all
configurations as rows of one array (approximators.traces.td_lambda). The loop baseline runs each
(λ, α, run) on its own with d-vectors; it is timed on the first --loop-runs runs of every (λ, α)
and extrapolated to all runs in proportion to their time steps. Both learn from the same episodes, so their RMS errors
must agree to rounding; the script checks that.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from qapprox.approximators.features import state_features
from qapprox.approximators.linear import rms_error
from qapprox.approximators.monte_carlo import LinearRegression, regression_data
from qapprox.approximators.traces import EpisodeBatch, td_lambda
from qapprox.envs import make_mdp
from qapprox.scripts._cli import ArgumentParser, run
from qapprox.scripts.td_lambda import ALPHAS, LAMS


def td_lambda_loop(batch: EpisodeBatch, X: np.ndarray, alphas: np.ndarray, lams: np.ndarray, runs: int) -> np.ndarray:
    """The baseline: accumulating TD(λ) one (α, λ, run) at a time. w after each episode, (E, configs, runs, d)."""
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


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--loop-runs", type=int, default=4, help="runs per (λ, α) the loop baseline is timed on")
    parser.add_argument("--transitions", type=int, default=1_000_000, help="size of the regression data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/linear.json")
    args = parser.parse_args(argv)
    if not 1 <= args.loop_runs <= args.runs or args.episodes < 1 or args.transitions < 1:
        raise ValueError(f"need 1 ≤ loop-runs={args.loop_runs} ≤ runs={args.runs}, episodes ≥ 1, transitions ≥ 1")

    mdp = make_mdp("random-walk-19")
    X = state_features(mdp)
    pi = mdp.uniform_policy()
    v_pi, _ = mdp.evaluate(pi)
    rng = np.random.default_rng(args.seed)
    lam_grid, alpha_grid = (g.ravel() for g in np.meshgrid(LAMS, ALPHAS, indexing="ij"))
    batch = EpisodeBatch.sample(mdp, pi, args.runs, args.episodes, rng)

    start = time.perf_counter()
    w = td_lambda(batch, X, trace="accumulating", alpha=alpha_grid, lam=lam_grid)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        w_loop = td_lambda_loop(batch, X, alpha_grid, lam_grid, args.loop_runs)
    loop = time.perf_counter() - start
    rms = rms_error(w, X, v_pi, mdp.nonterminal)                            # (episodes, configs, runs)
    rms_loop = rms_error(w_loop, X, v_pi, mdp.nonterminal)
    same = rms[:, :, : args.loop_runs]
    finite = np.isfinite(same) & (same < 1e6)
    if not np.array_equal(finite, np.isfinite(rms_loop) & (rms_loop < 1e6)):
        raise RuntimeError("the loop and the vectorised sweep disagree on which runs diverge")
    difference = float(np.max(np.abs(same[finite] - rms_loop[finite]) / np.maximum(1.0, same[finite])))
    if difference > 1e-9:
        raise RuntimeError(f"the loop and the vectorised sweep differ by {difference:g} in RMS error")
    average = rms.mean(axis=(0, 2))
    best = int(np.nanargmin(average))
    steps = int(batch.length.sum())                                        # per (λ, α), all runs
    loop_all = loop * steps / int(batch.length[: args.loop_runs].sum())

    # Least squares of returns on ≥ 10⁶ transitions of the same walk, in chunks of 1000 episodes.
    episodes, transitions = [], 0
    while transitions < args.transitions:
        chunk = mdp.episodes(pi, 1000, rng)
        episodes += chunk
        transitions += sum(len(S) for S, _, _ in chunk)
    start = time.perf_counter()
    X_data, G = regression_data(episodes, X, mdp.gamma)
    data_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fit = LinearRegression("lstsq").fit(X_data, G)
    fit_seconds = time.perf_counter() - start
    fit_rms = float(np.sqrt(np.mean((fit.w - v_pi[mdp.nonterminal]) ** 2)))

    result = {
        "command": "OMP_NUM_THREADS=1 python -m scripts.bench_linear",
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "sweep": {
            "env": "random-walk-19", "trace": "accumulating", "lams": list(LAMS), "alphas": list(ALPHAS),
            "configs": len(lam_grid), "runs": args.runs, "episodes": args.episodes,
            "time_steps_per_config": steps, "lockstep_steps": int(batch.length.max(axis=0).sum()),
            "vectorised_seconds": round(vectorised, 3),
            "loop_runs_timed": args.loop_runs, "loop_seconds_timed": round(loop, 3),
            "loop_seconds_extrapolated": round(loop_all, 1),
            "speedup": round(loop_all / vectorised, 1),
            "max_relative_rms_difference_loop_vs_vectorised": difference,
            "best": {"lam": float(lam_grid[best]), "alpha": float(alpha_grid[best]), "rms_error": float(average[best])},
        },
        "regression": {
            "env": "random-walk-19", "episodes": len(episodes), "transitions": int(G.size),
            "build_data_seconds": round(data_seconds, 3), "lstsq_seconds": round(fit_seconds, 3),
            "rms_error_vs_v_pi": fit_rms,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    s, r = result["sweep"], result["regression"]
    print(f"sweep {s['configs']} (λ, α) × {s['runs']} runs × {s['episodes']} episodes: vectorised {s['vectorised_seconds']} s; "
          f"per-run loop {s['loop_seconds_timed']} s on {s['loop_runs_timed']} runs → {s['loop_seconds_extrapolated']} s "
          f"for {s['runs']} (extrapolated by time steps), speed-up ×{s['speedup']}; RMS errors agree to {difference:.1e}")
    print(f"best: λ={s['best']['lam']:g}, α={s['best']['alpha']:g}, RMS {s['best']['rms_error']:.3f}")
    print(f"least squares on {r['transitions']:,} transitions ({r['episodes']} episodes): data {r['build_data_seconds']} s, "
          f"fit {r['lstsq_seconds']} s, RMS vs v_π {fit_rms:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
