"""dqn.population_report: the aggregate of a population's member runs, against numbers worked out by hand."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest

from qapprox.dqn import analysis
from qapprox.dqn.population_report import aggregate, write_aggregate
from synthetic_runs import write_run

START = 1000.0  # each member's first event; an evaluation at step s is logged at wall time START + s / 100
RETURNS = {  # seed → greedy returns at steps 1000, 2000, …; threshold 475
    0: [100, 480, 500, 500, 500, 500],  # solved at 2000 (20 s)
    1: [100, 200, 475, 450, 490, 300],  # solved at 3000 (30 s): reaching the threshold counts
    2: [100, 200, 300, 400, 476, 460],  # solved at 5000 (50 s)
    3: [100, 150, 200],                 # diverged at step 3500
    5: [10, 20, 30, 40, 50, 50],        # never solved
}


@pytest.fixture
def members(tmp_path, monkeypatch):
    """Run folders of seeds 0..5; seed 4's is empty (no events)."""
    dirs = {}
    for seed, returns in RETURNS.items():
        points = [(1000 * (i + 1), value, START + 10 * (i + 1)) for i, value in enumerate(returns)]
        scalars = {analysis.DIVERGED_TAG: [(3500, 1.0)]} if seed == 3 else None
        write_run(tmp_path / f"m{seed}", [(START, None, points)], monkeypatch, {}, seed, scalars=scalars)
        (dirs[seed],) = (tmp_path / f"m{seed}").glob("CartPole-v1__dqn__*")
    dirs[4] = tmp_path / "m4" / "CartPole-v1__dqn__4__1000"
    dirs[4].mkdir(parents=True)
    return [dirs[seed] for seed in sorted(dirs)]


def test_members_and_statistics_over_them(tmp_path, members):
    paths = aggregate(tmp_path / "population", members, 475.0)  # seeds read from the folder names
    assert set(paths) == {"png", "md", "csv"} and all(p.parent == tmp_path / "population" for p in paths.values())
    rows = {row["seed"]: row for row in csv.DictReader(paths["csv"].open())}
    assert [rows[str(s)]["steps_to_solve"] for s in range(6)] == ["2000.0", "3000.0", "5000.0", "", "", ""]
    assert [rows[str(s)]["seconds_to_solve"] for s in range(6)] == ["20.0", "30.0", "50.0", "", "", ""]
    assert [rows[str(s)]["best_return"] for s in range(6)] == ["500.0", "490.0", "476.0", "200.0", "", "50.0"]
    assert [rows[str(s)]["diverged_step"] for s in range(6)] == ["", "", "", "3500.0", "", ""]
    assert set(rows["4"].values()) == {"4", ""}  # no events: every cell blank
    assert [rows["n"][c] for c in ("steps_to_solve", "final_return", "diverged_step")] == ["3", "5", "1"]
    # steps 2000, 3000, 5000: mean 10000/3, median 3000, IQM (n = 3, nothing cut) the mean
    assert [float(rows[s]["steps_to_solve"]) for s in ("mean", "median", "IQM")] == [10000 / 3, 3000.0, 10000 / 3]
    # final returns 50, 200, 300, 460, 500: mean 302, median 300, IQM mean(200, 300, 460) = 320
    assert [float(rows[s]["final_return"]) for s in ("mean", "median", "IQM")] == [302.0, 300.0, 320.0]
    low, high = analysis.bootstrap_interval([2000.0, 3000.0, 5000.0])
    assert (float(rows["bootstrap 2.5 %"]["steps_to_solve"]), float(rows["bootstrap 97.5 %"]["steps_to_solve"])) \
        == (low, high) and 2000 <= low < 10000 / 3 < high <= 5000

    md = paths["md"].read_text().splitlines()
    assert md[0] == "# CartPole-v1: a population of 6 members"
    assert "3 of 6 members solved; 1 diverged" in md[2]
    assert "| 0 | 2,000 | 20.0 | 500.0 | 500.0 | — |" in md
    assert "| 3 | — | — | 200.0 | 200.0 | 3,500 |" in md
    assert "| 4 | — | — | — | — | — |" in md
    assert "| n | 3 of 6 | 3 of 6 | 5 of 6 | 5 of 6 |" in md
    assert "| mean | 3,333.3 | 33.3 | 302.0 | 343.2 |" in md  # best: (500 + 490 + 476 + 200 + 50) / 5
    assert "| median | 3,000.0 | 30.0 | 300.0 | 476.0 |" in md
    assert f"| bootstrap 95 % | [{low:,.1f}, {high:,.1f}] |" in md[-1]

    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_write_aggregate_skips_members_without_a_run_folder(tmp_path, members):
    member = [SimpleNamespace(run_dir=d, seed=seed) for seed, d in zip((10, 11), members[:2])]
    agent = SimpleNamespace(population_dir=tmp_path / "pop", reward_threshold=None,
                            members=[*member, SimpleNamespace(run_dir=None, seed=12)])
    paths = write_aggregate(agent)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["seed"] for r in rows[:3]] == ["10", "11", "n"]  # seeds as given; seed 12 has no folder
    assert [r["steps_to_solve"] for r in rows[:3]] == ["", "", "0"]  # no threshold: nothing is solved
    assert [r["final_return"] for r in rows[:3]] == ["500.0", "300.0", "2"]
    assert "≥ a threshold (none known for this env)" in paths["md"].read_text()


def test_bad_seeds_are_one_line(tmp_path, members):
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 run folders"):
        aggregate(tmp_path, members[:2], 475.0, [0])
    with pytest.raises(ValueError, match="no seed in run folder name 'elsewhere'"):
        aggregate(tmp_path, [tmp_path / "elsewhere"], 475.0)
