"""Neural-network regression of Monte Carlo returns: fitted v̂ and q̂ against the DP-exact v_π and q_π.

    qapprox nn-regression                                   # Quiz 9, Adam, 3000 episodes
    qapprox nn-regression --optimizer sgd --alpha 0.01 --batch-size 128
    qapprox nn-regression --env random-walk-5 --episodes 1000 --hidden   # no hidden layer

Collects episodes under the uniform random policy, builds the training sets ⟨x(S_t), G_t⟩ and
⟨x(S_t, A_t), G_t⟩ with one-hot features, fits one network to each by minimising
J(w) = (1/m) Σ (ŷ(x_i, w) − G_i)², and prints v̂ vs v_π and q̂ vs q_π with their RMS errors.
TensorBoard: RUN/v and RUN/q, tag cost/mse (J(w) after each epoch); RUN/cost.png draws both.
"""

from __future__ import annotations

import argparse

from qapprox.approximators.mc_prediction import cost_figure, network_prediction, network_training_sets, rms
from qapprox.approximators.networks import ACTIVATIONS, summary
from qapprox.approximators.nn_regression import OPTIMIZERS, NeuralRegression
from qapprox.envs import MDP_NAMES, make_mdp
from qapprox.envs.validation import check_int
from qapprox.dqn.logging import make_run_dir
from qapprox.scripts._cli import ArgumentParser, check_run_dir, finite_float, run, set_threads

DEFAULTS = NeuralRegression()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="quiz9", help=f"finite MDP: {', '.join(MDP_NAMES)} (default quiz9)")
    parser.add_argument("--episodes", type=int, default=3000, help="episodes under the uniform policy (default 3000)")
    parser.add_argument("--first-visit", action="store_true", help="one return per first visit (default: every visit)")
    parser.add_argument("--hidden", type=int, nargs="*", default=list(DEFAULTS.hidden),
                        help=f"hidden layer widths; none for a linear model (default {' '.join(map(str, DEFAULTS.hidden))})")
    parser.add_argument("--activation", default=DEFAULTS.activation, choices=[name for name in ACTIVATIONS if name != "linear"],
                        help=f"hidden activation (default {DEFAULTS.activation})")
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=OPTIMIZERS,
                        help=f"mini-batch SGD or Adam (default {DEFAULTS.optimizer})")
    parser.add_argument("--alpha", type=finite_float, default=DEFAULTS.alpha,
                        help=f"learning rate α > 0 (default {DEFAULTS.alpha})")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help=f"mini-batch size s, 1..m (default {DEFAULTS.batch_size})")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help=f"passes over the data (default {DEFAULTS.epochs})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the episodes and of the networks, 0 ≤ seed < 2**32 (default 0)")
    parser.add_argument("--logdir", default="runs", help="root of the TensorBoard runs (default runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_int("episodes", args.episodes, 1)
    model = NeuralRegression(hidden=tuple(args.hidden), activation=args.activation, optimizer=args.optimizer,
                             alpha=args.alpha, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    mdp = make_mdp(args.env)
    threads = set_threads(args.threads)
    directory = check_run_dir("--logdir", make_run_dir(args.logdir, args.env, "nn_regression", args.seed))
    data = network_training_sets(mdp, args.episodes, model, first_visit=args.first_visit, seed=args.seed, name=args.env)
    visits = "first-visit" if args.first_visit else "every-visit"
    print(f"env {args.env}, uniform policy, {args.episodes} episodes: {data.returns} returns ({visits}); threads {threads}")
    fits = network_prediction(mdp, data, model, log_dir=directory)
    print("\nThe network of q̂ (that of v̂ has the same layers on x(s)):")
    summary(fits.q.network, (fits.q.network[0].in_features,))

    states, v_pi, q_pi, v_hat, q_hat = mdp.nonterminal, fits.v_pi, fits.q_pi, fits.v_hat, fits.q_hat
    print(f"\n{'state':<10}{'v̂(s)':>11}{'v_π(s)':>10}{'error':>10}")
    for s, value in zip(states, v_hat):
        print(f"{mdp.state_names[s]:<10}{value:>10.3f}{v_pi[s]:>10.3f}{value - v_pi[s]:>10.3f}")
    print(f"RMS error of v̂: {rms(v_hat, v_pi[states]):.4f}   J(w) = {fits.v.costs[-1]:.4f}")
    print(f"\n{'state':<10}{'action':<10}{'q̂(s,a)':>11}{'q_π(s,a)':>10}{'error':>10}")
    for i, s in enumerate(states):
        for a in range(mdp.n_actions):
            print(f"{mdp.state_names[s]:<10}{mdp.action_names[a]:<10}{q_hat[i, a]:>10.3f}{q_pi[s, a]:>10.3f}{q_hat[i, a] - q_pi[s, a]:>10.3f}")
    print(f"RMS error of q̂: {rms(q_hat, q_pi[states]):.4f}   J(w) = {fits.q.costs[-1]:.4f}")

    cost_figure(fits, f"NN regression of returns, {args.env}").savefig(directory / "cost.png", dpi=100)
    print(f"\nTensorBoard: tensorboard --logdir {directory}   (tag cost/mse, runs v and q); wrote {directory / 'cost.png'}")
    return 0


if __name__ == "__main__":
    run(main)
