"""Resident memory of DQN on CartPole-v1: `qapprox benchmark-memory` → benchmarks/memory.json.

Capacities 1e5 and 1e6: RSS after building the agent, over a short training run and with the buffer
filled; capacity 1e4: RSS through a run several times longer than the buffer (it should stay flat).
Each case runs in a process of its own; the machinery is qapprox.dqn.benchmark.memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qapprox.dqn.benchmark.memory import measure_memory
from qapprox.scripts._cli import ArgumentParser, recorded_command, run, set_threads


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="training steps for capacities 1e5 and 1e6")
    parser.add_argument("--growth-steps", type=int, default=30_000, help="training steps for the capacity-1e4 run")
    parser.add_argument("--sample-every", type=int, default=2_500, help="steps between RSS samples")
    parser.add_argument("--out", default="benchmarks/memory.json")
    parser.add_argument("--threads", type=int, default=1)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    measured = measure_memory(Path(args.out), recorded_command(parser.prog, "bench_memory", argv), args.steps,
                              args.growth_steps, args.sample_every, set_threads(args.threads))
    for case in measured["capacities"]:
        print(f"capacity {case['capacity']:>9,}: buffer {case['buffer_nbytes_mib']:6.1f} MiB stated; RSS "
              f"{case['rss_after_build_mib']:6.1f} MiB built → {max(s['rss_mib'] for s in case['samples']):6.1f} MiB "
              f"after {case['steps']:,} steps → {case['rss_full_mib']:6.1f} MiB full (rise {case['rss_rise_train_to_full_mib']:.1f} MiB "
              f"for {case['untouched_buffer_mib']:.1f} MiB of unwritten buffer); peak {case['peak_rss_mib']:.1f} MiB")
    growth = measured["bounded"]
    print(f"capacity {growth['capacity']:>9,}: RSS every {args.sample_every:,} steps: "
          + " ".join(f"{s['rss_mib']:.1f}" for s in growth["samples"])
          + f" MiB; growth after full {growth['rss_growth_after_full_mib']:+.1f} MiB")
    print(f"wrote {args.out} ({measured['seconds']} s)")
    return 0


if __name__ == "__main__":
    run(main)
