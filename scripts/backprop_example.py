"""The lecture's worked example: forward propagation and backpropagation through a 2-2-1 network.

    u_h = f(z_h^(1)),  z_h^(1) = w_0h^(1) + w_1h^(1) x_1 + w_2h^(1) x_2,   h = 1, 2
    ŷ   = f(z^(2)),    z^(2)   = w_0^(2) + w_1^(2) u_1 + w_2^(2) u_2
    L   = (ŷ − y)²,    ε^(2) = 2(ŷ − y),   ε_h^(1) = ε^(2) f'(z^(2)) w_h^(2)
    ∂L/∂w_h^(2) = ε^(2) f'(z^(2)) u_h,     ∂L/∂w_jh^(1) = ε_h^(1) f'(z_h^(1)) x_j   (x_0 = u_0 = 1)
    one SGD step: w := w − α ∇L

The numbers come from approximators.worked_example.worked_example; this front prints them.

    python -m scripts.backprop_example
    python -m scripts.backprop_example --weights 0.5 1 -0.5 -1 0.5 1 0.5 1 -0.5 --x1 1 --x2 2 --y 1 --alpha 0.1 --json
"""

from __future__ import annotations

import json

from qapprox.approximators.mlp import HIDDEN_ACTIVATIONS
from qapprox.approximators.worked_example import DEFAULT_WEIGHTS, WEIGHT_NAMES, worked_example
from qapprox.scripts._cli import ArgumentParser, finite_float, run


def report(r: dict) -> str:
    """The example as the lecture writes it, one number a line."""
    f = r["activation"]
    lines = [
        f"2-2-1 network, f = {f} in the hidden and output units, L = (ŷ − y)²",
        f"x = ({r['x'][0]:.10g}, {r['x'][1]:.10g}), y = {r['y']:.10g}, α = {r['alpha']:.10g}",
        "",
        "forward propagation",
        f"  z_1^(1) = w_01^(1) + w_11^(1) x_1 + w_21^(1) x_2 = {r['z1'][0]:.10g}",
        f"  z_2^(1) = w_02^(1) + w_12^(1) x_1 + w_22^(1) x_2 = {r['z1'][1]:.10g}",
        f"  u_1     = f(z_1^(1))                            = {r['u'][0]:.10g}",
        f"  u_2     = f(z_2^(1))                            = {r['u'][1]:.10g}",
        f"  z^(2)   = w_0^(2) + w_1^(2) u_1 + w_2^(2) u_2   = {r['z2']:.10g}",
        f"  ŷ       = f(z^(2))                              = {r['y_hat']:.10g}",
        f"  L       = (ŷ − y)²                              = {r['loss']:.10g}",
        "",
        "backpropagation",
        f"  ε^(2)   = ∂L/∂ŷ   = 2(ŷ − y)                 = {r['eps2']:.10g}",
        f"  ε_1^(1) = ∂L/∂u_1 = ε^(2) f'(z^(2)) w_1^(2)  = {r['eps1'][0]:.10g}",
        f"  ε_2^(1) = ∂L/∂u_2 = ε^(2) f'(z^(2)) w_2^(2)  = {r['eps1'][1]:.10g}",
        "",
        f"{'':2}{'weight':<10}{'w':>14}{'∂L/∂w':>14}{'w − α ∂L/∂w':>16}",
    ]
    for name, w, g, w_after in zip(r["weight_names"], r["weights"], r["grad"], r["weights_after"]):
        lines.append(f"  {name:<10}{w:>14.10g}{g:>14.10g}{w_after:>16.10g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=finite_float, nargs=9, default=DEFAULT_WEIGHTS, metavar="W",
                        help="the nine weights in the lecture's order: " + " ".join(WEIGHT_NAMES))
    parser.add_argument("--x1", type=finite_float, default=1.0, help="input x_1")
    parser.add_argument("--x2", type=finite_float, default=2.0, help="input x_2")
    parser.add_argument("--y", type=finite_float, default=1.0, help="observed output y")
    parser.add_argument("--alpha", type=finite_float, default=0.1, help="learning rate α > 0 of the SGD step")
    parser.add_argument("--activation", default="relu", choices=HIDDEN_ACTIVATIONS,
                        help="f in every unit (the lecture's: relu)")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    args = parser.parse_args(argv)
    result = worked_example(tuple(args.weights), args.x1, args.x2, args.y, args.alpha, args.activation)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    run(main)
