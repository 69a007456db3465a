"""Baird's counterexample run by every chapter-11 method, and Sutton & Barto's Figures 11.2, 11.5 and 11.6.

Each method starts from the book's w_0 = (1, 1, 1, 1, 1, 1, 10, 1) and learns v_π of the target policy
(always solid) from the behaviour policy b (solid with probability 1/7). Every step or sweep k reports

    √VE(w_k)  = √(Σ_s μ(s) (v_π(s) − w_kᵀx(s))²)      with v_π = 0                  eq. 9.1
    √PBE(w_k) = √(‖Π δ̄_{w_k}‖²_μ)                                                    eq. 11.22

with μ the stationary distribution of b (uniform here). The sampled methods (approximators.off_policy_td)
take one transition per step; the expected ones (approximators.off_policy) update every state at once per
sweep. With R sampled runs, w_k is the mean over the runs and √VE, √PBE are those of that mean.

    run = baird_run("expected-tdc", steps=1000)       # the book's α = 0.005, β = 0.05
    run.w[-1], run.rmsve[-1], run.rmspbe[-1]
    book_figure("11.5").savefig("baird_figure_11_5.png")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qapprox.approximators import off_policy_td as sampled
from qapprox.approximators.limits import check_memory
from qapprox.approximators.off_policy import expected_etd, expected_tdc, pbe, semi_gradient_dp, state_distribution, ve
from qapprox.envs.baird import BAIRD_FEATURES, BAIRD_W0, BEHAVIOUR_POLICY, TARGET_POLICY, baird
from qapprox.envs.validation import as_float, check_choice, check_float, check_int, check_seed

MDP = baird()
MU = state_distribution(MDP, BEHAVIOUR_POLICY)
V_PI = np.zeros(MDP.n_states)  # every reward is 0

# method → the book's (α, β); β only for the methods with secondary weights v.
STEP_SIZES: dict[str, tuple[float, float | None]] = {
    "semi-gradient-td": (0.01, None),   # Figure 11.2, left
    "semi-gradient-dp": (0.01, None),   # Figure 11.2, right
    "tdc": (0.005, 0.05),               # Figure 11.5, left
    "expected-tdc": (0.005, 0.05),      # Figure 11.5, right
    "gtd2": (0.005, 0.05),              # §11.7: the same step sizes as TDC
    "etd": (0.03, None),                # §11.8, sampled
    "expected-etd": (0.03, None),       # Figure 11.6
}
METHODS = tuple(STEP_SIZES)
SAMPLED = sampled.METHODS  # the rest are expected updates, one sweep over all states at a time
SECONDARY = tuple(m for m, (_, beta) in STEP_SIZES.items() if beta is not None)

# figure → its panels' methods and the errors drawn beside the weights, as the book draws them.
FIGURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "11.2": (("semi-gradient-td", "semi-gradient-dp"), ()),
    "11.5": (("tdc", "expected-tdc"), ("rmsve", "rmspbe")),
    "11.6": (("expected-etd",), ("rmsve",)),
}
TITLES = {
    "semi-gradient-td": "semi-gradient off-policy TD", "semi-gradient-dp": "semi-gradient DP",
    "tdc": "TDC", "expected-tdc": "expected TDC", "gtd2": "GTD2",
    "etd": "emphatic TD", "expected-etd": "expected emphatic TD",
}
ERROR_LABELS = {"rmsve": r"$\sqrt{\overline{VE}}$", "rmspbe": r"$\sqrt{\overline{PBE}}$"}


@dataclass(frozen=True)
class BairdRun:
    """One method on Baird's counterexample: w of shape (N+1, 8) (row 0 is w_0; the mean over runs for a
    sampled method), and √VE, √PBE of each row, shape (N+1,). runs and seed are None for expected methods."""

    method: str
    alpha: float
    beta: float | None
    runs: int | None
    seed: int | None
    w: np.ndarray
    rmsve: np.ndarray
    rmspbe: np.ndarray

    @property
    def unit(self) -> str:
        """What one row of w is after: a sampled step or an expected sweep."""
        return "step" if self.method in SAMPLED else "sweep"


def check_run(method: str, steps: int, alpha: float | None = None, beta: float | None = None,
              runs: int | None = None, seed: int | None = None) -> tuple[float, float | None]:
    """The (α, β) baird_run will use, the book's where None; a one-line ValueError, before any work, for an
    unknown method, β for a method without secondary weights, runs or a seed for an expected method, and
    α or β not > 0 and finite, and sizes beyond free memory."""
    method = check_choice("method", method, METHODS)
    steps = check_int("steps", steps, 1)
    book_alpha, book_beta = STEP_SIZES[method]
    if beta is not None and book_beta is None:
        raise ValueError(f"beta is the step size of the secondary weights v of {', '.join(SECONDARY)}; "
                         f"{method} takes none")
    if method not in SAMPLED and (runs is not None or seed is not None):
        raise ValueError(f"{method} is an expected update (no sampling): runs and seed are for "
                         f"{', '.join(SAMPLED)}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if value is not None:
            check_float(name, value, 0.0, low_open=True)
    if runs is not None:
        check_int("runs", runs, 1)
    if seed is not None:
        check_seed("seed", seed)
    d, n = BAIRD_FEATURES.shape[1], MDP.n_states
    # w and v kept per step or sweep, and VE, PBE's (N+1, |S|) temporaries; off_policy_td checks its runs.
    check_memory(f"{method} for {steps:,} {'steps' if method in SAMPLED else 'sweeps'}",
                 (as_float(steps) + 1) * (2 * d + 6 * n) * 8)
    return (book_alpha if alpha is None else alpha), (book_beta if beta is None else beta)


def baird_run(method: str, steps: int = 1000, *, alpha: float | None = None, beta: float | None = None,
              runs: int | None = None, seed: int | None = None) -> BairdRun:
    """`method` (one of METHODS) from w_0 for `steps` steps (sampled) or sweeps (expected), at the book's
    step sizes unless α, β are given; a sampled method runs `runs` streams (default 1) from `seed` (default 0)."""
    alpha, beta = check_run(method, steps, alpha, beta, runs, seed)
    X, pi = BAIRD_FEATURES, TARGET_POLICY
    with np.errstate(over="ignore", invalid="ignore"):  # what diverges becomes inf/nan
        if method in SAMPLED:
            runs, seed = (1 if runs is None else runs), (0 if seed is None else seed)
            w = sampled.off_policy_td(MDP, X, pi, BEHAVIOUR_POLICY, method=method, steps=steps, alpha=alpha,
                                      beta=beta, runs=runs, w0=BAIRD_W0, seed=seed, keep="mean").w
        elif method == "semi-gradient-dp":
            w = semi_gradient_dp(BAIRD_W0, X, MDP, pi, alpha=alpha, sweeps=steps, mu=MU)
        elif method == "expected-tdc":
            w, _ = expected_tdc(BAIRD_W0, X, MDP, pi, MU, alpha=alpha, beta=beta, sweeps=steps)
        else:
            w = expected_etd(BAIRD_W0, X, MDP, pi, MU, alpha=alpha, sweeps=steps)
        rmsve, rmspbe = np.sqrt(ve(w, X, V_PI, MU)), np.sqrt(pbe(w, X, MDP, pi, MU))
    return BairdRun(method, float(alpha), None if beta is None else float(beta), runs, seed, w, rmsve, rmspbe)


def book_runs(number: str, steps: int = 1000, runs: int | None = None, seed: int | None = None) -> list[BairdRun]:
    """The runs of Figure `number` (one of FIGURES) at the book's step sizes; runs and seed go to its
    sampled panels (one run, seed 0, by default: the book draws one run)."""
    methods, _ = FIGURES[check_choice("figure", number, FIGURES)]
    if not set(methods) & set(SAMPLED) and (runs is not None or seed is not None):
        raise ValueError(f"Figure {number} has no sampled panel: runs and seed are for Figures "
                         f"{', '.join(n for n, (ms, _) in FIGURES.items() if set(ms) & set(SAMPLED))}")
    return [baird_run(m, steps, runs=runs, seed=seed) if m in SAMPLED else baird_run(m, steps) for m in methods]


def _panel(ax, run: BairdRun, errors: tuple[str, ...]) -> None:
    """The 8 components of w against steps or sweeps (w_1..w_6 in blues: they coincide in the expected
    updates), then the errors in black; what diverged to inf/nan is left out."""
    k = np.arange(len(run.w))
    shown = np.where(np.isfinite(run.w), run.w, np.nan)
    colours = [(0.1, 0.3 + 0.1 * i, 0.9 - 0.08 * i) for i in range(6)] + ["tab:orange", "tab:green"]
    for i in range(shown.shape[1]):
        ax.plot(k, shown[:, i], color=colours[i], lw=1.2, label=f"$w_{i + 1}$")
    for name, style in zip(errors, ("-", "--")):
        values = getattr(run, name)
        ax.plot(k, np.where(np.isfinite(values), values, np.nan), color="black", ls=style, lw=1.8,
                label=ERROR_LABELS[name])
    ax.axhline(0.0, color="grey", lw=0.5)
    steps = "α = " + f"{run.alpha:g}" + ("" if run.beta is None else f", β = {run.beta:g}")
    sampled_note = "" if run.runs is None else (f", one run (seed {run.seed})" if run.runs == 1
                                                else f", mean of {run.runs} runs")
    ax.set(xlabel=f"{run.unit.capitalize()}s", title=f"{TITLES[run.method]} ({steps}{sampled_note})",
           xlim=(0, k[-1]))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5)


def figure(panels: list[BairdRun], errors: tuple[str, ...] = ("rmsve", "rmspbe"), title: str | None = None):
    """One panel per run: its weight components and the chosen errors (of "rmsve", "rmspbe"). A matplotlib
    Figure outside pyplot (nothing to close): figure(panels).savefig(path)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.5 * len(panels), 8.0), 5.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, run in zip(axes, panels):
        _panel(ax, run, errors)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def book_figure(number: str, steps: int = 1000, runs: int | None = None, seed: int | None = None):
    """Sutton & Barto's Figure `number` (one of FIGURES) on Baird's counterexample at the book's step sizes."""
    panels = book_runs(number, steps, runs, seed)
    return figure(panels, FIGURES[number][1],
                  title=f"Figure {number}: Baird's counterexample, $w_0$ = (1, 1, 1, 1, 1, 1, 10, 1), γ = 0.99")
