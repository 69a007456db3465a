"""Baird's counterexample run by every method (approximators.baird_figures), Figures 11.2, 11.5 and 11.6,
and the `qapprox baird` command line."""

import json

import numpy as np
import pytest

from qapprox.approximators.baird_figures import FIGURES, METHODS, MU, SAMPLED, baird_run, book_figure
from qapprox.approximators.off_policy import pbe, ve
from qapprox.envs.baird import BAIRD_FEATURES, BAIRD_W0, TARGET_POLICY, baird
from qapprox.scripts import baird as script
from script_calls import exit_status


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    return exit_status(script.main, argv, capsys)


@pytest.mark.parametrize("method", METHODS)
def test_json_has_n_weight_vectors_and_their_errors_for_every_method(method, capsys):
    flags = ["--runs", "3"] if method in SAMPLED else []
    code, out, err = call(["--method", method, "--steps", "7", "--json", *flags], capsys)
    assert code == 0, err
    result = json.loads(out)
    w = np.array(result["w"])
    assert w.shape == (7, 8) and len(result["rmsve"]) == len(result["rmspbe"]) == 7
    assert result["w0"] == BAIRD_W0.tolist() and result["unit"] == ("step" if method in SAMPLED else "sweep")
    # the reported errors are those of the reported w: v_π = 0, μ the behaviour's stationary distribution
    assert np.allclose(result["rmsve"], np.sqrt(ve(w, BAIRD_FEATURES, np.zeros(7), MU)))
    assert np.allclose(result["rmspbe"], np.sqrt(pbe(w, BAIRD_FEATURES, baird(), TARGET_POLICY, MU)))


def test_the_book_step_sizes_are_the_defaults_and_sampled_w_is_the_mean_over_runs(capsys):
    assert (baird_run("semi-gradient-td", 1).alpha, baird_run("semi-gradient-dp", 1).alpha) == (0.01, 0.01)
    assert (baird_run("tdc", 1).alpha, baird_run("tdc", 1).beta) == (0.005, 0.05)
    assert baird_run("expected-etd", 1).alpha == 0.03
    from qapprox.approximators.off_policy_td import off_policy_td
    from qapprox.envs.baird import BEHAVIOUR_POLICY
    runs = off_policy_td(baird(), BAIRD_FEATURES, TARGET_POLICY, BEHAVIOUR_POLICY, method="tdc", steps=5,
                         alpha=0.005, beta=0.05, runs=4, w0=BAIRD_W0, seed=2).w
    assert np.allclose(baird_run("tdc", 5, runs=4, seed=2).w, runs.mean(axis=1))


def test_semi_gradient_dp_diverges_and_expected_tdc_minimises_the_pbe_not_the_ve():
    dp = baird_run("semi-gradient-dp", 1000)
    norms = np.linalg.norm(dp.w, axis=1)
    assert np.all(np.diff(norms[100:]) > 0) and norms[-1] > 40 * norms[0]
    tdc = baird_run("expected-tdc", 1000)
    assert np.all(np.diff(tdc.rmspbe[50:400]) < 0) and tdc.rmspbe[400:].max() < 0.002 * tdc.rmspbe[0]
    assert tdc.rmsve[-1] > 1.0           # √VE stays away from 0 although a w with v̂ = 0 exists
    etd = baird_run("expected-etd", 1000)
    assert etd.rmsve[-1] < 1e-6          # emphatic TD's expected update reaches v̂ = 0


@pytest.mark.parametrize("number", list(FIGURES))
def test_each_figure_writes_a_png(number, tmp_path, capsys):
    png = tmp_path / f"f{number}.png"
    code, out, err = call(["--figure", number, "--steps", "20", "--png", str(png)], capsys)
    assert code == 0, err
    assert png.stat().st_size > 10_000 and out.strip() == f"figure: {png}"


def test_a_figure_without_png_goes_to_the_current_folder_and_a_method_can_draw_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert call(["--figure", "11.6", "--steps", "5"], capsys)[0] == 0
    assert (tmp_path / "baird_figure_11_6.png").is_file()
    code, out, _ = call(["--method", "gtd2", "--steps", "5", "--png", "gtd2"], capsys)
    assert code == 0 and (tmp_path / "gtd2.png").is_file() and "√PBE" in out
    book_figure("11.2", steps=3, runs=2, seed=1).savefig(tmp_path / "mean.png")


@pytest.mark.parametrize("argv, fragment", [
    ([], "give one of --method METHOD or --figure"),
    (["--method", "tdc", "--figure", "11.5"], "give one of --method METHOD or --figure"),
    (["--method", "nope"], "invalid choice"),
    (["--figure", "11.3"], "invalid choice"),
    (["--method", "semi-gradient-td", "--beta", "0.1"], "semi-gradient-td takes none"),
    (["--method", "expected-etd", "--beta", "0.1"], "expected-etd takes none"),
    (["--method", "expected-tdc", "--runs", "2"], "expected update"),
    (["--method", "semi-gradient-dp", "--seed", "2"], "expected update"),
    (["--method", "tdc", "--steps", "0"], "steps=0"),
    (["--method", "tdc", "--alpha", "0"], "alpha=0.0 must be > 0"),
    (["--method", "expected-tdc", "--beta", "-1"], "beta=-1.0 must be > 0"),
    (["--method", "tdc", "--alpha", "inf"], "not a finite number"),
    (["--method", "tdc", "--runs", "0"], "runs=0"),
    (["--method", "tdc", "--seed", "-1"], "seed"),
    (["--method", "tdc", "--runs", "10000000000"], "of memory"),
    (["--method", "tdc", "--png", "/no/such/folder/x.png"], "does not exist"),
    (["--figure", "11.2", "--alpha", "0.1"], "--alpha is for --method"),
    (["--figure", "11.5", "--json"], "--json is for --method"),
    (["--figure", "11.6", "--runs", "3"], "no sampled panel"),
    (["--figure", "11.2", "--png", "x.gif"], "not a figure format"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(argv, capsys)
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert not list(tmp_path.iterdir())    # refused before any work: nothing written


def test_qapprox_help_lists_baird(capsys):
    from qapprox.scripts import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "baird" in capsys.readouterr().out
