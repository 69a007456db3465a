"""Monte Carlo regression of returns: fit v̂(s) on ⟨x(S_t), G_t⟩ and q̂(s, a) on ⟨x(S_t, A_t), G_t⟩.

    python -m scripts.mc_regression --env quiz9 --episodes 10000
    python -m scripts.mc_regression --env random-walk-19 --method minibatch --alpha 0.01 --epochs 20

Episodes follow the uniform policy (or ε-greedy in q_* with --policy epsilon-optimal). The fitted
values are printed beside the DP-exact v_π, q_π and v_*, q_*: the fit estimates v_π and q_π, the
values of the policy that made the data. TensorBoard gets the RMS error of fits on the first
n = 10, 100, … episodes (tags rms_error/v_pi, rms_error/v_star, rms_error/q_pi, rms_error/q_star,
step n) and the final table as text.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from qapprox.approximators.features import block_state_action_features, state_action_features, state_features
from qapprox.approximators.limits import check_memory
from qapprox.approximators.monte_carlo import LinearRegression, regression_bytes, regression_data
from qapprox.envs import FiniteMDP, make_mdp
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, check_run_dir, finite_float, run, set_threads

POLICIES = ("uniform", "epsilon-optimal")
Q_FEATURES = ("one-hot", "block")
MAX_TABLE_STATES = 40


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="quiz9", help="quiz9, random-walk-N or random-walk-1000")
    parser.add_argument("--episodes", type=int, default=10_000, help="episodes pooled into one training set")
    parser.add_argument("--policy", default="uniform", help="uniform | epsilon-optimal (ε-greedy in q_*)")
    parser.add_argument("--epsilon", type=finite_float, default=0.1, help="ε of --policy epsilon-optimal, in [0, 1]")
    parser.add_argument("--method", default="lstsq", help="lstsq | sgd | minibatch")
    parser.add_argument("--ridge", type=finite_float, default=0.0, help="ridge penalty ≥ 0")
    parser.add_argument("--alpha", type=finite_float, default=0.01, help="SGD step size > 0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--first-visit", action="store_true", help="first-visit returns (default every visit)")
    parser.add_argument("--q-features", default="one-hot", help="one-hot over S×A | block (x(s) in action a's block)")
    parser.add_argument("--seed", type=int, default=0, help="0 ≤ seed < 2**32")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--logdir", default="runs", help="TensorBoard root directory")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def behaviour_policy(mdp: FiniteMDP, name: str, epsilon: float) -> np.ndarray:
    """π(a|s): uniform, or ε/|A| + (1 − ε)·1(a = argmax q_*(s, ·))."""
    if name not in POLICIES:
        raise ValueError(f"policy={name!r} is not one of {', '.join(POLICIES)}")
    if name == "uniform":
        return mdp.uniform_policy()
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon} is outside [0, 1]")
    return epsilon * mdp.uniform_policy() + (1 - epsilon) * mdp.greedy_policy(mdp.optimal()[1])


def fit_values(episodes: list, mdp: FiniteMDP, X: np.ndarray, X_sa: np.ndarray, model: dict, first_visit: bool):
    """v̂(s) for every s and q̂(s, a) for every (s, a), each from its own regression of returns."""
    v_fit = LinearRegression(**model).fit(*regression_data(episodes, X, mdp.gamma, first_visit=first_visit))
    q_fit = LinearRegression(**model).fit(
        *regression_data(episodes, X_sa, mdp.gamma, action_values=True, first_visit=first_visit))
    return v_fit.predict(X), q_fit.predict(X_sa)


def rms(estimate: np.ndarray, truth: np.ndarray, states: np.ndarray) -> float:
    return float(np.sqrt(np.mean((estimate[states] - truth[states]) ** 2)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mdp = make_mdp(args.env)
    if args.episodes < 1:
        raise ValueError(f"episodes={args.episodes} must be ≥ 1")
    if args.q_features not in Q_FEATURES:
        raise ValueError(f"q-features={args.q_features!r} is not one of {', '.join(Q_FEATURES)}")
    model = dict(method=args.method, ridge=args.ridge, alpha=args.alpha, epochs=args.epochs,
                 batch_size=args.batch_size, seed=args.seed)
    LinearRegression(**model)                                  # bad settings fail here, before any work
    pi = behaviour_policy(mdp, args.policy, args.epsilon)
    X = state_features(mdp)
    X_sa = state_action_features(mdp) if args.q_features == "one-hot" else block_state_action_features(X, mdp.n_actions)
    threads = set_threads(args.threads)                       # torch is used only for TensorBoard here
    check_memory(f"regression of returns on {args.episodes:,} {args.env} episodes",
                 regression_bytes(mdp, pi, args.episodes, max(X.shape[-1], X_sa.shape[-1])))
    log_dir = check_run_dir("--logdir", make_run_dir(args.logdir, args.env, f"mc_regression-{args.method}", args.seed))
    v_pi, q_pi = mdp.evaluate(pi)
    v_star, q_star = mdp.optimal()
    episodes = mdp.episodes(pi, args.episodes, np.random.default_rng(args.seed))
    S = mdp.nonterminal

    if not args.json:
        print(f"threads: {threads}")
    from torch.utils.tensorboard import SummaryWriter

    counts = sorted({n for n in (10**k for k in range(1, 8)) if n < args.episodes} | {args.episodes})
    by_count = []
    with SummaryWriter(log_dir) as writer:
        for n in counts:
            v_hat, q_hat = fit_values(episodes[:n], mdp, X, X_sa, model, args.first_visit)
            errors = {"v_pi": rms(v_hat, v_pi, S), "v_star": rms(v_hat, v_star, S),
                      "q_pi": rms(q_hat, q_pi, S), "q_star": rms(q_hat, q_star, S)}
            for tag, value in errors.items():
                writer.add_scalar(f"rms_error/{tag}", value, n)
            by_count.append({"episodes": n, **errors})
        lines = [f"| {mdp.state_names[s]} | {v_hat[s]:.3f} | {v_pi[s]:.3f} | {v_star[s]:.3f} |" for s in S]
        writer.add_text("values", "\n".join(["| state | v̂ | v_π | v_* |", "|---|---|---|---|", *lines]))

    transitions = sum(len(episode[0]) for episode in episodes)
    if args.json:
        print(json.dumps({
            "env": args.env, "policy": args.policy, "episodes": args.episodes, "transitions": transitions,
            "method": args.method, "first_visit": args.first_visit, "states": [mdp.state_names[s] for s in S],
            "v_hat": v_hat[S].tolist(), "v_pi": v_pi[S].tolist(), "v_star": v_star[S].tolist(),
            "q_hat": q_hat[S].tolist(), "q_pi": q_pi[S].tolist(), "q_star": q_star[S].tolist(),
            "rms_error": by_count,
        }))
        return 0
    print(f"{args.env}, {args.policy} policy: {args.episodes} episodes, {transitions} transitions, "
          f"{'first' if args.first_visit else 'every'}-visit returns, {args.method} fit")
    if S.size <= MAX_TABLE_STATES:
        print(f"\n{'state':>10} {'v̂(s)':>9} {'v_π(s)':>9} {'v_*(s)':>9}")
        for s in S:
            print(f"{mdp.state_names[s]:>10} {v_hat[s]:9.3f} {v_pi[s]:9.3f} {v_star[s]:9.3f}")
        print(f"\n{'state':>10} {'action':>8} {'q̂(s,a)':>9} {'q_π(s,a)':>9} {'q_*(s,a)':>9}")
        for s in S:
            for a in range(mdp.n_actions):
                print(f"{mdp.state_names[s]:>10} {mdp.action_names[a]:>8} {q_hat[s, a]:9.3f} "
                      f"{q_pi[s, a]:9.3f} {q_star[s, a]:9.3f}")
    print("\nRMS error over states of the fit on the first n episodes:")
    print(f"{'n':>9} {'v̂ − v_π':>9} {'v̂ − v_*':>9} {'q̂ − q_π':>9} {'q̂ − q_*':>9}")
    for row in by_count:
        print(f"{row['episodes']:>9} {row['v_pi']:9.3f} {row['v_star']:9.3f} {row['q_pi']:9.3f} {row['q_star']:9.3f}")
    print(f"TensorBoard: tensorboard --logdir {args.logdir}   ({log_dir})")
    return 0


if __name__ == "__main__":
    run(main)
