"""CleanRL's dqn.py as a benchmark side: fetched from PyPI at benchmark time, run as published.

Its code is never copied into this repository. `fetch` runs `pip download --no-deps cleanrl==VERSION`
into a cache folder and extracts cleanrl/dqn.py beside the wheel; `run` starts that file unmodified
in a temporary working directory (it writes its TensorBoard run there) and parses the line it
prints per finished episode (global_step counts from 0), timed as it arrives:

    global_step=11929, episodic_return=[9.]

CleanRL 1.2.0's dqn.py reads `infos["final_info"]` and `infos["final_observation"]`, which gymnasium
1.x no longer returns, and imports stable_baselines3's ReplayBuffer; so it runs under an interpreter
with gymnasium 0.29 and stable-baselines3 2.x (the benchmark's `cleanrl_python`), checked by `check_python`.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

EPISODE_LINE = re.compile(r"global_step=(\d+), episodic_return=\[?\s*([-+\d.eE]+)\s*\]?")
DEFAULT_STEPS = 500_000  # dqn.py's --total-timesteps default
ENV_ID = "CartPole-v1"  # dqn.py's --env-id default
CHECK = ("import gymnasium, stable_baselines3, torch, torch.utils.tensorboard; "
         "print(gymnasium.__version__, stable_baselines3.__version__, torch.__version__)")


def fetch(version: str, cache: Path) -> Path:
    """Path of cleanrl/dqn.py from the `cleanrl==version` wheel, downloaded into `cache` on first use."""
    script = cache / f"cleanrl-{version}" / "dqn.py"
    if script.is_file():
        return script
    cache.mkdir(parents=True, exist_ok=True)
    # cleanrl 1.2.0 declares Requires-Python <3.11; only its dqn.py is used, so the marker is ignored.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
               f"cleanrl=={version}", "-d", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(cache.glob(f"cleanrl-{version}-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download cleanrl=={version} failed: {last}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_bytes(wheel.read("cleanrl/dqn.py"))
    return script


def check_python(python: str) -> str:
    """'' if `python` can run CleanRL 1.2.0's dqn.py, else why not (one line)."""
    try:
        done = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot start {python}: {exc}"
    if done.returncode != 0:
        return f"{python} lacks a dependency of cleanrl's dqn.py: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    gymnasium_version = done.stdout.split()[0]
    if int(gymnasium_version.split(".")[0]) >= 1:
        return (f"{python} has gymnasium {gymnasium_version}; CleanRL 1.2.0's dqn.py needs gymnasium < 1.0 "
                "(it reads infos['final_info'] and infos['final_observation'])")
    return ""


@functools.cache  # the interpreter's libraries do not change during a benchmark: ask it once
def versions(python: str) -> dict[str, str]:
    done = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, check=True)
    gymnasium_version, sb3_version, torch_version = done.stdout.split()
    return {"gymnasium": gymnasium_version, "stable_baselines3": sb3_version, "torch": torch_version}


def parse(lines: list[tuple[float, str]]) -> tuple[list[tuple[int, float, float]], float]:
    """(episodes as (steps done, seconds, return), env steps per second) from (arrival time, line) pairs.

    Time counts from the first episode line (its first ~20 random steps take about a millisecond);
    steps per second are measured between the first and the last episode line.
    """
    episodes = [(int(m.group(1)) + 1, arrival, float(m.group(2)))
                for arrival, line in lines if (m := EPISODE_LINE.search(line))]
    if len(episodes) < 2 or episodes[-1][1] <= episodes[0][1]:
        raise RuntimeError(f"cleanrl dqn.py printed {len(episodes)} episode line(s); too few to time it")
    start = episodes[0][1]
    sps = (episodes[-1][0] - episodes[0][0]) / (episodes[-1][1] - start)
    return [(step, arrival - start, ret) for step, arrival, ret in episodes], sps


def run(script: Path, python: str, seed: int, steps: int | None, threads: str) -> dict:
    """One CleanRL training run at its defaults (only --seed, and --total-timesteps if `steps`)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OMP_NUM_THREADS", None)
    if threads != "default":
        env["OMP_NUM_THREADS"] = threads
    command = [python, str(script), "--seed", str(seed)] + ([] if steps is None else ["--total-timesteps", str(steps)])
    lines: list[tuple[float, str]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cleanrl-run-") as workdir:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        for line in process.stdout:
            lines.append((time.perf_counter(), line))
        if process.wait() != 0:
            tail = "".join(line for _, line in lines[-5:]).strip().splitlines()
            raise RuntimeError(f"cleanrl dqn.py exited with {process.returncode}: {tail[-1] if tail else 'no output'}")
    episodes, sps = parse(lines)
    total = steps if steps is not None else DEFAULT_STEPS
    return {"kind": "cleanrl", "preset": "cleanrl-defaults", "env_id": ENV_ID, "seed": seed, "threads": threads, "steps": total,
            "seconds": total / sps, "sps": sps, "episodes": episodes,
            "eval_returns": [], "load_before": load_before, "load_after": os.getloadavg()[0], "versions": versions(python)}
