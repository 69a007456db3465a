"""Monte Carlo regression of returns: fit v̂(s) on ⟨x(S_t), G_t⟩ and q̂(s, a) on ⟨x(S_t, A_t), G_t⟩.

    python -m scripts.mc_regression --env quiz9 --episodes 10000
    python -m scripts.mc_regression --env random-walk-19 --method minibatch --alpha 0.01 --epochs 20

Episodes follow the uniform policy (or ε-greedy in q_* with --policy epsilon-optimal). The fitted
values are printed beside the DP-exact v_π, q_π and v_*, q_*: the fit estimates v_π and q_π, the
values of the policy that made the data. TensorBoard gets the RMS error of fits on the first
n = 10, 100, … episodes (tags rms_error/v_pi, rms_error/v_star, rms_error/q_pi, rms_error/q_star,
step n) and the final table as text. The work and the log are approximators.mc_prediction.linear_prediction.
"""

from __future__ import annotations

import argparse
import json

from qapprox.approximators.mc_prediction import check_linear_settings, linear_prediction
from qapprox.approximators.monte_carlo import LinearRegression
from qapprox.envs import make_mdp
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, add_output_flags, check_run_dir, finite_float, run, set_threads

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
    add_output_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mdp = make_mdp(args.env)
    check_linear_settings(args.episodes, args.q_features, args.policy, args.epsilon)
    model = LinearRegression(method=args.method, ridge=args.ridge, alpha=args.alpha, epochs=args.epochs,
                             batch_size=args.batch_size, seed=args.seed)   # bad settings fail here, before any work
    threads = set_threads(args.threads)                       # torch is used only for TensorBoard here
    log_dir = check_run_dir("--logdir", make_run_dir(args.logdir, args.env, f"mc_regression-{args.method}", args.seed))
    if not args.json:
        print(f"threads: {threads}")
    curve = linear_prediction(mdp, args.episodes, model, policy=args.policy, epsilon=args.epsilon,
                              q_feature_kind=args.q_features, first_visit=args.first_visit, seed=args.seed, name=args.env,
                              log_dir=log_dir)
    v_hat, q_hat, v_pi, q_pi, v_star, q_star = curve.v_hat, curve.q_hat, curve.v_pi, curve.q_pi, curve.v_star, curve.q_star
    S = mdp.nonterminal

    if args.json:
        print(json.dumps({
            "env": args.env, "policy": args.policy, "episodes": args.episodes, "transitions": curve.transitions,
            "method": args.method, "first_visit": args.first_visit, "states": [mdp.state_names[s] for s in S],
            "v_hat": v_hat[S].tolist(), "v_pi": v_pi[S].tolist(), "v_star": v_star[S].tolist(),
            "q_hat": q_hat[S].tolist(), "q_pi": q_pi[S].tolist(), "q_star": q_star[S].tolist(),
            "rms_error": curve.rms_error,
        }))
        return 0
    print(f"{args.env}, {args.policy} policy: {args.episodes} episodes, {curve.transitions} transitions, "
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
    for row in curve.rms_error:
        print(f"{row['episodes']:>9} {row['v_pi']:9.3f} {row['v_star']:9.3f} {row['q_pi']:9.3f} {row['q_star']:9.3f}")
    print(f"TensorBoard: tensorboard --logdir {args.logdir}   ({log_dir})")
    return 0


if __name__ == "__main__":
    run(main)
