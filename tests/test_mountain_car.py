"""envs.mountain_car: the vector env against gymnasium's MountainCar-v0 step for step (resets, autoresets and the
final observations included), its time limit, per-car seeding, and refusals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from qapprox.envs.mountain_car import MountainCarVectorEnv


def pumping(rng: np.random.Generator, velocity: np.ndarray) -> np.ndarray:
    """Random actions that mostly push along the velocity, so that cars reach the goal and restart."""
    return np.where(rng.random(velocity.shape) < 0.7, np.where(velocity >= 0, 2, 0), rng.integers(3, size=velocity.shape))


def test_the_vector_env_equals_gymnasium_step_for_step_through_its_episodes():
    cars, seed = 5, 11
    env = MountainCarVectorEnv(cars)
    obs, _ = env.reset(seed=seed)
    reference = [gym.make("MountainCar-v0").unwrapped for _ in range(cars)]  # unwrapped: no 200-step limit
    for i, car in enumerate(reference):
        o, _ = car.reset(seed=seed + i)       # car i's generator is seeded with seed + i, as SyncVectorEnv does
        np.testing.assert_array_equal(o, obs[i])
        np.testing.assert_array_equal(car.state, env.state[i])
    rng, ends = np.random.default_rng(0), 0
    for _ in range(1_500):
        a = pumping(rng, env.state[:, 1])
        obs, reward, terminated, truncated, info = env.step(a)
        assert not truncated.any()
        np.testing.assert_array_equal(reward, -1.0)
        for i, car in enumerate(reference):
            o, r, te, tr, _ = car.step(int(a[i]))
            assert (te, tr, r) == (terminated[i], False, -1.0)
            if te:  # SAME_STEP autoreset: the last observation in info, the next episode's S_0 returned
                ends += 1
                assert info["_final_obs"][i]
                np.testing.assert_array_equal(info["final_obs"][i], o)
                o, _ = car.reset()
            np.testing.assert_array_equal(o, obs[i])
            np.testing.assert_array_equal(np.asarray(car.state, dtype=np.float64), env.state[i])  # float64, exactly
    assert ends >= 10


def test_a_time_limit_truncates_and_restarts_the_car():
    env = MountainCarVectorEnv(2, max_episode_steps=3)
    env.reset(seed=0)
    for step in range(1, 7):
        obs, _, terminated, truncated, info = env.step(np.array([1, 1]))
        assert not terminated.any() and truncated.all() == (step % 3 == 0)
        if step % 3 == 0:
            assert info["_final_obs"].all() and (obs[:, 1] == 0).all() and (-0.6 <= obs[:, 0]).all()
    assert MountainCarVectorEnv(1).max_episode_steps is None  # the book's task has no time limit


def test_seeds_per_car_and_the_spaces():
    a, b = MountainCarVectorEnv(3), MountainCarVectorEnv(1)
    obs_a, _ = a.reset(seed=[4, 9, 2])
    obs_b, _ = b.reset(seed=9)
    np.testing.assert_array_equal(obs_a[1], obs_b[0])
    assert a.observation_space.shape == (3, 2) and a.single_action_space.n == 3
    assert a.single_observation_space.contains(obs_a[0])


def test_refusals():
    env = MountainCarVectorEnv(2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    for bad in (np.array([0, 3]), np.array([0]), np.array([0.5, 1.0])):
        with pytest.raises(ValueError, match="actions"):
            env.step(bad)
    with pytest.raises(ValueError, match="seeds"):
        env.reset(seed=[1])
    with pytest.raises(ValueError, match="num_envs"):
        MountainCarVectorEnv(0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        MountainCarVectorEnv(1, max_episode_steps=0)


# -------------------------------------------------------------- qapprox mountain-car
def test_the_command_prints_one_json_object(capsys):
    import json

    from qapprox.scripts.mountain_car import main

    assert main(["--runs", "2", "--episodes", "2", "--alpha", "0.5/8", "--lam", "0.5", "--time-limit", "300",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "sarsa-lambda" and out["alpha"] == 0.0625 and out["time_limit"] == 300
    assert len(out["steps_per_episode"]) == 2 and all(1 <= s <= 300 for s in out["steps_per_episode"])
    assert {"lam", "trace", "tilings", "runs", "episodes", "seed", "seconds"} <= out.keys()


@pytest.mark.parametrize("flags", [["--n", "2", "--lam", "0.5"], ["--alpha", "0"], ["--alpha", "-0.1/8"],
                                   ["--tilings", "0"], ["--figure", "9.9"], ["--trace", "dutch", "--lam", "0.5"],
                                   ["--runs", "0"]])
def test_the_command_refuses_bad_flags_in_one_line(flags):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "qapprox.scripts.cli", "mountain-car", *flags, "--episodes", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("number, flags", [("12.10", ["--alphas", "0.5", "1", "--values", "0", "0.9"]),
                                           ("10.4", ["--alphas", "0.5", "--values", "1", "4"]),
                                           ("10.1", ["--episodes", "2"])])
def test_a_figure_writes_its_png_and_numbers(tmp_path, capsys, number, flags):
    import json

    from qapprox.scripts.mountain_car import main

    png = tmp_path / "figure.png"
    episodes = [] if number == "10.1" else ["--episodes", "1"]
    assert main(["--figure", number, "--runs", "1", *episodes, *flags, "--png", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.stat().st_size > 10_000 and out["number"] == number
    if number == "10.1":
        assert out["panels"] == [1, 2] and np.array(out["cost_to_go"]).shape == (2, 60, 60)
        assert np.min(out["cost_to_go"]) >= 0.0  # q̂ ≤ 0 everywhere: every reward is −1 from w = 0
    else:
        assert np.array(out["mean_steps"]).shape == (2, len(out["alphas8"]))
