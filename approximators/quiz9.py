"""Quiz 9, questions 1, 2, 4 and 5 (3 is missing from the lecture), answered with live evidence.

    answers(seed=0, episodes=10_000)   # {"Q1": {...}, "Q2": …}: question, answer, evidence
    question4(counts=(10, 3000))       # one question, with the training-set sizes to try

Every answer is computed, not stored: Q1 from the DQN's Q-network builder, Q2 by counting the
weights TD(λ) changes on each step,

    z_t = γλ z_{t−1} + ∇v̂(S_t, w_t),   w_{t+1} = w_t + α δ_t z_t,

Q4 and Q5 by regressing returns on the Quiz 9 MDP and seeing which exact value function (from
dynamic programming) the fit approaches: E[G_t | S_t = s] = v_π(s), E[G_t | S_t = s, A_t = a] = q_π(s, a).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from qapprox.approximators.features import state_action_features, state_features
from qapprox.approximators.limits import check_memory
from qapprox.approximators.monte_carlo import LinearRegression, regression_bytes, regression_data
from qapprox.approximators.networks import mlp_q_network
from qapprox.approximators.traces import EpisodeBatch, TDLambda
from qapprox.envs import OneHotObservation, quiz9_mdp
from qapprox.envs.validation import check_int, check_seed

QUESTIONS = {
    "Q1": "Deep Q-Network refers to Reinforcement Learning with approximation of (A) state-value function "
          "via Linear Regression (B) action-value function via Deep Neural Network (C) action-value function "
          "via Random Forest (D) none of the above",
    "Q2": "With v̂(s, w) = w1·1(s=s_A) + w2·1(s=s_B) + w3·1(s=s_C), in TD(λ) with λ ∈ (0, 1] "
          "(z_t = γλ z_{t−1} + ∇v̂(S_t, w_t), w_{t+1} = w_t + α δ_t z_t) only one of the weights is "
          "updated on each time step. True or False?",
    "Q4": "A linear model fitted on ⟨x(S_t), G_t⟩, returns generated under π, outputs for input x(s) an "
          "estimate of (A) v_π(s) (B) q_π(s, a) (C) v_*(s) (D) q_*(s, a) (E) none of the above",
    "Q5": "A linear model fitted on ⟨(x(S_t), A_t), G_t⟩, returns generated under π, outputs for input "
          "(x(s), a) an estimate of (A) v_π(s) (B) q_π(s, a) (C) v_*(s) (D) q_*(s, a) (E) none of the above",
}


def question1(seed: int = 0) -> dict:
    """B: the DQN's Q-network maps x(s) through hidden layers to one q̂(s, a, w) per action.

    Built by approximators.networks.mlp_q_network on Quiz9-v0's one-hot x(s): a batch of states
    (n, |S⁺|) gives outputs (n, |A|), one q̂(s, a, w) per action, through nonlinear hidden layers.
    """
    env = OneHotObservation(gym.make("qapprox/Quiz9-v0"))
    obs, _ = env.reset(seed=seed)                                        # x(S_0), one-hot over S⁺
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    torch.manual_seed(seed)
    network = mlp_q_network(obs_dim, n_actions)
    mdp = env.unwrapped.mdp
    states = torch.eye(obs_dim)[torch.as_tensor(mdp.nonterminal)]       # x(s_A), x(s_B), x(s_C)
    with torch.no_grad():
        q = network(states)
        q_start = network(torch.as_tensor(obs)[None])[0]
    linear = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    nonlinear = [type(m).__name__ for m in network.modules()
                 if not isinstance(m, (torch.nn.Linear, torch.nn.Sequential)) and not list(m.children())]
    sizes = " → ".join([str(linear[0].in_features), *(str(m.out_features) for m in linear)])
    answer = "B" if q.shape == (len(mdp.nonterminal), n_actions) and len(linear) >= 3 and nonlinear else "?"
    return {
        "question": QUESTIONS["Q1"], "answer": answer, "available": True,
        "output_shape": list(q.shape), "hidden_layers": len(linear) - 1, "layer_sizes": sizes,
        "activations": nonlinear, "parameters": sum(p.numel() for p in network.parameters()),
        "evidence": [
            f"approximators.networks.mlp_q_network({obs_dim}, {n_actions}), the DQN's Q-network: "
            f"layers {sizes} with {', '.join(sorted(set(nonlinear)))} between, {len(linear) - 1} hidden layers, "
            f"{sum(p.numel() for p in network.parameters()):,} weights",
            f"a batch of states (3, {obs_dim}) → outputs {tuple(q.shape)}: one q̂(s, a, w) per action "
            f"(an action-value function), not one v̂(s, w)",
            f"Quiz9-v0 through OneHotObservation: x(S_0) = {obs.tolist()} → q̂(S_0, ·) = "
            f"{[round(float(v), 4) for v in q_start]} (untrained)",
        ],
    }


def question2(seed: int = 0, episodes: int = 20, lams: tuple[float, ...] = (0.0, 0.5, 0.9, 1.0),
              alpha: float = 0.5) -> dict:
    """False: with λ > 0 the trace z spreads each δ_t over every recently visited state's weight."""
    mdp = quiz9_mdp()
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 1, episodes, np.random.default_rng(seed))
    F = batch.feature_table(state_features(mdp))                         # x(s) ∈ {0,1}³: weights w1, w2, w3
    lam = np.array(lams)[:, None]                                        # one row per λ
    learner = TDLambda(np.zeros((len(lams), 1, 3)), trace="accumulating", alpha=alpha, lam=lam, gamma=mdp.gamma)
    changed = []                                                         # nonzero entries of Δw, per step and λ
    for e in range(episodes):
        learner.start_episode()
        for t in range(batch.length[0, e]):
            w_before = learner.w.copy()
            learner.step(F[batch.index[:, e, t]], F[batch.index[:, e, t + 1]], batch.reward[:, e, t])
            changed.append(np.count_nonzero(learner.w - w_before, axis=-1)[:, 0])
    changed = np.array(changed)
    counts = {f"{l:g}": np.bincount(changed[:, i], minlength=4).tolist() for i, l in enumerate(lams)}
    only_zero_changes_one = all(changed[:, i].max() == 1 for i, l in enumerate(lams) if l == 0)
    positive_changes_more = all(changed[:, i].max() > 1 for i, l in enumerate(lams) if l > 0)
    evidence = [f"TD(λ), accumulating traces, on Quiz9 (γ={mdp.gamma:g}, α={alpha:g}), uniform policy, "
                f"{episodes} episodes = {len(changed)} steps; nonzero entries of Δw = w_(t+1) − w_t per step:"]
    for l, histogram in counts.items():
        evidence.append(f"λ={l}: " + ", ".join(f"{k} weight(s) changed on {n} step(s)" for k, n in enumerate(histogram) if n))
    return {"question": QUESTIONS["Q2"], "answer": "False" if only_zero_changes_one and positive_changes_more else "?",
            "steps": len(changed), "weights_changed_histogram": counts,
            "max_weights_changed": {l: int(changed[:, i].max()) for i, l in enumerate(counts)}, "evidence": evidence}


def _regression_evidence(question: str, seed: int, counts: tuple[int, ...], action_values: bool) -> dict:
    """Least squares on ⟨x, G_t⟩ from more and more episodes: which exact values does the fit approach?"""
    mdp = quiz9_mdp()
    pi = mdp.uniform_policy()
    v_pi, q_pi = mdp.evaluate(pi)
    v_star, q_star = mdp.optimal()
    S = mdp.nonterminal
    features = state_action_features(mdp) if action_values else state_features(mdp)
    candidates = {"B": q_pi[S], "D": q_star[S]} if action_values else {"A": v_pi[S], "C": v_star[S]}
    name = {"A": "v_π", "B": "q_π", "C": "v_*", "D": "q_*"}
    episodes = mdp.episodes(pi, max(counts), np.random.default_rng(seed))
    errors = {letter: [] for letter in candidates}
    for n in counts:
        X, G = regression_data(episodes[:n], features, mdp.gamma, action_values=action_values)
        fit = LinearRegression("lstsq").fit(X, G)
        estimate = fit.predict(features[S])
        for letter, truth in candidates.items():
            errors[letter].append(float(np.abs(estimate - truth).max()))
    answer = min(candidates, key=lambda letter: errors[letter][-1])
    pairs = "⟨x(S_t, A_t), G_t⟩ (one-hot x(s, a), 6 weights)" if action_values else "⟨x(S_t), G_t⟩ (one-hot x(s), 3 weights)"
    evidence = [f"least squares on {pairs}, Quiz9 under the uniform policy π, γ={mdp.gamma:g}; "
                f"max |fit − exact| over {'(s, a)' if action_values else 's'}:"]
    for i, n in enumerate(counts):
        evidence.append(f"{n:>6} episodes: " + ", ".join(f"vs {name[k]} ({k}) {errors[k][i]:.3f}" for k in candidates))
    rows = "rows s_A, s_B, s_C; columns a_0, a_1" if action_values else "s_A, s_B, s_C"
    evidence.append(f"fit on {counts[-1]} episodes ({rows}): {np.round(estimate, 3).reshape(len(S), -1).squeeze().tolist()}; "
                    f"exact {name[answer]}: {np.round(candidates[answer], 3).squeeze().tolist()}")
    if not action_values:
        evidence.append("(B) and (D) are functions of (s, a), but the input x(s) carries no action")
    return {"question": QUESTIONS[question], "answer": answer, "episodes": list(counts),
            "max_error": {name[k]: errors[k] for k in candidates}, "evidence": evidence}


def question4(seed: int = 0, counts: tuple[int, ...] = (10, 100, 1000, 10000)) -> dict:
    """A: E[G_t | S_t = s] = v_π(s), and least squares on one-hot x(s) is the average return of s."""
    return _regression_evidence("Q4", seed, counts, action_values=False)


def question5(seed: int = 0, counts: tuple[int, ...] = (10, 100, 1000, 10000)) -> dict:
    """B: E[G_t | S_t = s, A_t = a] = q_π(s, a)."""
    return _regression_evidence("Q5", seed, counts, action_values=True)


def training_set_sizes(episodes: int) -> tuple[int, ...]:
    """Q4 and Q5 fit on the first n episodes for n = 10, 100, 1000, … below `episodes`, then on all of
    them (episodes ≥ 10)."""
    check_int("episodes", episodes, 10)
    return tuple(sorted({n for n in (10, 100, 1000, 10_000, 100_000) if n < episodes} | {episodes}))


def answers(seed: int = 0, episodes: int = 10_000) -> dict[str, dict]:
    """Every question's answer and evidence, Q4 and Q5 from up to `episodes` episodes (≥ 10); the seed
    and the memory of the largest training set are checked (one-line ValueError) before any work."""
    counts = training_set_sizes(episodes)
    check_seed("seed", seed)
    mdp = quiz9_mdp()
    check_memory(f"Q4 and Q5's regression of returns on {episodes:,} episodes",
                 regression_bytes(mdp, mdp.uniform_policy(), episodes, state_action_features(mdp).shape[-1]))
    return {"Q1": question1(seed), "Q2": question2(seed), "Q4": question4(seed, counts), "Q5": question5(seed, counts)}
