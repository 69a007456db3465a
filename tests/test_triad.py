"""The deadly-triad ablation (qapprox.dqn.triad): its cells over each preset, a real divergence reported as an
outcome of its trial, and the table and figure computed by hand on synthetic trial directories."""

from __future__ import annotations

import json
import math

import pytest

from qapprox.dqn import analysis, triad
from qapprox.dqn.config import resolve
from qapprox.dqn.trial import Trial, run_trial
from qapprox.dqn.trial_files import config_name
from qapprox.scripts import triad as triad_script
from qapprox.scripts._cli import run
from synthetic_runs import write_run


@pytest.mark.parametrize("env, target_interval, buffer, batch", [("CartPole-v1", 100, 100_000, 64),
                                                                 ("Acrobot-v1", 250, 50_000, 128)])
def test_cells_remove_the_target_network_and_the_replay_over_the_preset(env, target_interval, buffer, batch):
    cells = triad.configs(env)
    assert list(cells) == [f"{cell}, n={n}" for cell in triad.CELLS for n in (3, 1)]
    built = {name: resolve({**values, "env_id": env})[0] for name, values in cells.items()}
    for name, config in built.items():
        cell, n = name.rsplit(", n=", 1)
        assert config.n_step == int(n) and config.tau == 1.0 and config.batch_size == batch
        no_target, no_replay = cell in ("no target", "neither"), cell in ("no replay", "neither")
        assert config.target_update_interval == (1 if no_target else target_interval)  # w⁻ = w after every step
        assert config.buffer_size == (batch if no_replay else buffer)  # only the latest B transitions
        assert set(cells[name]) == set(triad.ABLATED)  # each trial's name says what it ran
    assert len({config_name(values) for values in cells.values()}) == 8


def test_a_diverging_trial_is_an_outcome_with_its_step_not_a_failure(tmp_path):
    fixed = {"hidden": "16 16", "learning_starts": "250", "eval_interval": "100", "eval_episodes": "2",
             "log_interval": "100", "checkpoint_interval": "200", "optimizer": "sgd"}
    trial = Trial(str(tmp_path), "CartPole-v1", 0, {"learning_rate": "1e+30"}, fixed, total_timesteps=2000)
    done = run_trial(trial)  # raises TrialFailed for a crash; a divergence returns like a finished run
    assert done["outcome"] == "diverged" and done["message"].startswith("training diverged at step 300: non-finite")
    assert json.loads((trial.directory / "done.json").read_text()) == done
    [row] = analysis.aggregate(analysis.collect(tmp_path), 475)[0]
    assert (row["outcome"], row["diverged_step"], row["final_return"]) == ("diverged", 300.0, row["final_return"])
    assert row["final_return"] > 0  # the evaluations at steps 100 and 200, before it diverged
    [summary] = analysis.aggregate(analysis.collect(tmp_path), 475)[1]
    assert (summary["seeds"], summary["diverged"]) == (1, 1)


@pytest.fixture
def synthetic_triad(tmp_path, monkeypatch):
    """CartPole-v1: default n=3 solves (seeds 0, 1), no target n=1 blows q̂ up and one seed diverges."""
    cells = triad.configs("CartPole-v1")
    default, no_target = cells["default, n=3"], cells["no target, n=1"]
    sweep_dir = triad.env_dir(tmp_path, "CartPole-v1")
    for seed, (first, last) in enumerate([(200, 500), (480, 490)]):
        write_run(sweep_dir / f"d{seed}", [(1000.0, None, [(2500, first, 1010), (5000, last, 1020)])], monkeypatch,
                  default, seed, scalars={analysis.Q_MAX_TAG: [(2500, 30.0 + seed)], analysis.GAP_TAG: [(5000, 1.0)]})
    write_run(sweep_dir / "t0", [(1000.0, None, [(2500, 20, 1010), (5000, 10, 1020)])], monkeypatch, no_target, 0,
              scalars={analysis.Q_MAX_TAG: [(2500, 1e3), (5000, 1e6)], analysis.GAP_TAG: [(5000, 500.0)]})
    write_run(sweep_dir / "t1", [(1000.0, None, [(2500, 30, 1010), (5000, 12, 1020)])], monkeypatch, no_target, 1,
              scalars={analysis.Q_MAX_TAG: [(2500, 3e6)], analysis.DIVERGED_TAG: [(5000, 1.0)]}, outcome="diverged")
    return tmp_path


def test_table_and_figure_by_hand(synthetic_triad):
    paths = triad.report(synthetic_triad, ["CartPole-v1"])
    default, no_target = triad.rows(triad.collect(synthetic_triad, ["CartPole-v1"]))  # cells without trials are left out
    assert (default["cell"], default["n_step"], default["seeds"], default["solved"]) == ("default", 3, 2, 2)
    assert default["steps_to_solve_mean"] == 3750.0  # seed 0 at 5000, seed 1 at 2500 (480 ≥ 475)
    assert default["final_return_mean"] == 495.0 and default["q_max_abs_mean"] == 30.5
    assert (no_target["cell"], no_target["n_step"], no_target["solved"], no_target["diverged"]) == ("no target", 1, 0, 1)
    assert no_target["q_max_abs_mean"] == 2e6 and no_target["final_gap_mean"] == 500.0  # (1e6 + 3e6) / 2; one gap
    assert math.isnan(no_target["steps_to_solve_mean"])
    table = paths["triad.md"].read_text()
    assert "| CartPole-v1 | default | 3 | 2/2 | 0 | 3750 [2500, 5000] | 495.0 [490.0, 500.0] | 30.5 [30.0, 31.0] " \
           "| 1.00 [1.00, 1.00] |" in table
    assert "| CartPole-v1 | no target | 1 | 0/2 | 1 | — | 11.0 [10.0, 12.0] | 2000000.0 [1000000.0, 3000000.0] " \
           "| 500.00 [500.00, 500.00] |" in table
    assert paths["triad.csv"].read_text().count("\n") == 3  # a header and two rows
    assert paths["triad.png"].read_bytes().startswith(b"\x89PNG") and paths["triad.png"].stat().st_size > 30_000


def test_the_command_reports_and_refuses_in_one_line(synthetic_triad, tmp_path, capsys):
    assert triad_script.main(["--report-only", "--root", str(synthetic_triad), "--env", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    assert "| CartPole-v1 | default | 3 | 2/2 | 0 |" in out and "triad.png" in out
    for argv, message in ([["--report-only", "--root", str(tmp_path / "none"), "--env", "CartPole-v1"],
                           "no sweep directory"],
                          [["--env", "NoSuchEnv-v0", "--root", str(tmp_path / "r")], "NoSuchEnv-v0"],
                          [["--seeds", "3-1", "--root", str(tmp_path / "r")], "range 3-1 ends before it starts"]):
        with pytest.raises(SystemExit) as stop:
            run(lambda: triad_script.main(argv))
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()  # refused before anything was written
