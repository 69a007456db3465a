"""Quiz 9, questions 1, 2, 4 and 5 (3 is missing from the lecture), answered with live evidence.

    python -m scripts.quiz9            # question, answer, evidence
    python -m scripts.quiz9 --json     # one JSON object {"Q1": {...}, "Q2": …}

Every answer is computed, not stored (approximators.quiz9.answers): Q1 from the DQN's Q-network builder,
Q2 by counting the weights TD(λ) changes on each step, Q4 and Q5 by regressing returns on the Quiz 9 MDP
and seeing which exact value function (from dynamic programming) the fit approaches.
"""

from __future__ import annotations

import json

from qapprox.approximators.quiz9 import answers
from qapprox.scripts._cli import ArgumentParser, run, set_threads


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="0 ≤ seed < 2**32")
    parser.add_argument("--episodes", type=int, default=10_000, help="largest training set for Q4 and Q5, ≥ 10")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    results = answers(args.seed, args.episodes)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"threads: {threads}")
    for key, result in results.items():
        print(f"\nQuestion {key[1:]}. {result['question']}\nAnswer: {result['answer']}")
        for line in result["evidence"]:
            print(f"  - {line}")
    return 0


if __name__ == "__main__":
    run(main)
