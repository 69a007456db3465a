"""Sutton & Barto's Figures 9.1, 9.2, 9.5 and 9.10: linear prediction on the 1000-state random walk.

Every figure learns with approximators.semi_gradient (n-step semi-gradient TD; n = ∞ is gradient MC) from
episodes sampled in chunks (EpisodeBatch.sample), so memory stays bounded however many episodes are run, and
measures against the exact answers of approximators.fixed_points: v_π, the on-policy μ (eq. 9.2-9.3), w_MC, w_TD.

    9.1   gradient MC, state aggregation (10 groups of 100): v̂ after the run against v_π and v̂(w_MC); μ
    9.2   left: semi-gradient TD(0) with the same groups against v_π and v̂(w_TD);
          right: n-step semi-gradient TD, 20 groups of 50, the RMS error over the 1000 states and the first 10
          episodes, averaged over runs, against α for n = 1, 2, 4, …, 512
    9.5   gradient MC with polynomial and Fourier bases of order 5, 10, 20: √VE per episode, mean over runs
    9.10  gradient MC with tile coding (tiles 200 states wide), 1 tiling against 50 offset by 4 states: √VE

The feature matrices (|S⁺|, d) are approximators.walk_features' (the states at their positions, as
`qapprox fixed-points` has them); `figure_numbers` runs a figure's protocol and returns the plotted numbers as a
JSON-ready dict, and `draw` makes the Figure from it.
√VE(w) = √(Σ_s μ(s)[v_π(s) − wᵀx(s)]²) (eq. 9.1) is taken as the quadratic form wᵀMw − 2bᵀw + c with
M = XᵀDX, b = XᵀDv_π, c = v_πᵀDv_π, O(d²) per weight vector instead of O(|S|·d).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from qapprox.approximators.fixed_points import mc_fixed_point, on_policy_distribution, td_fixed_point
from qapprox.approximators.semi_gradient import n_step_td, stack_features
from qapprox.approximators.traces import EpisodeBatch
from qapprox.approximators.walk_features import walk_features
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.random_walk import random_walk_1000
from qapprox.envs.validation import check_int, check_seed

FIGURES = ("9.1", "9.2", "9.5", "9.10")
# The protocols: defaults that take about a minute on two cores, and the book's (`qapprox walk-figures --book`).
DEFAULT = {"9.1": {"episodes": 20_000, "alpha": 1e-4}, "9.2": {"episodes": 20_000, "alpha": 1e-3, "runs": 100},
           "9.5": {"episodes": 5_000, "runs": 10}, "9.10": {"episodes": 5_000, "runs": 10}}
BOOK = {"9.1": {"episodes": 100_000, "alpha": 2e-5}, "9.2": {"episodes": 100_000, "alpha": 2e-4, "runs": 100},
        "9.5": {"episodes": 5_000, "runs": 30}, "9.10": {"episodes": 5_000, "runs": 30}}
ORDERS, TILINGS = (5, 10, 20), (1, 50)  # Figure 9.5's orders; Figure 9.10's tilings (of tiles 200 states wide)
CHUNK_EPISODES = 2000  # episodes sampled per call (all runs together): bounds the padded batch's memory
N_STEPS = tuple(2**k for k in range(10))                      # Figure 9.2 right: n = 1, 2, 4, …, 512
ALPHAS_9_2 = tuple(np.round(np.arange(1, 21) / 20, 2))        # α = 0.05, 0.1, …, 1
BOOK_ALPHA = {"9.1": 2e-5, "9.2": 2e-4, "polynomial": 1e-4, "fourier": 5e-5, "tiling": 1e-4}


def learn(mdp: FiniteMDP, features: np.ndarray, *, n, alpha, runs: int, episodes: int, seed: int,
          measure: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """n_step_td over `episodes` episodes of `runs` runs under the uniform policy, sampled CHUNK_EPISODES at a
    time from one generator seeded `seed`; returns (measure(w) after every episode, stacked, and the last w
    (configs, runs, d)). measure maps w of shape (episodes, configs, runs, d) to one number per weight vector."""
    runs, episodes = check_int("runs", runs, 1), check_int("episodes", episodes, 1)
    rng, pi = np.random.default_rng(check_seed("seed", seed)), mdp.uniform_policy()
    per_call = max(1, CHUNK_EPISODES // runs)
    measured, w = [], None
    for start in range(0, episodes, per_call):
        batch = EpisodeBatch.sample(mdp, pi, runs, min(per_call, episodes - start), rng)
        history = n_step_td(batch, features, n=n, alpha=alpha, w0=w)
        measured.append(measure(history))
        w = history[-1]
    return np.concatenate(measured), w


def rmsve_measure(X: np.ndarray, v_pi: np.ndarray, mu: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """w (..., configs, runs, d) ↦ √VE(w) (eq. 9.1) for features X (|S⁺|, d) or one per config (configs, |S⁺|, d)."""
    X = X if X.ndim == 3 else X[None]
    M = np.einsum("csd,s,cse->cde", X, mu, X)                 # XᵀDX
    b = np.einsum("csd,s->cd", X, mu * v_pi)                  # XᵀDv_π
    c = float(mu @ v_pi**2)                                   # v_πᵀDv_π

    def measure(w: np.ndarray) -> np.ndarray:
        ve = np.einsum("...crd,cde,...cre->...cr", w, M, w) - 2 * np.einsum("...crd,cd->...cr", w, b) + c
        return np.sqrt(ve.clip(min=0.0))                      # round-off below 0 where VE ≈ 0
    return measure


def _truth(mdp: FiniteMDP) -> tuple[np.ndarray, np.ndarray]:
    pi = mdp.uniform_policy()
    return mdp.evaluate(pi)[0], on_policy_distribution(mdp, pi)


def state_values_figure(mdp: FiniteMDP, X: np.ndarray, *, n: float, alpha: float, episodes: int, seed: int) -> dict:
    """Figures 9.1 (n = ∞, gradient MC) and 9.2 left (n = 1, TD(0)): one run; v̂ after it, v_π, μ and the
    fixed point the method tends to (w_MC for MC, w_TD for TD), per state 1..|S|."""
    v_pi, mu = _truth(mdp)
    pi, S = mdp.uniform_policy(), mdp.nonterminal
    measure = rmsve_measure(X, v_pi, mu)
    rmsve, w = learn(mdp, X, n=n, alpha=alpha, runs=1, episodes=episodes, seed=seed, measure=measure)
    w_star = mc_fixed_point(X, mdp, pi, mu, v_pi) if np.isinf(n) else td_fixed_point(X, mdp, pi, mu)
    method = "gradient MC" if np.isinf(n) else "semi-gradient TD(0)" if n == 1 else f"{n:g}-step semi-gradient TD"
    return {"method": method,
            "alpha": alpha, "episodes": episodes, "seed": seed, "d": X.shape[1], "states": S.tolist(),
            "v_pi": v_pi[S].tolist(), "v_hat": (X[S] @ w[0, 0]).tolist(), "w": w[0, 0].tolist(),
            "fixed_point": "w_MC" if np.isinf(n) else "w_TD", "w_star": w_star.tolist(),
            "v_star": (X[S] @ w_star).tolist(), "mu": mu[S].tolist(),
            "rmsve": rmsve[-1, 0, 0].item(), "rmsve_star": measure(w_star[None, None])[0, 0].item()}


def n_step_sweep(mdp: FiniteMDP, X: np.ndarray, *, runs: int, seed: int, episodes: int = 10,
                 ns=N_STEPS, alphas=ALPHAS_9_2) -> dict:
    """Figure 9.2 right: the RMS error over the states S (unweighted, as the book's axis says) after each of the
    first `episodes` episodes, averaged over them and over `runs` runs, for every (n, α); all configurations
    learn from the same episodes. rms[i][j] is n = ns[i], α = alphas[j] (None where it diverged)."""
    v_pi, _ = _truth(mdp)
    n, alpha = sweep_configs(ns, alphas)
    S = mdp.nonterminal
    uniform = np.zeros(mdp.n_states)
    uniform[S] = 1.0 / S.size                                 # the RMS error over S is √VE with μ uniform on S
    error, _ = learn(mdp, X, n=n, alpha=alpha, runs=runs, episodes=episodes, seed=seed,
                     measure=rmsve_measure(X, v_pi, uniform))
    rms = error.mean(axis=(0, 2)).reshape(len(ns), len(alphas))
    return {"runs": runs, "episodes": episodes, "seed": seed, "d": X.shape[1], "n": list(ns),
            "alpha": [float(a) for a in alphas],
            "rms": [[float(x) if np.isfinite(x) else None for x in row] for row in rms]}


def sweep_configs(ns=N_STEPS, alphas=ALPHAS_9_2) -> tuple[np.ndarray, np.ndarray]:
    """(n, α) of every configuration of Figure 9.2 right, n outer and α inner (the order of its rms rows)."""
    n, alpha = np.meshgrid(np.asarray(ns, float), np.asarray(alphas, float), indexing="ij")
    return n.ravel(), alpha.ravel()


def basis_curves(mdp: FiniteMDP, figure: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Figures 9.5 and 9.10's curves: name → feature matrix, name → the book's α for it."""
    if figure == "9.5":
        X = {f"{kind} order {k}": walk_features(mdp, kind, order=k) for kind in ("polynomial", "fourier") for k in ORDERS}
        return X, {name: BOOK_ALPHA[name.split()[0]] for name in X}
    X = {f"{t} tiling{'s' * (t > 1)}": walk_features(mdp, "tiles", tilings=t) for t in TILINGS}
    return X, {name: BOOK_ALPHA["tiling"] / t for name, t in zip(X, TILINGS)}


def ve_curves(mdp: FiniteMDP, features: dict[str, np.ndarray], alphas: dict[str, float], *, runs: int,
              episodes: int, seed: int) -> dict:
    """Figures 9.5 and 9.10: gradient MC with each named feature matrix at its α, all from the same episodes;
    √VE after every episode, averaged over the runs (curves[name], `episodes` numbers each)."""
    v_pi, mu = _truth(mdp)
    names = list(features)
    X = stack_features([features[k] for k in names])
    error, _ = learn(mdp, X, n=np.inf, alpha=np.array([alphas[k] for k in names]), runs=runs,
                     episodes=episodes, seed=seed, measure=rmsve_measure(X, v_pi, mu))
    curves = error.mean(axis=2)
    return {"runs": runs, "episodes": episodes, "seed": seed, "alpha": {k: alphas[k] for k in names},
            "d": {k: int(features[k].shape[1]) for k in names},
            "curves": {k: curves[:, c].tolist() for c, k in enumerate(names)}}


# ------------------------------------------------------------------------------------------ drawing
def figure_numbers(figure: str, *, runs: int | None, episodes: int, alpha: float | None, seed: int) -> dict:
    """The plotted numbers of one figure (module doc) on the 1000-state walk; runs and α as the figure uses them
    (9.1 one run; 9.2: α and episodes of the left panel, runs of the right; 9.5 and 9.10: the book's α per basis)."""
    mdp = random_walk_1000()
    groups_10 = walk_features(mdp, "aggregation", groups=10)
    if figure == "9.1":
        return state_values_figure(mdp, groups_10, n=np.inf, alpha=alpha, episodes=episodes, seed=seed)
    if figure == "9.2":
        left = state_values_figure(mdp, groups_10, n=1, alpha=alpha, episodes=episodes, seed=seed)
        return {"left": left, "right": n_step_sweep(mdp, walk_features(mdp, "aggregation", groups=20), runs=runs,
                                                    seed=seed)}
    X, alphas = basis_curves(mdp, figure)
    return ve_curves(mdp, X, alphas, runs=runs, episodes=episodes, seed=seed)


def _state_panel(ax, numbers: dict, mu_axis: bool) -> None:
    s = np.asarray(numbers["states"])
    ax.plot(s, numbers["v_pi"], color="tab:red", lw=1.2, label="true value $v_\\pi$")
    ax.step(s, numbers["v_star"], where="mid", color="tab:gray", lw=1.0, ls="--",
            label=f"$\\hat v$ at {numbers['fixed_point'].replace('w_', '$w_{')}" + "}$")
    ax.step(s, numbers["v_hat"], where="mid", color="tab:blue", lw=1.6,
            label=f"{numbers['method']}, α = {numbers['alpha']:g}, {numbers['episodes']:,} episodes")
    ax.set(xlabel="State", ylabel="Value scale", xlim=(0, s[-1] + 1), ylim=(-1, 1))
    ax.legend(loc="upper left", fontsize=8)
    if mu_axis:
        mu = ax.twinx()
        mu.bar(s, numbers["mu"], width=1.0, color="tab:gray", alpha=0.35)
        mu.set(ylabel="Distribution scale μ(s)", ylim=(0, 3 * max(numbers["mu"])))


def _curves_panel(ax, numbers: dict, title: str) -> None:
    e = np.arange(1, numbers["episodes"] + 1)
    for name, curve in numbers["curves"].items():
        ax.plot(e, curve, lw=1.3, ls="--" if name.startswith("polynomial") else "-",
                label=f"{name} (α = {numbers['alpha'][name]:g})")
    ax.set(xlabel="Episodes", ylabel=f"$\\sqrt{{\\overline{{VE}}}}$ averaged over {numbers['runs']} runs",
           title=title, ylim=(0, None))
    ax.legend(fontsize=8)


def draw(figure: str, numbers: dict) -> Figure:
    """The Figure for `figure` ('9.1', '9.2', '9.5', '9.10') from the numbers its function returned.
    Outside pyplot (nothing to close): draw(...).savefig(path)."""
    if figure == "9.1":
        fig = Figure(figsize=(8, 5))
        ax = fig.add_subplot()
        _state_panel(ax, numbers, mu_axis=True)
        ax.set_title("Figure 9.1: gradient MC, state aggregation on the 1000-state walk")
    elif figure == "9.2":
        fig = Figure(figsize=(13, 5))
        left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        _state_panel(left, numbers["left"], mu_axis=False)
        left.set_title("Figure 9.2 left: semi-gradient TD(0), 10 groups")
        sweep = numbers["right"]
        for n, row in zip(sweep["n"], sweep["rms"]):
            right.plot(sweep["alpha"], [np.nan if x is None else x for x in row], lw=1.2, label=f"n={n}")
        right.set(xlabel="α", ylabel=f"Average RMS error over {len(numbers['left']['states'])} states and "
                  f"first {sweep['episodes']} episodes", ylim=(0.25, 0.55), xlim=(0, 1),
                  title=f"Figure 9.2 right: n-step TD, 20 groups, {sweep['runs']} runs")
        right.legend(fontsize=8, ncol=2)
    else:
        fig = Figure(figsize=(8, 5))
        title = {"9.5": "Figure 9.5: polynomial vs Fourier bases, gradient MC",
                 "9.10": "Figure 9.10: one tiling vs 50 tilings, gradient MC"}[figure]
        _curves_panel(fig.add_subplot(), numbers, title)
    fig.tight_layout()
    return fig
