"""Resident memory of DQN on CartPole-v1: `python -m scripts.bench_memory` → benchmarks/memory.json.

For buffer capacities 1e5 and 1e6: RSS of a fresh process after building the agent (the buffer is
allocated up front; the OS commits its pages as they are written), the peak RSS over a short training
run, and the RSS once the buffer is filled to capacity (transitions added through ReplayBuffer.add):
the rise from the end of training to full should match the part of the stated nbytes not yet written.
For capacity 1e4 and a run several times longer than that: RSS sampled every --sample-every steps,
and its growth after the buffer is full (bounded memory: it should stay flat).
Each case runs in its own process so that one case's peak does not hide another's.
RSS comes from psutil if installed, else /proc/self/status (VmRSS, VmHWM), else getrusage's ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qapprox.scripts._cli import ArgumentParser, run, set_threads

MIB = 2**20


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, in bytes."""
    import resource

    status = _proc_status()
    peak = status.get("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
        1 if sys.platform == "darwin" else 1024)
    try:
        import psutil

        return psutil.Process().memory_info().rss, peak
    except ImportError:
        return status.get("VmRSS", peak), peak


def _proc_status() -> dict[str, int]:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}


def worker(capacity: int, steps: int, sample_every: int, fill: bool, threads: int) -> dict:
    """One case, in this process: train `steps` steps sampling RSS, then optionally fill the buffer."""
    import numpy as np

    from qapprox.dqn.agent import DQN
    from qapprox.dqn.config import DQNConfig

    rss_start, _ = rss_bytes()
    agent = DQN(DQNConfig(buffer_size=capacity, total_timesteps=steps, logdir="", eval_interval=0, threads=threads))
    rss_built, _ = rss_bytes()
    samples, started = [], time.perf_counter()
    for target in range(sample_every, steps + 1, sample_every):
        agent.learn(target)
        samples.append({"step": agent.global_step, "stored": len(agent.replay), "rss_mib": rss_bytes()[0] / MIB})
    seconds = time.perf_counter() - started
    result = {"capacity": capacity, "steps": agent.global_step, "train_seconds": round(seconds, 1),
              "buffer_nbytes_mib": agent.replay.nbytes / MIB, "rss_before_agent_mib": rss_start / MIB,
              "rss_after_build_mib": rss_built / MIB, "samples": samples}
    if fill:  # the rest of the ring, through the same add() the agent uses: every page of it is now written
        obs = np.zeros((1, *agent.obs_shape), dtype=np.float32)
        action, reward, done = np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.float32), np.zeros(1, dtype=bool)
        for _ in range(capacity):  # one whole lap of the ring
            agent.replay.add(obs, action, reward, obs, done, done)
        result["rss_full_mib"] = rss_bytes()[0] / MIB
        # Training wrote about `steps` rows; the fill commits the rest: compare the rise with their share of nbytes.
        result["rss_rise_train_to_full_mib"] = result["rss_full_mib"] - samples[-1]["rss_mib"]
        result["untouched_buffer_mib"] = result["buffer_nbytes_mib"] * max(0.0, 1 - agent.global_step / capacity)
    result["peak_rss_mib"] = rss_bytes()[1] / MIB
    agent.close()
    return result


def run_case(capacity: int, steps: int, sample_every: int, fill: bool, threads: int) -> dict:
    argv = [sys.executable, "-m", "qapprox.scripts.bench_memory", "--worker", str(capacity), str(steps), str(sample_every),
            str(int(fill)), "--threads", str(threads)]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if result.returncode != 0:
        raise RuntimeError(f"case capacity={capacity} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def growth_after_full(case: dict) -> float:
    """RSS change (MiB) from the first sample with the buffer full to the last."""
    full = [sample["rss_mib"] for sample in case["samples"] if sample["step"] >= case["capacity"]]
    return full[-1] - full[0] if len(full) >= 2 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="training steps for capacities 1e5 and 1e6")
    parser.add_argument("--growth-steps", type=int, default=30_000, help="training steps for the capacity-1e4 run")
    parser.add_argument("--sample-every", type=int, default=2_500, help="steps between RSS samples")
    parser.add_argument("--out", default="benchmarks/memory.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", nargs=4, type=int, metavar=("CAPACITY", "STEPS", "SAMPLE_EVERY", "FILL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "growth_steps", "sample_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)} must be ≥ 1")
    threads = set_threads(args.threads)
    if args.worker:
        capacity, steps, sample_every, fill = args.worker
        print(json.dumps(worker(capacity, steps, sample_every, bool(fill), threads)))
        return 0
    print(f"torch threads: {threads}; RSS from {'psutil' if _has_psutil() else '/proc/self/status or getrusage'}")
    started = time.perf_counter()
    cases = [run_case(capacity, args.steps, args.sample_every, True, threads) for capacity in (100_000, 1_000_000)]
    growth = run_case(10_000, args.growth_steps, args.sample_every, False, threads)
    growth["rss_growth_after_full_mib"] = growth_after_full(growth)
    for case in cases:
        print(f"capacity {case['capacity']:>9,}: buffer {case['buffer_nbytes_mib']:6.1f} MiB stated; RSS "
              f"{case['rss_after_build_mib']:6.1f} MiB built → {max(s['rss_mib'] for s in case['samples']):6.1f} MiB "
              f"after {case['steps']:,} steps → {case['rss_full_mib']:6.1f} MiB full (rise {case['rss_rise_train_to_full_mib']:.1f} MiB "
              f"for {case['untouched_buffer_mib']:.1f} MiB of unwritten buffer); peak {case['peak_rss_mib']:.1f} MiB")
    print(f"capacity {growth['capacity']:>9,}: RSS every {args.sample_every:,} steps: "
          + " ".join(f"{s['rss_mib']:.1f}" for s in growth["samples"])
          + f" MiB; growth after full {growth['rss_growth_after_full_mib']:+.1f} MiB")
    report = {"env_id": "CartPole-v1", "command": " ".join(["python -m scripts.bench_memory", *(argv or sys.argv[1:])]),
              "threads": threads, "seconds": round(time.perf_counter() - started, 1), "capacities": cases,
              "bounded": growth}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} ({report['seconds']} s)")
    return 0


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    run(main)
