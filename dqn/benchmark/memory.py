"""Resident memory of DQN on CartPole-v1 (default preset), each case in a process of its own so that one
case's peak does not hide another's:

    python -m qapprox.dqn.benchmark.memory CAPACITY STEPS SAMPLE_EVERY FILL THREADS   # one case, JSON on stdout

For buffer capacities 1e5 and 1e6: RSS of a fresh process after building the agent (the buffer is
allocated up front; the OS commits its pages as they are written), the peak RSS over a short training
run, and the RSS once the buffer is filled to capacity (transitions added through ReplayBuffer.add):
the rise from the end of training to full should match the part of the stated nbytes not yet written.
For capacity 1e4 and a run several times longer than that: RSS sampled every `sample_every` steps,
and its growth after the buffer is full (bounded memory: it should stay flat).
RSS comes from psutil if installed, else /proc/self/status (VmRSS, VmHWM), else getrusage's ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qapprox.envs.validation import check_int

MIB = 2**20
ENV_ID = "CartPole-v1"  # DQNConfig's default env


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


def rss_source() -> str:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "/proc/self/status or getrusage"
    return "psutil"


def case(capacity: int, steps: int, sample_every: int, fill: bool, threads: int) -> dict:
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
    """`case` in a fresh interpreter."""
    argv = [sys.executable, "-m", "qapprox.dqn.benchmark.memory", str(capacity), str(steps), str(sample_every),
            str(int(fill)), str(threads)]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if result.returncode != 0:
        raise RuntimeError(f"case capacity={capacity} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def growth_after_full(case: dict) -> float:
    """RSS change (MiB) from the first sample with the buffer full to the last."""
    full = [sample["rss_mib"] for sample in case["samples"] if sample["step"] >= case["capacity"]]
    return full[-1] - full[0] if len(full) >= 2 else float("nan")


def measure_memory(out: Path, command: str, steps: int = 10_000, growth_steps: int = 30_000, sample_every: int = 2_500,
                   threads: int = 1, log: Callable[[str], None] = print) -> dict:
    """Capacities 1e5 and 1e6 trained `steps` steps and filled, and capacity 1e4 trained `growth_steps`
    steps: the report, written to `out` (report.write) with the command that ran it, and returned. `log`
    hears where RSS comes from."""
    from qapprox.dqn.benchmark.report import write  # here: a case's process starts light, its RSS measured from there

    for name, value in (("steps", steps), ("growth-steps", growth_steps), ("sample-every", sample_every)):
        check_int(f"--{name}", value, 1)
    log(f"torch threads: {threads}; RSS from {rss_source()}")
    started = time.perf_counter()
    cases = [run_case(capacity, steps, sample_every, True, threads) for capacity in (100_000, 1_000_000)]
    growth = run_case(10_000, growth_steps, sample_every, False, threads)
    growth["rss_growth_after_full_mib"] = growth_after_full(growth)
    result = {"env_id": ENV_ID, "command": command, "threads": threads, "seconds": round(time.perf_counter() - started, 1),
              "capacities": cases, "bounded": growth}
    write(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    """The subprocess entry point of one case: its JSON result on stdout."""
    parser = argparse.ArgumentParser(description="one case of the memory benchmark")
    for name in ("capacity", "steps", "sample_every", "fill", "threads"):
        parser.add_argument(name, type=int)
    args = parser.parse_args(argv)
    import torch

    from qapprox.approximators.limits import check_threads

    torch.set_num_threads(check_threads("threads", args.threads))
    print(json.dumps(case(args.capacity, args.steps, args.sample_every, bool(args.fill), args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
