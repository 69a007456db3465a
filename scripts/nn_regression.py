"""Neural-network regression of Monte Carlo returns: fitted v̂ and q̂ against the DP-exact v_π and q_π.

    python -m scripts.nn_regression                                   # Quiz 9, Adam, 3000 episodes
    python -m scripts.nn_regression --optimizer sgd --alpha 0.01 --batch-size 128
    python -m scripts.nn_regression --env random-walk-5 --episodes 1000 --hidden   # no hidden layer

Collects episodes under the uniform random policy, builds the training sets ⟨x(S_t), G_t⟩ and
⟨x(S_t, A_t), G_t⟩ with one-hot features, fits one network to each by minimising
J(w) = (1/m) Σ (ŷ(x_i, w) − G_i)², and prints v̂ vs v_π and q̂ vs q_π with their RMS errors.
TensorBoard: RUN/v and RUN/q, tag cost/mse (J(w) after each epoch); RUN/cost.png draws both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from qapprox.approximators.features import state_action_features, state_features
from qapprox.approximators.limits import check_memory
from qapprox.approximators.monte_carlo import episode_lengths, regression_bytes, regression_data
from qapprox.approximators.networks import ACTIVATIONS, summary
from qapprox.approximators.nn_regression import OPTIMIZERS, NeuralRegression
from qapprox.envs import MDP_NAMES, make_mdp
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
    if args.episodes < 1:
        raise ValueError(f"episodes={args.episodes} must be ≥ 1")
    config = dict(hidden=tuple(args.hidden), activation=args.activation, optimizer=args.optimizer, alpha=args.alpha,
                  batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    model = NeuralRegression(**config)  # bad flags fail here, before any episode is collected
    mdp = make_mdp(args.env)
    threads = set_threads(args.threads)
    pi = mdp.uniform_policy()
    X, X_sa = state_features(mdp), state_action_features(mdp)
    data = regression_bytes(mdp, pi, args.episodes, X.shape[-1] + X_sa.shape[-1])  # both training sets at once
    check_memory(f"regression of returns on {args.episodes:,} {args.env} episodes", data)
    model.check_memory(round(args.episodes * episode_lengths(mdp, pi, args.episodes)[0]), X_sa.shape[-1], held=data)
    directory = check_run_dir("--logdir", make_run_dir(args.logdir, args.env, "nn_regression", args.seed))
    v_pi, q_pi = mdp.evaluate(pi)
    episodes = mdp.episodes(pi, args.episodes, np.random.default_rng(args.seed))
    X_v, G_v = regression_data(episodes, X, mdp.gamma, first_visit=args.first_visit)
    X_q, G_q = regression_data(episodes, X_sa, mdp.gamma, action_values=True, first_visit=args.first_visit)
    model.check_rows(min(G_v.size, G_q.size))  # before the run directory is made
    visits = "first-visit" if args.first_visit else "every-visit"
    print(f"env {args.env}, uniform policy, {args.episodes} episodes: {G_v.size} returns ({visits}); threads {threads}")

    fits = {}
    for name, (inputs, targets) in {"v": (X_v, G_v), "q": (X_q, G_q)}.items():
        with SummaryWriter(str(directory / name)) as writer:
            fits[name] = NeuralRegression(**config, writer=writer).fit(inputs, targets)
    print("\nThe network of q̂ (that of v̂ has the same layers on x(s)):")
    summary(fits["q"].network, (X_sa.shape[-1],))

    states = mdp.nonterminal
    v_hat = fits["v"].predict(X[states])
    q_hat = fits["q"].predict(X_sa[states].reshape(-1, X_sa.shape[-1])).reshape(states.size, mdp.n_actions)
    print(f"\n{'state':<10}{'v̂(s)':>11}{'v_π(s)':>10}{'error':>10}")
    for s, value in zip(states, v_hat):
        print(f"{mdp.state_names[s]:<10}{value:>10.3f}{v_pi[s]:>10.3f}{value - v_pi[s]:>10.3f}")
    print(f"RMS error of v̂: {np.sqrt(np.mean((v_hat - v_pi[states]) ** 2)):.4f}   J(w) = {fits['v'].costs[-1]:.4f}")
    print(f"\n{'state':<10}{'action':<10}{'q̂(s,a)':>11}{'q_π(s,a)':>10}{'error':>10}")
    for i, s in enumerate(states):
        for a in range(mdp.n_actions):
            print(f"{mdp.state_names[s]:<10}{mdp.action_names[a]:<10}{q_hat[i, a]:>10.3f}{q_pi[s, a]:>10.3f}{q_hat[i, a] - q_pi[s, a]:>10.3f}")
    print(f"RMS error of q̂: {np.sqrt(np.mean((q_hat - q_pi[states]) ** 2)):.4f}   J(w) = {fits['q'].costs[-1]:.4f}")

    save_cost_plot(fits, directory / "cost.png", f"NN regression of returns, {args.env}")
    print(f"\nTensorBoard: tensorboard --logdir {directory}   (tag cost/mse, runs v and q); wrote {directory / 'cost.png'}")
    return 0


def save_cost_plot(fits: dict[str, NeuralRegression], path: Path, title: str) -> None:
    """J(w) after each epoch, one curve per fitted network, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, fit in fits.items():
        axes.plot(np.arange(1, len(fit.costs) + 1), fit.costs, label=f"{name}̂ fitted to G_t")
    axes.set(xlabel="epoch", ylabel="J(w), mean squared error", title=title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    run(main)
