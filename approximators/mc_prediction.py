"""Monte Carlo prediction by regression of returns, scored against the DP-exact values.

Episodes under a policy π give the training sets ⟨x(S_t), G_t⟩ and ⟨x(S_t, A_t), G_t⟩. Since

    E[G_t | S_t = s] = v_π(s)   and   E[G_t | S_t = s, A_t = a] = q_π(s, a),

a model fitted to them by least squares, J(w) = (1/m) Σ_i (ŷ(x_i, w) − G_i)², estimates v_π and q_π
(the values of the policy that made the data, not v_* and q_*). Each fit is scored by

    RMS(v̂, v) = √( (1/|S|) Σ_{s ∈ S} (v̂(s) − v(s))² )      S: the non-terminal states

    mdp = make_mdp("quiz9")
    curve = linear_prediction(mdp, 10_000, LinearRegression("lstsq"))
    curve.rms_error[-1]["v_pi"]            # the fit on all 10,000 episodes against v_π
    linear_prediction(mdp, 10_000, log_dir=Path("runs/mc"))    # and TensorBoard: the RMS errors per n
    model = NeuralRegression(hidden=(32,))
    fits = network_prediction(mdp, network_training_sets(mdp, 3000, model), model)

The linear model is monte_carlo.LinearRegression, the network nn_regression.NeuralRegression: both
fit(X, G) → self and predict(X), and both learn from training_sets here.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qapprox.approximators.features import block_state_action_features, state_action_features, state_features
from qapprox.approximators.limits import check_memory
from qapprox.approximators.monte_carlo import LinearRegression, episode_lengths, regression_bytes, regression_data
from qapprox.approximators.policies import epsilon_greedy_probabilities
from qapprox.envs.finite import FiniteMDP
from qapprox.envs.validation import check_choice, check_float, check_int

if TYPE_CHECKING:  # the network's module imports torch; the linear prediction never needs it
    from qapprox.approximators.nn_regression import NeuralRegression

POLICIES = ("uniform", "epsilon-optimal")
Q_FEATURES = ("one-hot", "block")


def behaviour_policy(mdp: FiniteMDP, name: str, epsilon: float) -> np.ndarray:
    """π(a|s): uniform, or ε-greedy in q_* (policies.epsilon_greedy_probabilities; ties to the first maximiser):
    ε/|A| + (1 − ε)·1(a = argmax_a' q_*(s, a'))."""
    check_choice("policy", name, POLICIES)
    if name == "uniform":
        return mdp.uniform_policy()
    check_float("epsilon", epsilon, 0.0, 1.0)
    return epsilon_greedy_probabilities(mdp.optimal()[1], epsilon)


def q_features(mdp: FiniteMDP, name: str) -> np.ndarray:
    """x(s, a): one-hot over S × A, or the block features (x(s) in action a's block)."""
    check_choice("q-features", name, Q_FEATURES)
    if name == "one-hot":
        return state_action_features(mdp)
    return block_state_action_features(state_features(mdp), mdp.n_actions)


def rms(estimate: np.ndarray, truth: np.ndarray, states: np.ndarray | slice = slice(None)) -> float:
    """RMS(v̂, v) over `states` (default every row): √( mean_{s ∈ states} (v̂(s) − v(s))² ) (and over actions for q)."""
    return float(np.sqrt(np.mean((estimate[states] - truth[states]) ** 2)))


def training_sets(episodes: list, gamma: float, X: np.ndarray, X_sa: np.ndarray, *, first_visit: bool = False
                  ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two regression data sets of the episodes: ⟨x(S_t), G_t⟩ for v̂ and ⟨x(S_t, A_t), G_t⟩ for q̂."""
    return (regression_data(episodes, X, gamma, first_visit=first_visit),
            regression_data(episodes, X_sa, gamma, action_values=True, first_visit=first_visit))


# ------------------------------------------------------------------ a linear model, on more and more episodes
def check_linear_settings(episodes: int, q_feature_kind: str, policy: str, epsilon: float) -> None:
    """One-line ValueError, before any work, for fewer than one episode, an unknown q-features kind or
    policy, or an ε outside [0, 1] for the ε-greedy policy."""
    check_int("episodes", episodes, 1)
    check_choice("q-features", q_feature_kind, Q_FEATURES)
    check_choice("policy", policy, POLICIES)
    if policy != "uniform":
        check_float("epsilon", epsilon, 0.0, 1.0)


@dataclass(frozen=True)
class RegressionCurve:
    """rms_error: one row per training-set size n (the first n episodes): {"episodes": n, "v_pi", "v_star",
    "q_pi", "q_star"}, RMS of v̂ and q̂ against each; v_hat (|S⁺|,) and q_hat (|S⁺|, |A|): the fits on
    every episode; the exact values beside them; transitions: the steps of every episode."""

    rms_error: list[dict]
    v_hat: np.ndarray
    q_hat: np.ndarray
    v_pi: np.ndarray
    q_pi: np.ndarray
    v_star: np.ndarray
    q_star: np.ndarray
    transitions: int


def linear_prediction(
    mdp: FiniteMDP, episodes: int, model: LinearRegression | None = None, *, policy: str = "uniform",
    epsilon: float = 0.1, q_feature_kind: str = "one-hot", first_visit: bool = False, seed: int = 0,
    name: str = "MDP", log_dir: Path | None = None,
) -> RegressionCurve:
    """v̂ and q̂ fitted (by copies of `model`, default least squares) on the first n = 10, 100, … episodes and on all `episodes`,
    sampled under behaviour_policy(mdp, policy, epsilon) with seed; each scored against v_π, v_*, q_π, q_*.
    Settings are checked first (check_linear_settings), then the memory of the largest training set (a
    refusal names the MDP by `name`). With log_dir, TensorBoard gets there (None: no logging) the scores per
    training-set size (tags rms_error/v_pi, rms_error/v_star, rms_error/q_pi, rms_error/q_star, step n) and
    the final v̂ beside v_π and v_* as a Markdown table (text `values`)."""
    check_linear_settings(episodes, q_feature_kind, policy, epsilon)
    model = LinearRegression() if model is None else model
    pi = behaviour_policy(mdp, policy, epsilon)
    X, X_sa = state_features(mdp), q_features(mdp, q_feature_kind)
    check_memory(f"regression of returns on {episodes:,} {name} episodes",
                 regression_bytes(mdp, pi, episodes, max(X.shape[-1], X_sa.shape[-1])))
    v_pi, q_pi = mdp.evaluate(pi)
    v_star, q_star = mdp.optimal()
    sampled = mdp.episodes(pi, episodes, np.random.default_rng(seed))
    S = mdp.nonterminal
    rows = []
    for n in sorted({n for n in (10**k for k in range(1, 8)) if n < episodes} | {episodes}):
        v_data, q_data = training_sets(sampled[:n], mdp.gamma, X, X_sa, first_visit=first_visit)
        v_hat = dataclasses.replace(model).fit(*v_data).predict(X)      # a fresh copy of the model per fit
        q_hat = dataclasses.replace(model).fit(*q_data).predict(X_sa)
        rows.append({"episodes": n, "v_pi": rms(v_hat, v_pi, S), "v_star": rms(v_hat, v_star, S),
                     "q_pi": rms(q_hat, q_pi, S), "q_star": rms(q_hat, q_star, S)})
    transitions = sum(len(episode[0]) for episode in sampled)
    curve = RegressionCurve(rows, v_hat, q_hat, v_pi, q_pi, v_star, q_star, transitions)
    if log_dir is not None:
        _log_curve(mdp, curve, log_dir)
    return curve


def _log_curve(mdp: FiniteMDP, curve: RegressionCurve, log_dir: Path) -> None:
    """linear_prediction's TensorBoard log (its docstring)."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir) as writer:
        for row in curve.rms_error:
            for tag in ("v_pi", "v_star", "q_pi", "q_star"):
                writer.add_scalar(f"rms_error/{tag}", row[tag], row["episodes"])
        lines = [f"| {mdp.state_names[s]} | {curve.v_hat[s]:.3f} | {curve.v_pi[s]:.3f} | {curve.v_star[s]:.3f} |"
                 for s in mdp.nonterminal]
        writer.add_text("values", "\n".join(["| state | v̂ | v_π | v_* |", "|---|---|---|---|", *lines]))


# ------------------------------------------------------------------ a network, on one training set
@dataclass(frozen=True)
class TrainingSets:
    """v and q: ⟨x(S_t), G_t⟩ and ⟨x(S_t, A_t), G_t⟩ (one-hot features) as (X, G), from episodes under π."""

    v: tuple[np.ndarray, np.ndarray]
    q: tuple[np.ndarray, np.ndarray]
    pi: np.ndarray

    @property
    def returns(self) -> int:
        """The rows of ⟨x(S_t), G_t⟩: one return per (first) visit of a state."""
        return self.v[1].size


def network_training_sets(mdp: FiniteMDP, episodes: int, model: NeuralRegression, *, first_visit: bool = False,
                          seed: int = 0, name: str = "MDP") -> TrainingSets:
    """The training sets of `episodes` episodes under the uniform policy, sampled with seed, for the
    network `model`. Checked first (one-line ValueError): at least one episode, the memory of both sets
    and of fitting the model (a refusal names the MDP by `name`), then the batch size against the rows."""
    check_int("episodes", episodes, 1)
    pi = mdp.uniform_policy()
    X, X_sa = state_features(mdp), state_action_features(mdp)
    data = regression_bytes(mdp, pi, episodes, X.shape[-1] + X_sa.shape[-1])  # both training sets at once
    check_memory(f"regression of returns on {episodes:,} {name} episodes", data)
    model.check_memory(round(episodes * episode_lengths(mdp, pi, episodes)[0]), X_sa.shape[-1], held=data)
    sampled = mdp.episodes(pi, episodes, np.random.default_rng(seed))
    v_set, q_set = training_sets(sampled, mdp.gamma, X, X_sa, first_visit=first_visit)
    model.check_rows(min(v_set[1].size, q_set[1].size))  # before any run directory is made
    return TrainingSets(v_set, q_set, pi)


@dataclass(frozen=True)
class NetworkFits:
    """v and q: the fitted networks (their costs J(w) per epoch); v_hat (|S|,) and q_hat (|S|, |A|) on the
    non-terminal states S, beside v_π and q_π (every state)."""

    v: NeuralRegression
    q: NeuralRegression
    v_hat: np.ndarray
    q_hat: np.ndarray
    v_pi: np.ndarray
    q_pi: np.ndarray


def network_prediction(mdp: FiniteMDP, data: TrainingSets, model: NeuralRegression, *,
                       log_dir: Path | None = None) -> NetworkFits:
    """Copies of the network `model` fitted to data.v and data.q (network_training_sets), scored on the
    non-terminal states against v_π and q_π. With log_dir, J(w) after each epoch goes to TensorBoard in
    log_dir/v and log_dir/q (tag model.tag) while each fit runs."""
    fits = []
    for part, training_set in (("v", data.v), ("q", data.q)):
        with _writer(log_dir, part, model.writer) as writer:
            fits.append(dataclasses.replace(model, writer=writer).fit(*training_set))
    v, q = fits
    v_pi, q_pi = mdp.evaluate(data.pi)
    X, X_sa, S = state_features(mdp), state_action_features(mdp), mdp.nonterminal
    q_hat = q.predict(X_sa[S].reshape(-1, X_sa.shape[-1])).reshape(S.size, mdp.n_actions)
    return NetworkFits(v, q, v.predict(X[S]), q_hat, v_pi, q_pi)


def cost_figure(fits: NetworkFits, title: str):
    """J(w) after each epoch, one curve per fitted network (v̂ and q̂). A matplotlib Figure outside
    pyplot (nothing to close): cost_figure(fits, title).savefig(path)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for name, fit in (("v", fits.v), ("q", fits.q)):
        axes.plot(np.arange(1, len(fit.costs) + 1), fit.costs, label=f"{name}̂ fitted to G_t")
    axes.set(xlabel="epoch", ylabel="J(w), mean squared error", title=title)
    axes.legend()
    figure.tight_layout()
    return figure


def _writer(log_dir: Path | None, part: str, default: Any):
    """A TensorBoard writer for log_dir/part (made only now), or the model's own writer without log_dir."""
    if log_dir is None:
        return nullcontext(default)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir / part))
