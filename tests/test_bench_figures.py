"""qapprox benchmark-figures (dqn.benchmark.figures): the plain one-run SARSA loop takes exactly the batched
control's steps per episode for the same seeds (n-step SARSA, SARSA(λ), the step cap), the JSON's keys at a
test size, --help, and one-line refusals with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qapprox.approximators.tile_control import control
from qapprox.dqn.benchmark.figures import FIGURES, figures_benchmark, sarsa_loop
from qapprox.scripts import bench_figures
from script_calls import exit_status


@pytest.mark.parametrize("kwargs, episodes, max_steps", [({"n": [1, 4]}, 3, None),
                                                         ({"lam": [0.9], "trace": "replacing"}, 2, None),
                                                         ({"lam": [0.5], "trace": "accumulating"}, 3, 1500)])
def test_the_sarsa_loop_takes_the_batched_runs_steps_episode_for_episode(kwargs, episodes, max_steps):
    runs, alpha = 2, 0.5 / 8
    states = np.random.default_rng(0).uniform((-1.2, -0.07), (0.6, 0.07), size=(200, 2))
    batched = control(episodes, runs=runs, alpha=alpha, seed=3, max_steps=max_steps, **kwargs)
    name = "n" if "n" in kwargs else "lam"
    for c, value in enumerate(kwargs[name]):
        for r in range(runs):
            steps, w, coder = sarsa_loop(episodes, alpha=alpha, seed=3 + r, max_steps=max_steps,
                                         trace=kwargs.get("trace", "replacing"), **{name: value})
            assert np.array_equal(steps, batched.steps[c, r], equal_nan=True), (value, r, steps, batched.steps[c, r])
            if max_steps is None:  # the same w, though the two coders number the tiles in different orders
                np.testing.assert_allclose(coder.q_values(w, states, 3),
                                           batched.coder.q_values(batched.w[c, r], states, 3), rtol=1e-12, atol=1e-12)
    if max_steps is not None:
        assert np.isnan(batched.steps).any()  # the cap did cut an episode, and the loop cut it too


def test_the_json_has_every_key_at_a_test_size(tmp_path):
    out = tmp_path / "figures.json"
    tiny = {"9.1": {"episodes": 20, "alpha": 2e-5},
            "10.2": {"runs": 1, "episodes": 2, "alphas8": (0.5,), "second": None}}
    result = figures_benchmark(out, "qapprox benchmark-figures", list(tiny), loop_runs=1, protocols=tiny)
    written = json.loads(out.read_text())
    assert written["command"] == "qapprox benchmark-figures" and list(written["figures"]) == ["9.1", "10.2"]
    assert {"cpu_count", "processor"} <= written["machine"].keys()
    assert {"numpy", "gymnasium"} <= written["versions"].keys()
    for figure, row in written["figures"].items():
        assert {"protocol", "batched_seconds", "loop_seconds_measured", "loop_runs_measured",
                "loop_seconds_extrapolated", "speedup", "results_agree"} <= row.keys()
        assert row["results_agree"] is True and row["protocol_name"] == "given"
    assert result["figures"]["9.1"]["loop_episodes_measured"] == [20]    # one run: all its (one chunk's) episodes
    assert result["figures"]["10.2"]["loop_runs_measured"] == 1


def test_help_lists_the_flags_and_the_figures(capsys):
    code, out, _ = exit_status(bench_figures.main, ["--help"], capsys)
    assert code == 0 and "--loop-runs" in out and "--quick" in out and all(f in out for f in FIGURES)


@pytest.mark.parametrize("flags", [["--figures", "9.3"], ["--loop-runs", "0"], ["--seed", "-1", "--figures", "9.1"],
                                   ["--bogus"], ["--out", "/", "--figures", "9.1"]])
def test_bad_flags_are_one_line_and_exit_2(capsys, flags):
    code, out, err = exit_status(bench_figures.main, flags, capsys)
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
