"""Sweeps on Ray: grid parsing, trial names, the aggregate report (by hand on synthetic event
files), and end to end under a local Ray cluster: four runs, a killed trial, a re-run."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qapprox.dqn import analysis, ray_cluster, sweep
from qapprox.dqn.logging import checkpoint_path, parse_run_dir, run_dirs
from qapprox.dqn.population import MANIFEST
from qapprox.dqn.trial import (KILL_TRIAL_VARIABLE, Trial, member_outcomes, population_folder, run_trial, spell_seeds,
                               train_command)
from qapprox.dqn.trial_files import config_name, write_json
from qapprox.scripts import sweep as sweep_script
from qapprox.scripts._cli import run
from synthetic_runs import write_run

REPO = Path(__file__).resolve().parent.parent
FIELDS = {"learning_rate": float, "double_q": bool, "batch_size": int, "loss": str}


# ---------------------------------------------------------------- what to run


def test_seeds_ranges_and_lists():
    assert sweep.parse_seeds("0-3", sweep.MAX_TRIALS) == [0, 1, 2, 3]
    assert sweep.parse_seeds("5,0-1,1,9", sweep.MAX_TRIALS) == [5, 0, 1, 9]
    for bad in ("3-1", "a", "1,,2", "-1"):
        with pytest.raises(ValueError, match="seeds="):
            sweep.parse_seeds(bad, sweep.MAX_TRIALS)


def test_grid_is_a_product_in_flag_order_with_canonical_values():
    grid = sweep.parse_assignments(["learning_rate=1e-3,3e-4", "double_q=True,false"], FIELDS)
    assert grid == {"learning_rate": ["0.001", "0.0003"], "double_q": ["true", "false"]}
    configs = sweep.configurations(grid, {}, 0, seed=0)
    assert [config_name(c) for c in configs] == [
        "learning_rate=0.001,double_q=true", "learning_rate=0.001,double_q=false",
        "learning_rate=0.0003,double_q=true", "learning_rate=0.0003,double_q=false"]
    assert sweep.configurations({}, {}, 0, seed=0) == [{}]
    assert config_name({}) == "default"


@pytest.mark.parametrize("items, message", [
    (["gamma_typo=0.9"], "'gamma_typo' is not a DQNConfig field"),
    (["double_q=yes"], "double_q='yes' is not a valid boolean"),
    (["batch_size=3.5"], "batch_size='3.5' is not a valid integer"),
    (["learning_rate"], "'learning_rate' is not KEY=VALUE"),
    (["loss=huber", "loss=mse"], "'loss' is given twice"),
    (["seed=1,2"], "'seed' is set by the sweep: use --seeds"),
])
def test_bad_grid_is_one_line_naming_the_value(items, message):
    with pytest.raises(ValueError, match=message):
        sweep.parse_assignments(items, FIELDS)


def test_random_search_is_seeded_rounded_and_in_range():
    search = sweep.parse_search(["learning_rate=loguniform:1e-4:1e-2", "batch_size=int:32:34"], FIELDS)
    grid = sweep.parse_assignments(["double_q=true,false"], FIELDS)
    configs = sweep.configurations(grid, search, 5, seed=3)
    assert len(configs) == 10 and configs == sweep.configurations(grid, search, 5, seed=3)
    rates = [float(c["learning_rate"]) for c in configs]
    assert all(1e-4 <= r <= 1e-2 for r in rates) and len(set(rates)) == 5  # 5 draws, each grid point
    assert all(c["learning_rate"] == f"{float(c['learning_rate']):.4g}" for c in configs)
    assert {c["batch_size"] for c in configs} <= {"32", "33", "34"}
    with pytest.raises(ValueError, match="KIND in uniform, loguniform, int"):
        sweep.parse_search(["learning_rate=normal:0:1"], FIELDS)
    with pytest.raises(ValueError, match="LOW > 0 for loguniform"):
        sweep.parse_search(["learning_rate=loguniform:0:1"], FIELDS)
    with pytest.raises(ValueError, match="random=0: --search needs --random N"):
        sweep.configurations({}, search, 0, seed=0)


def test_trial_names_directories_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv(KILL_TRIAL_VARIABLE, "learning_rate=0.001__seed1")
    trials = sweep.make_trials(tmp_path, "CartPole-v1", [0, 1], [{"learning_rate": "0.001"}],
                                   {"batch_size": "8"}, 300, "cpu")
    assert [t.name for t in trials] == ["learning_rate=0.001__seed0", "learning_rate=0.001__seed1"]
    assert [t.kill_after_checkpoint for t in trials] == [False, True]
    assert trials[0].directory == tmp_path / "learning_rate=0.001__seed0"
    command = train_command(trials[0], resume=tmp_path / "c.pt")
    assert command[1:] == ["-m", "qapprox.dqn.train_cli", "--no-progress", "--env", "CartPole-v1", "--seed", "0",
                           "--logdir", str(trials[0].directory), "--device", "cpu", "--total-timesteps", "300",
                           "--batch-size", "8", "--learning-rate", "0.001", "--resume", str(tmp_path / "c.pt")]


def test_population_trials_group_each_configurations_seeds_in_order(tmp_path):
    configs = [{"learning_rate": "0.001"}, {"learning_rate": "0.0003"}]
    trials = sweep.make_trials(tmp_path, "CartPole-v1", [0, 1, 2, 3, 4], configs, {}, 300, "cpu", seeds_per_trial=2)
    assert [(t.config["learning_rate"], t.seeds, t.seed) for t in trials] == [
        (lr, seeds, seeds[0]) for lr in ("0.001", "0.0003") for seeds in ((0, 1), (2, 3), (4,))]
    assert [t.name for t in trials[:3]] == ["learning_rate=0.001__seeds0-1", "learning_rate=0.001__seeds2-3",
                                            "learning_rate=0.001__seed4"]  # a group of one is a single run
    assert [t.population for t in trials[:3]] == [True, True, False]
    [odd] = sweep.make_trials(tmp_path, "CartPole-v1", [7, 8, 0, 3], configs[:1], {}, 300, "cpu", seeds_per_trial=4)
    assert (odd.name, spell_seeds((0, 1, 2, 3)), spell_seeds((5,))) == ("learning_rate=0.001__seeds7-8,0,3", "0-3", "5")
    assert sweep.parse_seeds(spell_seeds(odd.seeds), sweep.MAX_TRIALS) == [7, 8, 0, 3]
    assert [t.seeds for t in sweep.make_trials(tmp_path, "CartPole-v1", [0, 1], configs[:1], {}, 300, "cpu")] \
        == [(0,), (1,)]  # K = 1: today's trials

    fresh, resumed = train_command(trials[0], None), train_command(trials[0], tmp_path / "population")
    assert fresh[4:8] == ["--env", "CartPole-v1", "--seeds", "0,1"] and "--seed" not in fresh
    assert fresh[8:10] == ["--logdir", str(trials[0].directory)]
    assert resumed[4:8] == ["--env", "CartPole-v1", "--device", "cpu"]  # the manifest's seeds and run folders
    assert resumed[-2:] == ["--resume", str(tmp_path / "population")] and "--seeds" not in resumed
    for bad in (0, 1.5, 1025):
        with pytest.raises(ValueError, match=rf"^seeds_per_trial={bad} must be an integer in \[1, 1,024\]$"):
            sweep.make_trials(tmp_path, "CartPole-v1", [0, 1], configs, {}, 300, "cpu", seeds_per_trial=bad)
    with pytest.raises(ValueError, match=r"^seeds=\[0, 1\] must start with the trial's seed 1$"):
        Trial(str(tmp_path), "CartPole-v1", 1, {}, {}, seeds=(0, 1))


def test_seeds_per_trial_flag_reaches_the_trials(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep.ray_cluster, "check_ray_installed", lambda: None)
    spec = sweep.Sweep(seeds="0-4", total_timesteps=300, sweep_dir=tmp_path, seeds_per_trial=3)
    _, trials = sweep.prepare(spec, ray_cluster.ClusterOptions())
    assert [t.name for t in trials] == ["default__seeds0-2", "default__seeds3-4"]
    for trial in trials:
        trial.directory.mkdir()
        write_json(trial.directory / "done.json", {})
    assert sweep.run(tmp_path, trials, ray_cluster.ClusterOptions()) == []
    assert capsys.readouterr().out.splitlines()[-1] == (f"sweep {tmp_path}: 1 configuration(s) × 5 seed(s) in "
                                                        "populations of up to 3 = 2 trials; 2 finished, 0 to run")
    monkeypatch.setattr(sys, "argv", ["sweep", "--seeds-per-trial", "0", "--sweep-dir", str(tmp_path / "s")])
    with pytest.raises(SystemExit) as exit_info:
        run(sweep_script.main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: seeds_per_trial=0 must be an integer in [1, 1,024]\n"


def test_configurations_are_validated_before_any_trial_starts():
    configs = [{"batch_size": "64"}, {"batch_size": "512"}]
    sweep.check_configs("CartPole-v1", configs[:1], {"buffer_size": "256"}, 1000)
    with pytest.raises(ValueError, match="batch_size=512 is larger than buffer_size=256"):
        sweep.check_configs("CartPole-v1", configs, {"buffer_size": "256"}, 1000)


def test_gpu_share_per_trial():
    # auto: one CPU of 16 gets 1/16 of the GPU; no GPU, none; asking for more than exists is an error
    assert ray_cluster.gpu_share({"CPU": 16.0, "GPU": 1.0}, 1, ray_cluster.parse_gpus("auto")) == 1 / 16
    assert ray_cluster.gpu_share({"CPU": 2.0}, 1, ray_cluster.parse_gpus("auto")) == 0.0
    assert ray_cluster.gpu_share({"CPU": 8.0, "GPU": 2.0}, 1, ray_cluster.parse_gpus("0.5")) == 0.5
    with pytest.raises(ValueError, match="gpus_per_trial=0.25 is more than the Ray cluster's 0 GPUs"):
        ray_cluster.gpu_share({"CPU": 2.0}, 1, 0.25)
    with pytest.raises(ValueError, match="cpus_per_trial=4 is more than the Ray cluster's 2 CPUs"):
        ray_cluster.gpu_share({"CPU": 2.0}, 4, None)
    with pytest.raises(ValueError, match="gpus_per_trial='half' must be a number ≥ 0 or auto"):
        ray_cluster.parse_gpus("half")


def test_without_ray_the_sweep_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.setattr(sys, "argv", ["sweep", "--seeds", "0-1"])
    with pytest.raises(SystemExit) as exit_info:
        run(sweep_script.main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: the sweep needs Ray: pip install 'qapprox[distributed]'\n"


# ---------------------------------------------------------------- aggregation, by hand


def test_bootstrap_interval_and_iqm_by_hand():
    # Resample means of [0, 0, 0, 10] are 2.5·K, K ~ Binomial(4, 1/4): P(K=0)=.32, P(K≤2)=.95,
    # P(K≤3)=.996, so the 2.5 % quantile is 0 and the 97.5 % quantile is 2.5·3 = 7.5.
    assert analysis.bootstrap_interval(np.array([0, 0, 0, 10])) == (0.0, 7.5)
    # Two values: resample means a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4.
    assert analysis.bootstrap_interval(np.array([1.0, 3.0])) == (1.0, 3.0)
    assert analysis.interquartile_mean(np.array([1, 2, 3, 4, 100, 5, 6, 7])) == 4.5  # mean of 3..6
    assert analysis.interquartile_mean(np.array([30, 500, 200, 490])) == 345.0  # mean of 200, 490
    assert analysis.interquartile_mean(np.array([1.0, 2.0, 9.0])) == 4.0  # n < 4: nothing dropped


@pytest.fixture
def synthetic_sweep(tmp_path, monkeypatch):
    """Config A: four seeds, one resumed after a kill, two with largest |q̂| and gaps logged; config B: four
    finished seeds (one stopped by the divergence guard) and one unfinished."""
    a, b = {"learning_rate": "0.001"}, {"learning_rate": "0.0003"}
    runs_a = {
        0: [(1000.0, None, [(1000, 100, 1010), (2000, 480, 1030), (3000, 500, 1050)])],  # solved at 2000, 30 s
        1: [(1000.0, None, [(1000, 475, 1005), (2000, 300, 1012), (3000, 200, 1020)])],  # 475 counts: 1000, 5 s
        2: [(1000.0, None, [(1000, 10, 1010), (2000, 20, 1020), (3000, 30, 1030)])],  # never solves
        # killed after logging 480 at step 3000 (1030 s); resumed at 2000 s from the step-2000
        # checkpoint: TensorBoard drops the lost 480, the resumed 490 at step 3000 solves it after
        # 30 s of attempt 1 + 20 s of attempt 2 = 50 s of training.
        3: [(1000.0, None, [(1000, 50, 1010), (2000, 60, 1020), (3000, 480, 1030)]),
            (2000.0, 2000, [(3000, 490, 2020)])],
    }
    logged = {0: {analysis.Q_MAX_TAG: [(1000, 5), (2000, 12), (3000, 9)],
                  analysis.GAP_TAG: [(1000, 10.0), (2800, 0.5), (3000, 1.5)]},  # final 10 %: steps ≥ 2700
              1: {analysis.Q_MAX_TAG: [(1000, 3)], analysis.GAP_TAG: [(3000, -0.5)]}}
    for seed, streams in runs_a.items():
        write_run(tmp_path / f"a{seed}", streams, monkeypatch, a, seed, scalars=logged.get(seed))
    for seed, value in enumerate([0, 0, 0, 10]):
        diverged = {analysis.DIVERGED_TAG: [(1000, 1.0)]} if seed == 3 else None
        write_run(tmp_path / f"b{seed}", [(1000.0, None, [(1000, value, 1001)])], monkeypatch, b, seed,
                  scalars=diverged, outcome="diverged" if diverged else None)
    write_run(tmp_path / "b4", [(1000.0, None, [(1000, 1000, 1001)])], monkeypatch, b, 4, finished=False)
    return tmp_path


def read_csv(path):
    with open(path) as file:
        return list(csv.DictReader(file))


def test_report_numbers_by_hand(synthetic_sweep):
    steps, values, seconds = analysis.trial_run(synthetic_sweep / "a3").curve(analysis.RETURN_TAG)
    assert (steps.tolist(), values.tolist(), seconds.tolist()) == ([1000, 2000, 3000], [50, 60, 490], [10, 20, 50])
    paths = analysis.report(synthetic_sweep, threshold=475)
    runs = {r["trial"]: r for r in read_csv(paths["runs.csv"])}
    resumed = runs["learning_rate=0.001__seed3"]
    assert (float(resumed["final_return"]), float(resumed["steps_to_solve"]), float(resumed["seconds_to_solve"])) \
        == (490, 3000, 50)
    assert runs["learning_rate=0.0003__seed4"]["finished"] == "False"
    assert runs["learning_rate=0.0003__seed4"]["outcome"] == "running"
    assert (runs["learning_rate=0.0003__seed3"]["outcome"], runs["learning_rate=0.0003__seed3"]["diverged_step"]) \
        == ("diverged", "1000.0")
    assert (float(runs["learning_rate=0.001__seed0"]["q_max_abs"]), float(runs["learning_rate=0.001__seed0"]["final_gap"])) \
        == (12.0, 1.0)  # max(5, 12, 9); mean(0.5, 1.5)
    assert runs["learning_rate=0.001__seed2"]["outcome"] == "finished" and runs["learning_rate=0.001__seed2"]["q_max_abs"] == "nan"

    a, b = read_csv(paths["report.csv"])
    assert a["config"] == "learning_rate=0.001" and (a["seeds"], a["solved"], a["diverged"]) == ("4", "3", "0")
    assert (float(a["q_max_abs_mean"]), float(a["final_gap_mean"])) == (7.5, 0.25)  # over the seeds that logged them
    assert float(a["final_return_mean"]) == 305.0  # (500 + 200 + 30 + 490) / 4
    assert float(a["final_return_iqm"]) == 345.0  # (200 + 490) / 2
    assert float(a["steps_to_solve_mean"]) == 2000.0  # (2000 + 1000 + 3000) / 3, solved seeds only
    assert float(a["seconds_to_solve_mean"]) == pytest.approx(85 / 3)  # (30 + 5 + 50) / 3
    low, high = float(a["final_return_low"]), float(a["final_return_high"])
    assert 30 <= low < 305 < high <= 500
    # B: the unfinished seed (return 1000) is left out; the rest are [0, 0, 0, 10], see above.
    assert (b["seeds"], b["solved"], b["diverged"], float(b["final_return_mean"])) == ("4", "0", "1", 2.5)
    assert (float(b["final_return_low"]), float(b["final_return_high"])) == (0.0, 7.5)
    assert math.isnan(float(b["steps_to_solve_mean"]))

    table = paths["report.md"].read_text()
    assert "| learning_rate=0.001 | 4 | 3 | 0 | 305.0 [" in table and "(345.0) | 2000 [" in table
    assert "| 7.5 [3.0, 12.0] (7.5) | 0.25 [-0.50, 1.00] (0.25) |" in table
    assert "| learning_rate=0.0003 | 4 | 0 | 1 | 2.5 [0.0, 7.5] (0.0) | — | — | — | — |" in table
    assert paths["curves.png"].stat().st_size > 10_000


def test_a_population_trial_reports_a_line_per_member(tmp_path, monkeypatch):
    # One trial directory of seeds 0-2 (finished; seed 1 stopped by the divergence guard) beside a single
    # trial of seed 3: the report reads as four trials of one seed each.
    config = {"learning_rate": "0.001"}
    trial_dir = tmp_path / "learning_rate=0.001__seeds0-2"
    for seed, value in enumerate([10, 20, 60]):
        write_run(trial_dir, [(1000.0, None, [(1000, value, 1001)])], monkeypatch, config, seed,
                  scalars={analysis.DIVERGED_TAG: [(1000, 1.0)]} if seed == 1 else None)
    write_json(trial_dir / "trial.json", {"name": trial_dir.name, "env": "CartPole-v1", "seed": 0, "seeds": [0, 1, 2],
                                          "config": config})
    write_json(trial_dir / "attempts.json", [{}, {}])
    write_json(trial_dir / "done.json", {"outcome": "finished", "members": [
        {"seed": 0, "outcome": "finished"}, {"seed": 1, "outcome": "diverged"}, {"seed": 2, "outcome": "finished"}]})
    write_run(tmp_path / "single", [(1000.0, None, [(1000, 30, 1001)])], monkeypatch, config, 3)
    runs = analysis.collect(tmp_path)
    assert [(r["name"], r["seed"], r["outcome"], r["attempts"]) for r in runs] == [
        (trial_dir.name, 0, "finished", 2), (trial_dir.name, 1, "diverged", 2), (trial_dir.name, 2, "finished", 2),
        ("learning_rate=0.001__seed3", 3, "finished", 0)]
    assert [parse_run_dir(r["run"].directory).seed for r in runs] == [0, 1, 2, 3]  # each member its own run
    paths = analysis.report(tmp_path, threshold=50)
    rows = read_csv(paths["runs.csv"])
    assert [(r["seed"], float(r["final_return"]), r["diverged_step"]) for r in rows] == [
        ("0", 10.0, "nan"), ("1", 20.0, "1000.0"), ("2", 60.0, "nan"), ("3", 30.0, "nan")]
    [row] = read_csv(paths["report.csv"])
    assert (row["seeds"], row["solved"], row["diverged"], float(row["final_return_mean"])) == ("4", "1", "1", 30.0)


def test_member_outcomes_follow_the_manifest(tmp_path):
    trial = Trial(str(tmp_path), "CartPole-v1", 0, {}, {}, seeds=(0, 1))
    assert member_outcomes(trial, "finished") == [{"seed": 0, "outcome": "finished"}, {"seed": 1, "outcome": "finished"}]
    folder = trial.directory / "CartPole-v1__dqn__population__1000"
    folder.mkdir(parents=True)
    write_json(folder / MANIFEST, {"version": 1, "env_id": "CartPole-v1", "global_step": 500, "members": [
        {"seed": 0, "run_dir": "CartPole-v1__dqn__0__1000", "stopped": None},
        {"seed": 1, "run_dir": "CartPole-v1__dqn__1__1000", "stopped": "non-finite loss"}]})
    assert population_folder(trial.directory) == folder
    assert member_outcomes(trial, "finished") == [{"seed": 0, "outcome": "finished"}, {"seed": 1, "outcome": "diverged"}]
    assert member_outcomes(trial, "diverged") == [{"seed": 0, "outcome": "diverged"}, {"seed": 1, "outcome": "diverged"}]


def test_curve_is_the_mean_over_seeds_with_a_bootstrap_band(tmp_path, monkeypatch):
    # Seed 0 logs at 0, 10, 20; seed 1 at 0, 20, 40 → common steps 0, 10, 20 (seed 1 interpolated:
    # 15 at step 10). Two seeds: the band runs from the smaller to the larger value.
    write_run(tmp_path / "s0", [(0.0, None, [(0, 0, 1), (10, 10, 2), (20, 20, 3)])], monkeypatch, {}, 0)
    write_run(tmp_path / "s1", [(0.0, None, [(0, 0, 1), (20, 30, 2), (40, 60, 3)])], monkeypatch, {}, 1)
    steps, mean, low, high = analysis.curve(analysis.collect(tmp_path), analysis.RETURN_TAG)
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(mean, [0, 12.5, 25])
    np.testing.assert_allclose(low, [0, 10, 20])
    np.testing.assert_allclose(high, [0, 15, 30])


def test_report_of_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep directory"):
        analysis.report(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"no trials \(\*/trial.json\)"):
        analysis.report(tmp_path)


def test_report_command_prints_the_table(synthetic_sweep, capsys):
    assert sweep_script.main(["--report", str(synthetic_sweep), "--solve-threshold", "475"]) == 0
    out = capsys.readouterr().out
    assert "| learning_rate=0.0003 | 4 | 0 | 1 | 2.5 [0.0, 7.5] (0.0) | — | — | — | — |" in out
    assert f"wrote {synthetic_sweep / 'report.md'}" in out


# ---------------------------------------------------------------- end to end on a local Ray cluster

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed: pip install 'qapprox[distributed]'")
KILLED = "learning_rate=0.001__seed1"
TINY = ["--set", "hidden=32 32", "--set", "learning_starts=50", "--set", "batch_size=16", "--set", "buffer_size=500",
        "--set", "n_step=1", "--set", "target_update_interval=50", "--set", "eval_interval=100",
        "--set", "eval_episodes=2", "--set", "checkpoint_interval=100", "--set", "log_interval=100"]


def sweep_command(sweep_dir):
    return [sys.executable, "-m", "scripts.sweep", "--env", "CartPole-v1", "--seeds", "0-1",
            "--grid", "learning_rate=1e-3,3e-4", *TINY, "--total-timesteps", "300", "--sweep-dir", str(sweep_dir),
            "--num-cpus", "2", "--solve-threshold", "15"]


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory):
    """2 configurations × 2 seeds × 300 steps on a local 2-CPU Ray cluster; the first attempt of
    one trial is SIGKILLed, with its Ray worker, as soon as its first checkpoint exists."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    environment = os.environ | {KILL_TRIAL_VARIABLE: KILLED, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(sweep_command(sweep_dir), cwd=REPO, env=environment, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return sweep_dir, result.stdout


def eval_curve(run_dir):
    """greedy evaluation returns read back independently with TensorBoard's reader"""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0}).Reload()
    events = accumulator.Scalars(analysis.RETURN_TAG)
    return [e.step for e in events], [e.value for e in events]


@needs_ray
def test_sweep_makes_four_runs_and_a_report_matching_their_event_files(ray_sweep):
    sweep_dir, output = ray_sweep
    trials = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert trials == sorted(f"learning_rate={lr}__seed{s}" for lr in ("0.001", "0.0003") for s in (0, 1))
    runs = {r["trial"]: r for r in read_csv(sweep_dir / "runs.csv")}
    finals = {}
    for trial in trials:
        [run_dir] = run_dirs(sweep_dir / trial)
        assert (sweep_dir / trial / "done.json").exists() and checkpoint_path(run_dir).exists()
        steps, values = eval_curve(run_dir)
        assert steps == [100, 200, 300]
        solved = [s for s, v in zip(steps, values) if v >= 15]
        assert float(runs[trial]["final_return"]) == pytest.approx(values[-1])
        assert float(runs[trial]["steps_to_solve"]) == pytest.approx(solved[0] if solved else math.nan, nan_ok=True)
        finals[trial] = values[-1]
    for row in read_csv(sweep_dir / "report.csv"):
        values = [v for t, v in finals.items() if t.startswith(row["config"] + "__")]
        assert row["seeds"] == "2" and float(row["final_return_mean"]) == pytest.approx(np.mean(values))
        assert float(row["final_return_low"]) == pytest.approx(min(values))  # two seeds: min and max
        assert float(row["final_return_high"]) == pytest.approx(max(values))
    assert "| learning_rate=0.001 | 2 |" in output and (sweep_dir / "curves.png").stat().st_size > 10_000


@needs_ray
def test_a_killed_trial_is_retried_from_its_checkpoint_and_finishes(ray_sweep):
    sweep_dir, _ = ray_sweep
    trial_dir = sweep_dir / KILLED
    [run_dir] = run_dirs(trial_dir)
    first, second = json.loads((trial_dir / "attempts.json").read_text())
    assert first["resume"] is None and second["resume"] == str(checkpoint_path(run_dir))
    assert json.loads((trial_dir / "done.json").read_text())["attempts"] == 2
    assert {r["trial"]: r["attempts"] for r in read_csv(sweep_dir / "runs.csv")}[KILLED] == "2"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # the killed attempt's and the resumed one's
    assert eval_curve(run_dir)[0] == [100, 200, 300]  # continued, nothing logged twice


@needs_ray
def test_rerunning_a_finished_sweep_starts_no_trial(ray_sweep):
    sweep_dir, _ = ray_sweep
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/*.json")}
    result = subprocess.run(sweep_command(sweep_dir), cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "4 trials; 4 finished, 0 to run" in result.stdout and "ray:" not in result.stdout
    assert {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/*.json")} == before


def test_align_puts_seeds_on_one_grid_and_refuses_disjoint_runs():
    a = (np.array([0, 10, 20, 30]), np.array([0.0, 1.0, 2.0, 3.0]))
    b = (np.array([5, 15, 25]), np.array([5.0, 15.0, 25.0]))
    grid, matrix = analysis.align([a, b], points=200)
    assert grid.tolist() == [5, 10, 15, 20, 25]  # the steps logged inside both ranges
    assert matrix.tolist() == [[0.5, 1.0, 1.5, 2.0, 2.5], [5.0, 10.0, 15.0, 20.0, 25.0]]
    grid, matrix = analysis.align([a, b], points=3)  # more steps than points: a regular grid
    assert grid.tolist() == [5, 15, 25] and matrix.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^the runs share no step range: one ends at step 30 before another begins at 40$"):
        analysis.align([a, (np.array([40, 50]), np.array([1.0, 2.0]))], points=200)
    with pytest.raises(ValueError, match=r"^points=2.5 must be an integer ≥ 2$"):
        analysis.align([a], points=2.5)


def test_figures_leave_the_callers_matplotlib_backend_alone(synthetic_sweep):
    import matplotlib

    before = matplotlib.get_backend()
    analysis.report(synthetic_sweep, threshold=475)
    assert matplotlib.get_backend() == before
    source = Path(analysis.__file__).read_text()
    assert "matplotlib.use(" not in source and "import matplotlib.pyplot" not in source


def test_analysis_does_not_import_the_ray_code():
    code = "import sys; import qapprox.dqn.analysis; print('qapprox.dqn.ray_cluster' in sys.modules, 'qapprox.dqn.trial' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- population trials, without Ray

POPULATION_FIXED = {"hidden": "16 16", "learning_starts": "100", "batch_size": "16", "buffer_size": "500",
                    "eval_interval": "200", "eval_episodes": "2", "checkpoint_interval": "200", "log_interval": "100"}


def test_a_population_trial_is_its_members_single_runs(tmp_path):
    population = Trial(str(tmp_path / "p"), "CartPole-v1", 0, {}, POPULATION_FIXED, 600, seeds=(0, 1))
    single = Trial(str(tmp_path / "s"), "CartPole-v1", 1, {}, POPULATION_FIXED, 600)
    done = run_trial(population)
    assert (done["name"], done["outcome"], done["attempts"]) == ("default__seeds0-1", "finished", 1)
    assert done["members"] == [{"seed": 0, "outcome": "finished"}, {"seed": 1, "outcome": "finished"}]
    assert json.loads((population.directory / "done.json").read_text()) == done
    assert json.loads((population.directory / "trial.json").read_text())["seeds"] == [0, 1]
    assert "--seeds 0,1" in (population.directory / "train.log").read_text()
    run_trial(single)
    runs = analysis.collect(tmp_path / "p")
    assert [(r["name"], r["seed"], r["finished"], r["outcome"]) for r in runs] == [
        ("default__seeds0-1", 0, True, "finished"), ("default__seeds0-1", 1, True, "finished")]
    for member in runs:
        assert parse_run_dir(member["run"].directory).seed == member["seed"]
        assert member["run"].scalar(analysis.RETURN_TAG)[0].tolist() == [200, 400, 600]
        assert member["run"].scalar(analysis.TRAINING_RETURN_TAG)[0].size > 0
    [alone] = analysis.collect(tmp_path / "s")
    for tag in (analysis.RETURN_TAG, analysis.TRAINING_RETURN_TAG):  # member 1 learned as seed 1 alone
        np.testing.assert_array_equal(np.stack(runs[1]["run"].scalar(tag)), np.stack(alone["run"].scalar(tag)))


def test_a_killed_population_trial_resumes_from_its_population_folder(tmp_path):
    trial = Trial(str(tmp_path), "CartPole-v1", 0, {}, POPULATION_FIXED, 600, kill_after_checkpoint=True, seeds=(0, 1))
    code = ("import json, sys; from qapprox.dqn.trial import Trial, run_trial; "
            "run_trial(Trial(**json.loads(sys.argv[1])))")
    killed = subprocess.run([sys.executable, "-c", code, json.dumps(dataclasses.asdict(trial))],
                            env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr  # the hook killed the training process, then itself
    folder = population_folder(trial.directory)
    assert folder is not None and not (trial.directory / "done.json").exists()
    done = run_trial(dataclasses.replace(trial, kill_after_checkpoint=False))
    first, second = json.loads((trial.directory / "attempts.json").read_text())
    assert first["resume"] is None and second["resume"] == str(folder)
    assert done["attempts"] == 2 and [m["outcome"] for m in done["members"]] == ["finished", "finished"]
    assert json.loads((folder / MANIFEST).read_text())["global_step"] == 600
    members = run_dirs(trial.directory)
    assert sorted(parse_run_dir(d).seed for d in members) == [0, 1]  # resumed in place: no new run folders
    for member in analysis.collect(tmp_path):
        assert member["attempts"] == 2 and len(list(member["run"].directory.glob("events.out.tfevents.*"))) == 2
        assert member["run"].scalar(analysis.RETURN_TAG)[0].tolist() == [200, 400, 600]  # nothing logged twice
