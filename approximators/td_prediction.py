"""TD(λ) prediction on a finite MDP, scored like S&B Figure 12.3: RMS error against the DP-exact v_π.

    RMS(w) = √( (1/|S|) Σ_{s ∈ S} (v̂(s, w) − v_π(s))² )      S: the non-terminal states
    score(λ, α) = (1/(E·N)) Σ_{e=1..E} Σ_{n=1..N} RMS(w_{e,n})   w after episode e of run n

    result = td_prediction(make_mdp("random-walk-19"), trace="true-online", lams=LAMS, alphas=ALPHAS)
    result.average                    # score(λ, α), rows λ, columns α
    figure(result, "true-online TD(λ)").savefig("sweep.png")
    td_prediction(mdp, log_dir=Path("runs/td"))   # and TensorBoard: rms_error per episode

Weights start at 0 (one-hot x(s)), episodes follow the uniform random policy, γ is the MDP's. Every
run sees its own episodes; every (λ, α) sees the same ones (approximators.traces.td_lambda learns them
all as rows of one array). A diverging (λ, α) scores inf or nan, without warnings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qapprox.approximators.features import state_features
from qapprox.approximators.limits import check_memory
from qapprox.approximators.linear import rms_error
from qapprox.approximators.traces import METHODS, EpisodeBatch, check_offline, check_trace, td_lambda, td_lambda_bytes
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_int, check_positive, check_seed, check_unit_interval

# Figure 12.3's grid (S&B plot α up to 1 for every λ)
LAMS = (0.0, 0.4, 0.8, 0.9, 0.95, 0.975, 0.99, 1.0)
ALPHAS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def check_settings(trace: str, lams: Sequence[float], alphas: Sequence[float], runs: int, episodes: int, seed: int,
                   offline: bool = False) -> None:
    """One-line ValueError, before any work, for fewer than one episode or run, a seed outside
    [0, 2**32 − 1], a trace not in traces.METHODS (or offline with a true-online trace), λ outside [0, 1]
    or α not > 0 and finite."""
    check_int("episodes", episodes, 1)
    check_int("runs", runs, 1)
    check_seed("seed", seed)
    check_trace(trace, METHODS)
    check_offline(trace, offline)
    check_unit_interval("lam", lams)
    check_positive("alpha", alphas)


@dataclass(frozen=True)
class Prediction:
    """rms: (episodes, λ × α, runs), RMS(w) after each episode, configurations λ-major (λ_0 with every α
    first); per_episode: (episodes, λ × α), its mean over runs; average: (λ, α), score(λ, α)."""

    lams: tuple[float, ...]
    alphas: tuple[float, ...]
    rms: np.ndarray
    seconds: float

    @property
    def per_episode(self) -> np.ndarray:
        return self.rms.mean(axis=2)

    @property
    def average(self) -> np.ndarray:
        return self.per_episode.mean(axis=0).reshape(len(self.lams), len(self.alphas))


def td_prediction(
    mdp: FiniteMDP, trace: str = "accumulating", lams: Sequence[float] = (0.8,), alphas: Sequence[float] = (0.4,),
    runs: int = 100, episodes: int = 10, seed: int = 0, offline: bool = False,
    on_episode: Callable[[int, np.ndarray], None] | None = None, *,
    log_dir: Path | None = None, png: Path | None = None, title: str = "",
) -> Prediction:
    """Every λ in lams with every α in alphas: `runs` runs of `episodes` episodes each (seeded by seed),
    scored against v_π. Settings are checked first (check_settings), then the memory of the whole batch.
    on_episode(e, w) is called after each episode, w of shape (λ × α, runs, |S⁺|).

    With log_dir the scores go to TensorBoard there (None: no logging): without png, tag rms_error after
    each episode e (mean over runs, of the first (λ, α)); with png (a sweep), figure(result, title), also
    saved to png, as the image `sweep` and sweep_table(result) as the text sweep/rms_error."""
    check_settings(trace, lams, alphas, runs, episodes, seed, offline)
    if png is not None and log_dir is None:
        raise ValueError("png is the sweep's figure in the TensorBoard log; give log_dir too")
    X, pi = state_features(mdp), mdp.uniform_policy()
    configs = len(lams) * len(alphas)
    check_memory(f"TD(λ) on {runs:,} runs × {episodes:,} episodes × {configs:,} (λ, α)",
                 td_lambda_bytes(mdp, pi, runs, episodes, configs, X.shape[1]))
    lam_grid, alpha_grid = (g.ravel() for g in np.meshgrid(np.asarray(lams, dtype=np.float64),
                                                           np.asarray(alphas, dtype=np.float64), indexing="ij"))
    v_pi, _ = mdp.evaluate(pi)
    batch = EpisodeBatch.sample(mdp, pi, runs, episodes, np.random.default_rng(seed))
    start = time.perf_counter()
    w = td_lambda(batch, X, trace=trace, alpha=alpha_grid, lam=lam_grid, offline=offline, on_episode=on_episode)
    seconds = time.perf_counter() - start
    result = Prediction(tuple(lams), tuple(alphas), rms_error(w, X, v_pi, mdp.nonterminal), seconds)
    if log_dir is not None:
        _log(result, log_dir, png, title)
    return result


def _log(result: Prediction, log_dir: Path, png: Path | None, title: str) -> None:
    """td_prediction's TensorBoard log (its docstring); the writer first, so that png may lie in log_dir."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir) as writer:
        if png is None:
            for e, value in enumerate(result.per_episode[:, 0]):
                writer.add_scalar("rms_error", value, e + 1)
            return
        fig = figure(result, title)
        fig.savefig(png, dpi=120)
        writer.add_figure("sweep", fig)
        writer.add_text("sweep/rms_error", sweep_table(result))


def sweep_table(result: Prediction) -> str:
    """score(λ, α) as a Markdown table: a row per λ, a column per α, 3 decimals."""
    header = "| λ \\ α | " + " | ".join(f"{a:g}" for a in result.alphas) + " |\n|" + "---|" * (len(result.alphas) + 1)
    rows = ["| " + f"{lam:g} | " + " | ".join(f"{r:.3f}" for r in row) + " |"
            for lam, row in zip(result.lams, result.average)]
    return "\n".join([header, *rows])


def finite_or_none(values: np.ndarray) -> list:
    """The scores as JSON allows them (JSON has no inf/nan): nested lists, diverged entries None."""
    return [finite_or_none(v) if np.ndim(v) else (float(v) if np.isfinite(v) else None) for v in values]


def figure(result: Prediction, title: str):
    """score(λ, α) against α, a line per λ, y clipped to [0.25, 0.55] like S&B Figure 12.3. A matplotlib
    Figure outside pyplot (nothing to close): figure(result, title).savefig(path)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    for lam, row in zip(result.lams, result.average):
        ax.plot(result.alphas, np.where(np.isfinite(row), row, np.nan), marker=".", label=f"λ={lam:g}")
    ax.set(xlabel="α", ylabel="RMS error, averaged over states, episodes and runs", title=title,
           ylim=(0.25, 0.55), xlim=(0, max(result.alphas)))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
