"""Benchmark qapprox's DQN against Stable-Baselines3 and CleanRL side by side, and against its floor.

    OMP_NUM_THREADS=1 python -m scripts.benchmark                       # everything, 5 seeds (long)
    python -m scripts.benchmark --suites sb3,default --seeds 0,1,2       # a subset
    python -m scripts.benchmark --suites cleanrl --cleanrl-python .venv-cleanrl/bin/python
    python -m scripts.benchmark --report-only                            # redraw table and PNGs

Suites (each writes benchmarks/dqn_<name>.json as it goes; the Markdown table and PNGs are drawn
from whichever of those files exist, so suites run separately compose):
  floor    bare env step, batch-1 action, one update (scripts.bench_worker.floor), per preset used
  sb3      qapprox and SB3 at the rl-baselines3-zoo CartPole-v1 preset ("sb3-zoo-cartpole")
  default  qapprox's default preset ("CartPole-v1"): steps and seconds to solve
  cleanrl  CleanRL's dqn.py at its defaults, and qapprox with --preset cleanrl-cartpole

Each training run is a subprocess of its own; per seed the sides alternate (qapprox, baseline, …) so
drift of this shared machine hits both. Each side runs at each of its thread settings on the first seed
(--qapprox-threads, default 1; --baseline-threads, default "1,default" = torch's own choice) and at
its faster one after.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from qapprox.scripts import bench_cleanrl, bench_report
from qapprox.scripts._cli import ArgumentParser, run

REPO = Path(__file__).resolve().parents[1]
SUITES = ("floor", "sb3", "default", "cleanrl")
FILES = {"floor": "dqn_floor.json", "sb3": "dqn_vs_sb3.json", "default": "dqn_default_preset.json",
         "cleanrl": "dqn_vs_cleanrl.json"}
SIDES = {  # suite → (kind, preset) per side, qapprox first
    "sb3": [("qapprox", "sb3-zoo-cartpole"), ("sb3", "sb3-zoo-cartpole")],
    "default": [("qapprox", "CartPole-v1")],
    "cleanrl": [("qapprox", "cleanrl-cartpole"), ("cleanrl", "cleanrl-defaults")],
}
FLOOR_PRESETS = {"sb3": "sb3-zoo-cartpole", "default": "CartPole-v1", "cleanrl": "cleanrl-cartpole"}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, load {os.getloadavg()[0]:.2f} at start"


def worker(kind: str, preset: str, seed: int, threads: str, args: argparse.Namespace) -> dict:
    """One scripts.bench_worker run in a fresh interpreter; its JSON result."""
    env = {**os.environ}
    env.pop("OMP_NUM_THREADS", None)
    command = [sys.executable, "-m", "qapprox.scripts.bench_worker", kind, "--preset", preset, "--seed", str(seed),
               "--eval-episodes", str(args.eval_episodes), "--floor-iterations", str(args.floor_iterations)]
    if threads != "default":
        env["OMP_NUM_THREADS"] = threads
        command += ["--threads", threads]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    with tempfile.TemporaryDirectory(prefix="qapprox-bench-") as folder:
        out = Path(folder) / "result.json"
        done = subprocess.run(command + ["--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}): {last}")
        return json.loads(out.read_text())


def side(kind: str, preset: str, seed: int, threads: str, args: argparse.Namespace, cleanrl_script: Path | None) -> dict:
    """One training run of one side; `thread_setting` records what was asked ("1", …, or "default")."""
    if kind == "cleanrl":
        result = bench_cleanrl.run(cleanrl_script, args.cleanrl_python, seed, args.steps, threads)
    else:
        result = worker(kind, preset, seed, threads, args)
    return {**result, "thread_setting": threads}


def show(run_result: dict) -> None:
    row = bench_report.describe(run_result)
    print(f"  {row['label']:32s} seed {row['seed']} threads {row['threads']}: {row['seconds']:7.1f} s, {row['sps']:6,.0f} SPS, "
          f"solve step {row['solve_step']}, eval {row['eval_mean']}, load {row['load']:.2f}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default: 0,1,2,3,4)")
    parser.add_argument("--steps", type=int, help="environment steps per training run (default: each preset's own)")
    parser.add_argument("--baseline-threads", default="1,default", help="thread settings tried for SB3 and CleanRL on the first seed")
    parser.add_argument("--qapprox-threads", default="1", help="thread settings tried for qapprox on the first seed (e.g. 1,2)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="greedy evaluation episodes after training")
    parser.add_argument("--floor-iterations", type=int, default=20_000, help="env steps and forward passes timed by the floor")
    parser.add_argument("--cleanrl-version", default="1.2.0")
    parser.add_argument("--cleanrl-python", default=sys.executable,
                        help="interpreter for CleanRL's dqn.py (needs gymnasium<1.0, stable-baselines3, tensorboard)")
    parser.add_argument("--cleanrl-cache", default=str(Path.home() / ".cache" / "qapprox-bench"), help="where cleanrl's wheel goes")
    parser.add_argument("--out-dir", default="benchmarks")
    parser.add_argument("--report-only", action="store_true", help="only redraw the Markdown table and PNGs from the JSON files")
    args = parser.parse_args(argv)
    args.suite_list = [s.strip() for s in args.suites.split(",") if s.strip()]
    for suite in args.suite_list:
        if suite not in SUITES:
            raise ValueError(f"suite {suite!r} is unknown; allowed: {', '.join(SUITES)}")
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"seeds={args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not args.seed_list:
        raise ValueError("seeds='' names no seed; e.g. --seeds 0,1,2")
    args.thread_lists = {}  # side → thread settings probed on the first seed
    for kind, text in (("baseline", args.baseline_threads), ("qapprox", args.qapprox_threads)):
        settings = [t.strip() for t in text.split(",") if t.strip()]
        if not settings or any(t != "default" and not (t.isdigit() and int(t) >= 1) for t in settings):
            raise ValueError(f"{kind}-threads={text!r} must list positive integers or 'default'")
        args.thread_lists[kind] = settings
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"steps={args.steps} must be ≥ 1")
    if os.sep in args.cleanrl_python:  # CleanRL runs in a temporary working directory
        args.cleanrl_python = str(Path(args.cleanrl_python).absolute())
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    if not args.report_only:
        measure(args, out_dir, command="python -m scripts.benchmark " + shlex.join(argv))
    report(out_dir)
    return 0


def measure(args: argparse.Namespace, out_dir: Path, command: str) -> None:
    training = [s for s in args.suite_list if s != "floor"]
    if "sb3" in training and importlib.util.find_spec("stable_baselines3") is None:
        raise ValueError("stable_baselines3 is not installed in this interpreter: pip install -e '.[bench]' "
                         "(or leave out the sb3 suite)")
    versions = worker_versions()
    common = {"command": command.strip(), "machine": machine(), "versions": versions, "seeds": args.seed_list}
    out_dir.mkdir(parents=True, exist_ok=True)

    if "floor" in args.suite_list:
        presets = [FLOOR_PRESETS[s] for s in training] or list(FLOOR_PRESETS.values())
        floors = {}
        for name in presets:
            result = worker("floor", name, 0, "1", args)
            floors[name] = result["floor"]
            print(f"floor {name}: {result['floor']['floor_sps']:,.0f} SPS (load {result['load_before']:.2f})", flush=True)
        # Presets measured by an earlier invocation stay (suites run separately compose).
        path = out_dir / FILES["floor"]
        earlier = json.loads(path.read_text())["floors"] if path.is_file() else {}
        write(path, {**common, "suite": "floor", "threads": 1, "floors": {**earlier, **floors}})

    cleanrl_script, notes = None, {suite: [] for suite in training}
    if "cleanrl" in training:
        reason = bench_cleanrl.check_python(args.cleanrl_python)
        if not reason:
            try:
                cleanrl_script = bench_cleanrl.fetch(args.cleanrl_version, Path(args.cleanrl_cache))
            except RuntimeError as exc:
                reason = str(exc)
        if reason:
            notes["cleanrl"].append(f"CleanRL not run: {reason}")
            print(f"CleanRL not run: {reason}", file=sys.stderr)
        else:
            notes["cleanrl"].append(f"CleanRL {args.cleanrl_version} dqn.py run unmodified from {cleanrl_script} under "
                                    f"{args.cleanrl_python} ({bench_cleanrl.versions(args.cleanrl_python)})")

    results = {suite: {**common, "suite": suite, "notes": notes[suite], "runs": [], "thread_probe": []} for suite in training}
    chosen: dict[tuple[str, str], str] = {}  # (side, preset) → its faster thread setting
    for index, seed in enumerate(args.seed_list):
        for suite in training:
            for kind, preset_name in SIDES[suite]:
                if kind == "cleanrl" and cleanrl_script is None:
                    continue
                key = (kind, preset_name)
                if index == 0:  # every side at each of its thread settings; the faster one for the other seeds
                    settings = args.thread_lists["qapprox" if kind == "qapprox" else "baseline"]
                    probes = [side(kind, preset_name, seed, threads, args, cleanrl_script) for threads in settings]
                    for probe in probes:
                        show(probe)
                    result = max(probes, key=lambda r: r["sps"])
                    chosen[key] = result["thread_setting"]
                    if len(probes) > 1:
                        results[suite]["thread_probe"] += [{k: v for k, v in p.items() if k != "episodes"} for p in probes]
                        results[suite]["notes"].append(f"{kind} thread settings tried on seed {seed}: " + ", ".join(
                            f"{p['thread_setting']} → {p['sps']:,.0f} SPS" for p in probes) + f"; used: {chosen[key]}")
                else:
                    result = side(kind, preset_name, seed, chosen[key], args, cleanrl_script)
                    show(result)
                results[suite]["runs"].append(result)
                results[suite]["summary"] = bench_report.summarise(results[suite]["runs"])
                write(out_dir / FILES[suite], results[suite])


def worker_versions() -> dict[str, str]:
    code = "import json, scripts.bench_worker as w; print(json.dumps(w.library_versions()))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def report(out_dir: Path) -> None:
    """benchmarks/dqn_benchmark.md and the learning-curve PNGs from the suite JSON files present."""
    results = {suite: json.loads((out_dir / name).read_text()) for suite, name in FILES.items() if (out_dir / name).is_file()}
    if not results:
        raise FileNotFoundError(f"no benchmark results (dqn_*.json) in {out_dir}; run without --report-only first")
    (out_dir / "dqn_benchmark.md").write_text(bench_report.markdown(results))
    print(f"wrote {out_dir / 'dqn_benchmark.md'}")
    sb3_runs = results.get("sb3", {}).get("runs", []) + results.get("default", {}).get("runs", [])
    if sb3_runs:
        bench_report.plot(sb3_runs, out_dir / "dqn_vs_sb3.png", "CartPole-v1: qapprox vs Stable-Baselines3 (zoo preset), and qapprox's default")
        print(f"wrote {out_dir / 'dqn_vs_sb3.png'}")
    if results.get("cleanrl", {}).get("runs"):
        bench_report.plot(results["cleanrl"]["runs"], out_dir / "dqn_vs_cleanrl.png", "CartPole-v1: qapprox vs CleanRL dqn.py")
        print(f"wrote {out_dir / 'dqn_vs_cleanrl.png'}")


if __name__ == "__main__":
    run(main)
