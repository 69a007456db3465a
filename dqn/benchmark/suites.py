"""The benchmark's suites and their driver: qapprox's DQN against Stable-Baselines3 and CleanRL side by
side, and against its floor.

Suites (each writes out_dir/dqn_<name>.json as it goes; the Markdown table and PNGs are drawn from
whichever of those files exist, so suites run separately compose):
  floor    bare env step, batch-1 action, one update (`floor.floor`), per preset used
  sb3      qapprox and SB3 at the rl-baselines3-zoo CartPole-v1 preset ("sb3-zoo-cartpole")
  default  qapprox's default preset ("CartPole-v1"): steps and seconds to solve
  cleanrl  CleanRL's dqn.py at its defaults, and qapprox with the preset "cleanrl-cartpole"
  population  K = 1, 4, 16, 64 members in lockstep against one run and SB3's four seeds (dqn.benchmark.population;
           its own file dqn_population.json, not part of the Markdown table)

Each training run is a subprocess of its own (`python -m qapprox.dqn.benchmark.worker`); per seed the
sides alternate (qapprox, baseline, …) so drift of a shared machine hits both. Each side runs at each
of its thread settings on the first seed and at its faster one after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qapprox.dqn.benchmark import cleanrl, population, report
from qapprox.dqn.benchmark.worker import library_versions
from qapprox.envs.validation import check_choice, check_int, check_seed

SUITES = ("floor", "sb3", "default", "cleanrl", "population")
FILES = {"floor": "dqn_floor.json", "sb3": "dqn_vs_sb3.json", "default": "dqn_default_preset.json",
         "cleanrl": "dqn_vs_cleanrl.json"}
SIDES = {  # suite → (kind, preset) per side, qapprox first
    "sb3": [("qapprox", "sb3-zoo-cartpole"), ("sb3", "sb3-zoo-cartpole")],
    "default": [("qapprox", "CartPole-v1")],
    "cleanrl": [("qapprox", "cleanrl-cartpole"), ("cleanrl", "cleanrl-defaults")],
}
FLOOR_PRESETS = {"sb3": "sb3-zoo-cartpole", "default": "CartPole-v1", "cleanrl": "cleanrl-cartpole"}


@dataclass
class BenchmarkSettings:
    """What one benchmark invocation measures. Thread settings are positive integers as text, or
    "default" (torch's own choice); cleanrl_python runs CleanRL's dqn.py (it needs gymnasium < 1.0)."""

    suites: tuple[str, ...] = SUITES
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int | None = None  # environment steps per training run; None: each preset's own
    qapprox_threads: tuple[str, ...] = ("1",)
    baseline_threads: tuple[str, ...] = ("1", "default")  # SB3 and CleanRL
    eval_episodes: int = 20  # greedy episodes after training
    floor_iterations: int = 20_000  # env steps and forward passes timed by the floor
    cleanrl_version: str = "1.2.0"
    cleanrl_python: str = sys.executable
    cleanrl_cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "qapprox-bench")

    def __post_init__(self) -> None:
        for suite in self.suites:
            check_choice("suite", suite, SUITES, label="suite")
        if not self.seeds:
            raise ValueError("seeds names no seed; e.g. --seeds 0,1,2")
        for seed in self.seeds:
            check_seed("seed", seed)
        for name in ("qapprox_threads", "baseline_threads"):
            settings = getattr(self, name)
            if not settings or any(t != "default" and not (t.isdigit() and int(t) >= 1) for t in settings):
                raise ValueError(f"{name.replace('_', '-')}={','.join(settings)!r} must list positive integers or 'default'")
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        check_int("eval-episodes", self.eval_episodes, 0)
        check_int("floor-iterations", self.floor_iterations, 1)
        if os.sep in self.cleanrl_python:  # CleanRL runs in a temporary working directory
            self.cleanrl_python = str(Path(self.cleanrl_python).absolute())

    @property
    def training(self) -> list[str]:
        return [suite for suite in self.suites if suite not in ("floor", "population")]


def machine() -> str:
    model = platform.processor()
    if Path("/proc/cpuinfo").exists():
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, load {os.getloadavg()[0]:.2f} at start"


def run_worker(kind: str, preset: str, seed: int, threads: str, settings: BenchmarkSettings) -> dict:
    """One `worker.measure` in a fresh interpreter; its JSON result."""
    env = {**os.environ}
    env.pop("OMP_NUM_THREADS", None)
    command = [sys.executable, "-m", "qapprox.dqn.benchmark.worker", kind, "--preset", preset, "--seed", str(seed),
               "--eval-episodes", str(settings.eval_episodes), "--floor-iterations", str(settings.floor_iterations)]
    if threads != "default":
        env["OMP_NUM_THREADS"] = threads
        command += ["--threads", threads]
    if settings.steps is not None:
        command += ["--steps", str(settings.steps)]
    with tempfile.TemporaryDirectory(prefix="qapprox-bench-") as folder:
        out = Path(folder) / "result.json"
        done = subprocess.run(command + ["--out", str(out)], cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}): {last}")
        return json.loads(out.read_text())


def run_side(kind: str, preset: str, seed: int, threads: str, settings: BenchmarkSettings,
             cleanrl_script: Path | None) -> dict:
    """One training run of one side; `thread_setting` records what was asked ("1", …, or "default")."""
    if kind == "cleanrl":
        result = cleanrl.run(cleanrl_script, settings.cleanrl_python, seed, settings.steps, threads)
    else:
        result = run_worker(kind, preset, seed, threads, settings)
    return {**result, "thread_setting": threads}


def describe_line(run_result: dict) -> str:
    row = report.describe(run_result)
    return (f"  {row['label']:32s} seed {row['seed']} threads {row['threads']}: {row['seconds']:7.1f} s, {row['sps']:6,.0f} SPS, "
            f"solve step {row['solve_step']}, eval {row['eval_mean']}, load {row['load']:.2f}")


def run_suites(settings: BenchmarkSettings, out_dir: Path, command: str, log: Callable[[str], None] = print) -> None:
    """Run the suites of `settings`, writing out_dir/dqn_<suite>.json after every run; `log` gets a line per run."""
    training = settings.training
    if "sb3" in training and importlib.util.find_spec("stable_baselines3") is None:
        raise ValueError("stable_baselines3 is not installed in this interpreter: pip install -e '.[bench]' "
                         "(or leave out the sb3 suite)")
    common = {"command": command.strip(), "machine": machine(), "versions": library_versions(), "seeds": list(settings.seeds)}
    out_dir.mkdir(parents=True, exist_ok=True)
    if "floor" in settings.suites:
        run_floors(settings, out_dir, common, log)
    if "population" in settings.suites:
        population.run_suite(settings, out_dir / "dqn_population.json", common, log)

    cleanrl_script, notes = None, {suite: [] for suite in training}
    if "cleanrl" in training:
        cleanrl_script, note = prepare_cleanrl(settings)
        notes["cleanrl"].append(note)
        if cleanrl_script is None:
            print(note, file=sys.stderr)

    results = {suite: {**common, "suite": suite, "notes": notes[suite], "runs": [], "thread_probe": []} for suite in training}
    chosen: dict[tuple[str, str], str] = {}  # (side, preset) → its faster thread setting
    for index, seed in enumerate(settings.seeds):
        for suite in training:
            for kind, preset_name in SIDES[suite]:
                if kind == "cleanrl" and cleanrl_script is None:
                    continue
                key = (kind, preset_name)
                if index == 0:  # every side at each of its thread settings; the faster one for the other seeds
                    tried = settings.qapprox_threads if kind == "qapprox" else settings.baseline_threads
                    probes = [run_side(kind, preset_name, seed, threads, settings, cleanrl_script) for threads in tried]
                    for probe in probes:
                        log(describe_line(probe))
                    result = max(probes, key=lambda r: r["sps"])
                    chosen[key] = result["thread_setting"]
                    if len(probes) > 1:
                        results[suite]["thread_probe"] += [{k: v for k, v in p.items() if k != "episodes"} for p in probes]
                        results[suite]["notes"].append(f"{kind} thread settings tried on seed {seed}: " + ", ".join(
                            f"{p['thread_setting']} → {p['sps']:,.0f} SPS" for p in probes) + f"; used: {chosen[key]}")
                else:
                    result = run_side(kind, preset_name, seed, chosen[key], settings, cleanrl_script)
                    log(describe_line(result))
                results[suite]["runs"].append(result)
                results[suite]["summary"] = report.summarise(results[suite]["runs"])
                report.write(out_dir / FILES[suite], results[suite])


def run_floors(settings: BenchmarkSettings, out_dir: Path, common: dict, log: Callable[[str], None]) -> None:
    """The floor of each preset the training suites use (all three if none), one thread each."""
    presets = [FLOOR_PRESETS[s] for s in settings.training] or list(FLOOR_PRESETS.values())
    floors = {}
    for name in presets:
        result = run_worker("floor", name, 0, "1", settings)
        floors[name] = result["floor"]
        log(f"floor {name}: {result['floor']['floor_sps']:,.0f} SPS (load {result['load_before']:.2f})")
    # Presets measured by an earlier invocation stay (suites run separately compose).
    path = out_dir / FILES["floor"]
    earlier = json.loads(path.read_text())["floors"] if path.is_file() else {}
    report.write(path, {**common, "suite": "floor", "threads": 1, "floors": {**earlier, **floors}})


def prepare_cleanrl(settings: BenchmarkSettings) -> tuple[Path | None, str]:
    """(CleanRL's dqn.py, a note saying what runs it), or (None, why CleanRL is not run)."""
    reason = cleanrl.check_python(settings.cleanrl_python)
    if not reason:
        try:
            script = cleanrl.fetch(settings.cleanrl_version, Path(settings.cleanrl_cache))
        except RuntimeError as exc:
            reason = str(exc)
    if reason:
        return None, f"CleanRL not run: {reason}"
    return script, (f"CleanRL {settings.cleanrl_version} dqn.py run unmodified from {script} under "
                    f"{settings.cleanrl_python} ({cleanrl.versions(settings.cleanrl_python)})")


def write_report(out_dir: Path) -> list[Path]:
    """out_dir/dqn_benchmark.md and the learning-curve PNGs from the suite JSON files present; the paths written."""
    results = {suite: json.loads((out_dir / name).read_text()) for suite, name in FILES.items() if (out_dir / name).is_file()}
    if not results:
        if (out_dir / "dqn_population.json").is_file():  # the population suite has its own file, no table here
            return []
        raise FileNotFoundError(f"no benchmark results (dqn_*.json) in {out_dir}; run without --report-only first")
    written = [out_dir / "dqn_benchmark.md"]
    written[0].write_text(report.markdown(results))
    sb3_runs = results.get("sb3", {}).get("runs", []) + results.get("default", {}).get("runs", [])
    if sb3_runs:
        written.append(out_dir / "dqn_vs_sb3.png")
        report.plot(sb3_runs, written[-1], "CartPole-v1: qapprox vs Stable-Baselines3 (zoo preset), and qapprox's default")
    if results.get("cleanrl", {}).get("runs"):
        written.append(out_dir / "dqn_vs_cleanrl.png")
        report.plot(results["cleanrl"]["runs"], written[-1], "CartPole-v1: qapprox vs CleanRL dqn.py")
    return written
