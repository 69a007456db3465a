"""The population suite (issue 13): K members in lockstep against one run, and against Stable-Baselines3.

    qapprox benchmark --suites population                      # writes benchmarks/dqn_population.json
    python -m qapprox.dqn.benchmark.population 16 --steps 50000 --threads 1 --out r.json   # one run
    python -m qapprox.dqn.benchmark.population --products --out p.json    # the products table alone

CartPole-v1 at the default preset, `steps` environment steps per member, no TensorBoard, checkpoints or
evaluation during training. Each run is a fresh interpreter (clean peaks and threads); the runs alternate
— K = 1, an SB3 seed, K = 4, the next SB3 seed, … — so drift of a shared machine hits every side:

  throughput  wall seconds and aggregate environment steps per second, K · steps / seconds, for K in
              `members` at one torch thread and the largest K at two; the ratio to the K = 1 run
  sb3         four seeds of SB3 at its zoo preset, one after another: their summed wall time against
              the wall time of the K = 16 population
  memory      the peak RSS of each population against the bound K × (a single run's replay) + 200 MiB
  profile     cProfile's top functions of the K = 16 population over PROFILE_STEPS steps
  products    µs per member of one update's network arithmetic alone (ByHand: the three forwards of a
              Double DQN update and one backward, batch_size rows per member) for each K: how much
              cheaper batching makes the products themselves
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qapprox.dqn.command_line import run as run_command
from qapprox.envs.validation import check_int

MEMBERS = (1, 4, 16, 64)
SB3_SEEDS = 4
PROFILE_STEPS = 10_000
PRODUCT_ROUNDS = 3
MEMORY_SLACK = 200 * 2**20  # the bound: K × a single run's replay + 200 MiB


def measure(members: int, steps: int, threads: int, profile: bool = False) -> dict:
    """One population of `members` (seeds 0 … K − 1) trained for `steps` steps per member, in this process."""
    import torch

    from qapprox.dqn.agent import DQN
    from qapprox.dqn.benchmark.memory import rss_bytes
    from qapprox.dqn.benchmark.worker import library_versions
    from qapprox.dqn.config import preset

    torch.set_num_threads(threads)
    config = preset("CartPole-v1", logdir="", eval_interval=0, checkpoint_interval=0, device="cpu", threads=threads,
                    total_timesteps=steps)
    agent = DQN(config, seeds=range(members))
    load_before = os.getloadavg()[0]
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    agent.learn()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    result = {"kind": "population", "members": members, "steps": steps, "threads": torch.get_num_threads(),
              "seconds": seconds, "aggregate_sps": members * steps / seconds, "replay_bytes": agent.replay.nbytes,
              "peak_rss": rss_bytes()[1], "updates": agent.updates, "load_before": load_before,
              "load_after": os.getloadavg()[0], "versions": library_versions(),
              "recent_returns": [m.recent_return for m in agent.members]}
    result["memory_bound"] = agent.replay.nbytes + MEMORY_SLACK
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        result["profile"] = text.getvalue().splitlines()
    agent.close()
    return result


def products(members: int, threads: int = 1, repeats: int | None = None) -> dict:
    """One update's network arithmetic for K members of the default preset's network, in this process:
    q̂(S, ·, w), q̂(S′, ·, w) and q̂(S′, ·, w⁻) as three ByHand forwards of batch_size rows, then one backward
    of ε (module doc); µs per update and per member, the median of five timings of `repeats` updates
    (by default about 4,000 member-updates each)."""
    import statistics

    import torch

    from qapprox.approximators.backprop import backprop, flatten_members
    from qapprox.approximators.networks import mlp_q_network
    from qapprox.dqn.benchmark.floor import per_call
    from qapprox.dqn.config import preset

    torch.set_num_threads(threads)
    config = preset("CartPole-v1")
    torch.manual_seed(0)
    models = [mlp_q_network(4, 2, config.hidden) for _ in range(members)]
    w, _ = flatten_members(models)
    net = backprop(models, w)
    x, eps = torch.randn(members, config.batch_size, 4), torch.randn(members, config.batch_size, 2)

    def update() -> None:
        for _ in range(3):  # the backward reads the last forward's inputs
            net.forward(x)
        net.backward(eps)

    repeats = repeats or max(100, 4_000 // members)
    for _ in range(repeats // 10):
        update()
    us = per_call(update, repeats, repeats=5, statistic=statistics.median) * 1e6
    return {"kind": "products", "members": members, "threads": torch.get_num_threads(), "us_per_update": us,
            "us_per_member": us / members}


def run_population(members: int, steps: int, threads: int, profile: bool = False, arithmetic: bool = False) -> dict:
    """measure() (arithmetic: products()) in a fresh interpreter; its JSON result."""
    import subprocess
    import tempfile

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="qapprox-bench-") as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "qapprox.dqn.benchmark.population", str(members), "--steps", str(steps),
                   "--threads", str(threads), "--out", str(out)] + (["--profile"] if profile else []) + \
                  (["--products"] if arithmetic else [])
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}): {last}")
        return json.loads(out.read_text())


def run_suite(settings, out_path: Path, common: dict, log: Callable[[str], None]) -> dict:
    """The suite (module doc), alternating populations with SB3 seeds; out_path is rewritten after every run."""
    from qapprox.dqn.benchmark.suites import run_worker

    steps = settings.steps or 50_000
    plan = [(k, 1) for k in MEMBERS] + [(MEMBERS[-2], 2), (1, 1)]  # the largest-but-one K at two threads; K = 1 again
    result = {**common, "suite": "population", "steps_per_member": steps, "populations": [], "sb3": []}
    import importlib.util

    sb3_available = importlib.util.find_spec("stable_baselines3") is not None
    if not sb3_available:
        result["notes"] = ["stable_baselines3 is not installed: the SB3 side was skipped (pip install -e '.[bench]')"]
    for index, (members, threads) in enumerate(plan):
        run = run_population(members, steps, threads)
        result["populations"].append(run)
        log(f"  population K={members:3d} threads {threads}: {run['seconds']:7.1f} s, {run['aggregate_sps']:8,.0f} "
            f"aggregate SPS, peak RSS {run['peak_rss'] / 2**20:,.0f} MiB (bound {run['memory_bound'] / 2**20:,.0f})")
        if sb3_available and index < SB3_SEEDS:
            sb3 = run_worker("sb3", "sb3-zoo-cartpole", index, "1", settings)
            result["sb3"].append({k: v for k, v in sb3.items() if k != "episodes"})
            log(f"  sb3 zoo seed {index} threads 1: {sb3['seconds']:7.1f} s, {sb3['sps']:6,.0f} SPS")
        result["summary"] = summarise(result)
        out_path.write_text(json.dumps(result, indent=1))
    profiled = run_population(16, min(steps, PROFILE_STEPS), 1, profile=True)
    result["profile_k16"] = {"steps": profiled["steps"], "lines": profiled["profile"]}
    result["products"] = products_table(log)
    result["summary"] = summarise(result)
    out_path.write_text(json.dumps(result, indent=1))
    return result


def products_table(log: Callable[[str], None], rounds: int = PRODUCT_ROUNDS) -> list[dict]:
    """products() for every K in MEMBERS at one and two threads, each in a fresh interpreter, `rounds` rounds
    of all of them in turn (a shared machine's speed drifts between processes); per (K, threads) every
    round's µs per member and their median."""
    import statistics

    runs: dict[tuple[int, int], list[float]] = {}
    for _ in range(rounds):
        for members in MEMBERS:
            for threads in (1, 2):
                run = run_population(members, 1, threads, arithmetic=True)
                runs.setdefault((members, threads), []).append(run["us_per_member"])
    table = [{"members": k, "threads": n, "us_per_member": statistics.median(us), "rounds": us}
             for (k, n), us in runs.items()]
    for row in table:
        log(f"  products K={row['members']:3d} threads {row['threads']}: {row['us_per_member']:6.1f} µs per member "
            f"per update (rounds: {', '.join(f'{u:.0f}' for u in row['rounds'])})")
    return table


def summarise(result: dict) -> dict:
    """Ratios to the K = 1 runs (their mean), the SB3 comparison and the memory bound, per population."""
    populations = result["populations"]
    single = [p["aggregate_sps"] for p in populations if p["members"] == 1 and p["threads"] == 1]
    base = sum(single) / len(single) if single else float("nan")
    # The process itself (Python, torch, gymnasium) holds a few hundred MiB before any replay: besides the
    # issue's literal bound, the rise over the K = 1 run's peak against (K − 1) single replays + 200 MiB.
    single_peak = min((p["peak_rss"] for p in populations if p["members"] == 1), default=float("nan"))
    rows = [{"members": p["members"], "threads": p["threads"], "seconds": p["seconds"],
             "aggregate_sps": p["aggregate_sps"], "ratio_to_one": p["aggregate_sps"] / base,
             "peak_rss_mib": p["peak_rss"] / 2**20, "bound_mib": p["memory_bound"] / 2**20,
             "within_bound": p["peak_rss"] <= p["memory_bound"],
             "rise_over_single_mib": (p["peak_rss"] - single_peak) / 2**20,
             "rise_bound_mib": ((p["members"] - 1) * p["replay_bytes"] / p["members"] + MEMORY_SLACK) / 2**20}
            for p in populations]
    summary = {"single_run_sps": base, "rows": rows}
    k16 = [p["seconds"] for p in populations if p["members"] == 16 and p["threads"] == 1]
    if result["sb3"] and k16:
        summary["sb3_seconds_four_seeds"] = sum(r["seconds"] for r in result["sb3"])
        summary["sb3_seeds"] = len(result["sb3"])
        summary["population16_seconds"] = k16[0]
    return summary


def main(argv: list[str] | None = None) -> int:
    """The subprocess entry point: one population measurement → the JSON file --out; --products without
    members: the whole products table (products_table) → --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=int, nargs="?")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--products", action="store_true", help="time one update's network arithmetic only")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.members is None:
        if not args.products:
            parser.error("members is required (or --products alone for the whole products table)")
        table = products_table(print)
        Path(args.out).write_text(json.dumps({"command": " ".join(["python -m qapprox.dqn.benchmark.population",
                                                                    *sys.argv[1:]]), "products": table}, indent=1))
        return 0
    check_int("members", args.members, 1)
    check_int("steps", args.steps, 1)
    check_int("threads", args.threads, 1)
    if args.products:
        result = products(args.members, args.threads)
        Path(args.out).write_text(json.dumps(result))
        print(f"products K={args.members}: {result['us_per_member']:.1f} µs per member per update")
        return 0
    result = measure(args.members, args.steps, args.threads, args.profile)
    Path(args.out).write_text(json.dumps(result))
    print(f"population K={args.members}: {result['aggregate_sps']:.0f} aggregate SPS, {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    run_command(main)
