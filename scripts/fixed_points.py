"""The exact MC and TD fixed points of linear prediction on an episodic finite MDP (S&B §9.2-9.4), √VE and bounds.

Under the uniform policy (the random walks' own: left or right with probability ½), with the on-policy
distribution μ (eq. 9.2-9.3): w_MC = argmin VE (the μ-weighted projection of v_π), w_TD = A⁻¹b (eq. 9.12),
√VE of each, and the bounds of VE(w_TD): eq. 9.14's 1/(1−γ)·min VE where γ < 1 ("bound", "bound_applies"),
and min VE/(1−κ²) with κ = ‖γP_π‖_μ ("kappa", "bound_kappa"), which also covers γ = 1 when κ < 1.
A random walk's states are numbered 1..n (0 and n+1 are its terminals); the bases see them on the interval
[0.5, n + 0.5], so --groups 10 on the 1000-state walk is Example 9.1's groups of 100. Quiz 9's three states
have no order: one-hot only. The work is approximators.fixed_points.

    qapprox fixed-points --env random-walk-1000 --features aggregation --groups 10 --json
    qapprox fixed-points --env random-walk-19 --features fourier --order 5
"""

from __future__ import annotations

import json
import re

from qapprox.approximators.fixed_points import fixed_points
from qapprox.approximators.walk_features import KINDS, walk_features
from qapprox.envs import make_mdp
from qapprox.envs.validation import check_choice, choice_error
from qapprox.scripts._cli import ArgumentParser, run

# Tiles have no unique TD fixed point here: a tiling's extra tile (tile coding covers the box with tiles + 1)
# is never visited, so A is singular; walk-figures uses them.
FEATURES = tuple(kind for kind in KINDS if kind != "tiles")
FLAG_KINDS = {"groups": ("aggregation",), "order": ("polynomial", "fourier")}
ENVS = ("random-walk-N (e.g. random-walk-19)", "random-walk-1000", "quiz9")
SHOWN = 20  # the table lists the components of w up to this d


def features(env: str, kind: str | None, groups: int | None, order: int | None) -> tuple:
    """(mdp, X, kind) for the flags (kind None: aggregation, or one-hot for quiz9), checked: one-line ValueError
    for an unknown env or features, a flag that does not go with the features, groups outside [1, n], order < 0."""
    if not (env == "quiz9" or re.fullmatch(r"random-walk-[1-9][0-9]*", env)):
        raise choice_error("env", env, ENVS)
    kind = ("one-hot" if env == "quiz9" else "aggregation") if kind is None else kind
    check_choice("features", kind, FEATURES)
    settings = {"groups": groups, "order": order}
    for flag, value in settings.items():
        if value is not None and kind not in FLAG_KINDS[flag]:
            raise ValueError(f"--{flag} is for --features {' or '.join(FLAG_KINDS[flag])}, not {kind}")
    mdp = make_mdp(env)
    if env == "quiz9" and kind != "one-hot":
        raise ValueError(f"quiz9's states s_A, s_B, s_C have no positions for --features {kind}; use one-hot")
    return mdp, walk_features(mdp, kind, **{k: v for k, v in settings.items() if v is not None}), kind


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="random-walk-1000", help="random-walk-N, random-walk-1000 or quiz9")
    parser.add_argument("--features", help=" | ".join(FEATURES) + " (default: aggregation; quiz9: one-hot)")
    parser.add_argument("--groups", type=int, help="state aggregation: groups of equal width (default 10)")
    parser.add_argument("--order", type=int, help="polynomial / Fourier: the order (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    mdp, X, kind = features(args.env, args.features, args.groups, args.order)
    result = fixed_points(X, mdp, mdp.uniform_policy())
    summary = {"env": args.env, "features": kind, "d": X.shape[1], **result.summary()}
    if args.json:
        print(json.dumps(summary, allow_nan=False))
        return 0
    print(f"{args.env}, {kind} features (d = {X.shape[1]}), uniform policy, γ = {mdp.gamma:g}")
    if X.shape[1] <= SHOWN:
        print(f"{'i':>4}{'w_MC':>12}{'w_TD':>12}")
        for i, (mc, td) in enumerate(zip(result.w_mc, result.w_td)):
            print(f"{i:>4}{mc:>12.5f}{td:>12.5f}")
    else:
        print(f"(d > {SHOWN}: the components of w_MC and w_TD are in --json)")
    print(f"√VE(w_MC) = {result.rmsve_mc:.5f}   (the least possible: the μ-weighted projection of v_π)")
    print(f"√VE(w_TD) = {result.rmsve_td:.5f}")
    bound = f"{result.bound:.5g}" if result.bound_applies else "does not apply (γ = 1: its right side is infinite)"
    kappa = f"{result.bound_kappa:.5g}" if result.bound_kappa is not None else "none (κ = 1)"
    print(f"VE(w_TD) = {result.ve_td:.5g};  eq. 9.14, VE(w_MC)/(1−γ): {bound}")
    print(f"κ = ‖γP_π‖_μ = {result.kappa:.5g};  VE(w_MC)/(1−κ²): {kappa}")
    return 0


if __name__ == "__main__":
    run(main)
