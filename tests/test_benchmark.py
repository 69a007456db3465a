"""The benchmark's machinery (qapprox.dqn.benchmark), tiny: one seed, a few hundred steps, only to keep
it working (the targets themselves are measured by `qapprox benchmark`, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qapprox.dqn.benchmark import cleanrl, suites
from qapprox.dqn.benchmark.linear import linear_benchmark
from qapprox.dqn.benchmark.memory import case
from qapprox.dqn.benchmark.report import solve_point
from qapprox.dqn.benchmark.suites import BenchmarkSettings, run_suites, write_report
from qapprox.dqn.benchmark.worker import sb3_kwargs
from qapprox.dqn.config import preset
from qapprox.dqn.evaluation import reward_threshold, rolling_mean

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = reward_threshold("CartPole-v1")  # 475


def episodes_from(returns: list[float]) -> list[tuple[int, float, float]]:
    """CartPole-like rows: one env, reward 1 per step, so each episode ends `return` steps after the last."""
    steps = 0
    rows = []
    for k, episode_return in enumerate(returns):
        steps += int(episode_return)
        rows.append((steps, 0.5 * (k + 1), episode_return))
    return rows


def test_solve_point_is_first_last10_mean_at_least_475():
    # 250 + 9 · 500 = 4750 → mean 475.0 after episode 10 exactly: solved there (step 4750, second 5.0).
    assert solve_point(episodes_from([250.0] + [500.0] * 9), THRESHOLD) == (4750, 5.0)
    # 249 + 4500 = 4749 → 474.9: not yet; after episode 11 the window is ten 500s (step 249 + 5000).
    assert solve_point(episodes_from([249.0] + [500.0] * 10), THRESHOLD) == (5249, 5.5)
    assert solve_point(episodes_from([500.0] * 9), THRESHOLD) is None  # fewer than 10 episodes
    assert solve_point([], THRESHOLD) is None
    means = rolling_mean([float(k) for k in range(12)], 10)
    assert means[:9].tolist() == pytest.approx([float("nan")] * 9, nan_ok=True)
    assert means[9:].tolist() == [4.5, 5.5, 6.5]  # (0+…+9)/10, (1+…+10)/10, (2+…+11)/10


def test_cleanrl_episode_lines_are_parsed_and_timed():
    lines = [(99.0, "/…/dqn.py:5: DeprecationWarning: distutils\n"),
             (100.0, "global_step=19, episodic_return=[20.]\n"),
             (101.0, "SPS: 1873\n"),
             (102.0, "global_step=4019, episodic_return=[500.]\n")]
    episodes, sps = cleanrl.parse(lines)
    assert episodes == [(20, 0.0, 20.0), (4020, 2.0, 500.0)]  # steps counted from 1, time from the first episode
    assert sps == 4000 / 2.0
    with pytest.raises(RuntimeError, match="1 episode line"):
        cleanrl.parse(lines[:2])


def test_sb3_gets_the_zoo_hyper_parameters():
    kwargs = sb3_kwargs(preset("sb3-zoo-cartpole"))
    expected = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                    target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                    exploration_initial_eps=1.0, exploration_final_eps=0.04, max_grad_norm=10.0, tau=1.0)
    assert {key: kwargs[key] for key in expected} == expected
    assert kwargs["policy_kwargs"] == {"net_arch": [256, 256]}
    with pytest.raises(ValueError, match="double_q=True has no SB3 DQN equivalent"):
        sb3_kwargs(preset("sb3-zoo-cartpole", double_q=True))


def test_missing_stable_baselines3_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(suites.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"^stable_baselines3 is not installed.*pip install -e '\.\[bench\]'"):
        run_suites(BenchmarkSettings(suites=("sb3",), seeds=(0,), steps=300), tmp_path, command="test")


def test_bad_suite_exits_2_with_one_line():
    done = subprocess.run([sys.executable, "-m", "scripts.benchmark", "--suites", "floor,nope"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: unknown suite 'nope'; allowed: floor, sb3, default, cleanrl, population"


def test_tiny_default_suite_and_floor_end_to_end(tmp_path):
    settings = BenchmarkSettings(suites=("floor", "default"), seeds=(0,), steps=1200, eval_episodes=2, floor_iterations=200)
    run_suites(settings, tmp_path, command="python -m scripts.benchmark --suites floor,default")
    assert write_report(tmp_path) == [tmp_path / "dqn_benchmark.md", tmp_path / "dqn_vs_sb3.png"]
    floor = json.loads((tmp_path / "dqn_floor.json").read_text())["floors"]["CartPole-v1"]
    # The default preset updates every 2nd step after learning_starts=1000: 100 updates in 1200 steps.
    assert floor["updates_per_env_step"] == pytest.approx(100 / 1200)
    # The floor's update is the cheaper of autograd + fused Adam and qapprox's own bare update.
    update = min(floor["update_fused_adam"], floor["update_qapprox"])
    assert floor["floor_sps"] == pytest.approx(1 / (floor["env_step"] + floor["act_batch1"] + 100 / 1200 * update))
    assert 0 < floor["env_step"] < update

    (run,) = json.loads((tmp_path / "dqn_default_preset.json").read_text())["runs"]
    assert (run["kind"], run["preset"], run["seed"], run["steps"], run["threads"]) == ("qapprox", "CartPole-v1", 0, 1200, 1)
    assert run["sps"] == pytest.approx(1200 / run["seconds"])
    steps, seconds, returns = zip(*run["episodes"])
    # One CartPole env, reward 1 per step: each episode's return is the steps since the previous one ended.
    assert list(returns) == [float(b - a) for a, b in zip((0,) + steps[:-1], steps)]
    assert steps[-1] <= 1200 and list(seconds) == sorted(seconds) and seconds[-1] <= run["seconds"]
    assert len(run["eval_returns"]) == 2 and all(r >= 8 for r in run["eval_returns"])  # CartPole lasts ≥ 8 steps

    table = (tmp_path / "dqn_benchmark.md").read_text()
    assert "| qapprox @ default preset | 0 | 1 | " in table
    assert "overhead over the floor at CartPole-v1" in table
    assert (tmp_path / "dqn_vs_sb3.png").stat().st_size > 10_000


def test_benchmark_command_line_runs_a_suite_and_redraws(tmp_path):
    done = subprocess.run([sys.executable, "-m", "scripts.benchmark", "--suites", "floor", "--floor-iterations", "50",
                           "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    floors = json.loads((tmp_path / "dqn_floor.json").read_text())["floors"]
    assert set(floors) == {"sb3-zoo-cartpole", "CartPole-v1", "cleanrl-cartpole"}  # no training suite: every preset's
    assert f"wrote {tmp_path / 'dqn_benchmark.md'}" in done.stdout
    recorded = json.loads((tmp_path / "dqn_floor.json").read_text())["command"]
    assert recorded == f"python -m scripts.benchmark --suites floor --floor-iterations 50 --out-dir {tmp_path}"


def test_the_qapprox_command_records_itself_in_the_result_file(tmp_path, monkeypatch, capsys):
    from qapprox.scripts import cli

    monkeypatch.setattr(sys, "argv", sys.argv[:])  # cli.main sets argparse's prog through sys.argv[0]
    flags = ["--runs", "2", "--episodes", "1", "--loop-runs", "1", "--transitions", "50", "--out", str(tmp_path / "l.json")]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["benchmark-linear", *flags])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "l.json").read_text())["command"] == " ".join(["qapprox benchmark-linear", *flags])


def test_linear_sweep_and_its_loop_reference_agree(tmp_path):
    out = tmp_path / "results" / "linear.json"
    result = linear_benchmark(out, "test", [0.0, 0.8], [0.1, 0.4], runs=3, episodes=2, loop_runs=2, transitions=2000,
                              seed=0)
    assert json.loads(out.read_text()) == result and result["command"] == "test"
    sweep = result["sweep"]
    assert sweep["configs"] == 4 and sweep["loop_runs_timed"] == 2
    assert sweep["max_relative_rms_difference_loop_vs_vectorised"] <= 1e-9
    assert result["regression"]["transitions"] >= 2000
    with pytest.raises(ValueError, match=r"loop-runs=4 must be an integer in \[1, 3\]"):
        linear_benchmark(out, "test", [0.0], [0.1], runs=3, loop_runs=4)


def test_memory_case_fills_the_buffer_it_trained():
    result = case(capacity=500, steps=300, sample_every=100, fill=True, threads=1)
    assert [sample["step"] for sample in result["samples"]] == [100, 200, 300]
    assert result["samples"][-1]["stored"] <= 300 and result["peak_rss_mib"] >= result["rss_full_mib"] > 0


@pytest.mark.parametrize("name", ["CartPole-v1", "sb3-zoo-cartpole", "cleanrl-cartpole"])
def test_floor_reference_takes_the_gradient_of_the_agents_update(name):
    import torch

    from qapprox.approximators.networks import q_network
    from qapprox.dqn.algorithm import DQNAlgorithm
    from qapprox.dqn.benchmark.floor import autograd_reference_update, fixed_batch

    config = preset(name)
    algorithm = DQNAlgorithm(config, (4,), 2, torch.device("cpu"))
    q = q_network(config.q_network, (4,), 2, config.hidden, config.activation, config.dueling)
    q.load_state_dict(algorithm.q.state_dict())
    batch = fixed_batch(config, (4,), 2)
    autograd_reference_update(algorithm, q, batch, torch.optim.SGD(q.parameters(), lr=0.0))()
    algorithm.optimizer.param_groups[0]["lr"] = 0.0
    algorithm.update(batch)
    # Same targets (DQNAlgorithm.targets), same loss (td_loss), same clip: autograd's ∇L is the by-hand one.
    reference = torch.cat([p.grad.reshape(-1) for p in q.parameters()])
    assert torch.allclose(reference, algorithm.w.grad[0, :algorithm.size], atol=1e-6)  # w's row: |w|, then padding


def test_the_population_measurement_counts_every_member_and_the_summary_takes_ratios_to_one_run():
    from qapprox.dqn.benchmark import population

    result = population.measure(members=2, steps=300, threads=1)
    assert (result["members"], result["steps"], result["threads"]) == (2, 300, 1)
    assert result["aggregate_sps"] == pytest.approx(2 * 300 / result["seconds"])
    assert result["memory_bound"] == result["replay_bytes"] + 200 * 2**20 and result["peak_rss"] > 0
    runs = [{"members": k, "threads": 1, "seconds": 10.0, "aggregate_sps": sps, "peak_rss": 2**30,
             "memory_bound": 2**29, "replay_bytes": k * 2**20} for k, sps in ((1, 1000.0), (16, 5000.0), (1, 1500.0))]
    summary = population.summarise({"populations": runs, "sb3": [{"seconds": 30.0}] * 4})
    assert summary["single_run_sps"] == 1250.0 and summary["rows"][1]["ratio_to_one"] == 4.0
    assert summary["sb3_seconds_four_seeds"] == 120.0 and summary["population16_seconds"] == 10.0
    assert summary["rows"][1]["rise_bound_mib"] == 15 + 200 and not summary["rows"][1]["within_bound"]


def test_the_products_probe_times_one_updates_network_arithmetic_per_member():
    from qapprox.dqn.benchmark import population

    row = population.products(members=3, threads=1, repeats=4)
    assert (row["members"], row["threads"]) == (3, 1)
    assert row["us_per_member"] == pytest.approx(row["us_per_update"] / 3) and row["us_per_update"] > 0
    with pytest.raises(SystemExit):  # members is needed unless --products asks for the whole table
        population.main(["--out", "unused.json"])
    with pytest.raises(ValueError, match=r"^threads=0 must be an integer ≥ 1$"):  # one line, not torch's error
        population.main(["2", "--products", "--threads", "0", "--out", "unused.json"])
