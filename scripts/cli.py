"""The `qapprox` command: `qapprox SUBCOMMAND [FLAGS]`, one subcommand per script of qapprox.scripts.

`qapprox train` is `python -m scripts.train_dqn`, and so on: each subcommand's flags, output and exit codes are
its script's. `qapprox --help` lists them with the first line of each script's docstring, read from the source
so that listing them imports neither torch nor gymnasium.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version

from ._cli import run

# subcommand → module of qapprox.scripts, in the order of the ladder: the lecture, then the agent, then tools.
SUBCOMMANDS = {
    "quiz9": "quiz9",
    "td-lambda": "td_lambda",
    "mountain-car": "mountain_car",
    "fixed-points": "fixed_points",
    "walk-figures": "walk_figures",
    "mc-regression": "mc_regression",
    "backprop-example": "backprop_example",
    "gd-paths": "gd_paths",
    "nn-regression": "nn_regression",
    "baird": "baird",
    "train": "train_dqn",
    "evaluate": "evaluate",
    "plot": "plot_runs",
    "sweep": "sweep",
    "triad": "triad",
    "benchmark": "benchmark",
    "benchmark-linear": "bench_linear",
    "benchmark-figures": "bench_figures",
    "benchmark-memory": "bench_memory",
}
PACKAGE = __package__  # qapprox.scripts (or scripts, run from a checkout; also under python -m)


def summary(module: str) -> str:
    """The first sentence-line of a script's docstring (its first paragraph, on one line), without importing it."""
    spec = importlib.util.find_spec(f"{PACKAGE}.{module}")
    source = spec.loader.get_source(spec.name) if spec is not None and spec.loader is not None else None
    doc = ast.get_docstring(ast.parse(source)) if source else None
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {summary(module)}" for name, module in SUBCOMMANDS.items()]
    return ("usage: qapprox SUBCOMMAND [FLAGS]   (qapprox SUBCOMMAND --help for its flags)\n\n"
            "Function approximation for reinforcement learning, end to end.\n\nsubcommands:\n"
            + "\n".join(lines) + "\n\n  --version      print the version and exit\n")


def package_version() -> str:
    try:
        return version("qapprox")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(usage(), end="", file=sys.stderr)
        sys.exit(2)
    if argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        sys.exit(0)
    if argv[0] == "--version":
        print(f"qapprox {package_version()}")
        sys.exit(0)
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand {name!r:.60}; choose one of {', '.join(SUBCOMMANDS)} (see qapprox --help)",
              file=sys.stderr)
        sys.exit(2)
    script = importlib.import_module(f"{PACKAGE}.{SUBCOMMANDS[name]}")
    sys.argv = [f"qapprox {name}", *rest]  # argparse's prog: `usage: qapprox train …`
    run(script.main)


if __name__ == "__main__":
    main()
