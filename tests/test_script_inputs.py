"""Every input of the lecture scripts is untrusted (finding 7 of the issue): td_lambda, mc_regression,
nn_regression, backprop_example, gd_paths, plot_runs, quiz9.

One test per finding, each failing on the code before it and passing now: nan/±inf refused at the
flag, sizes refused by their memory estimate before any array is allocated, output paths checked
before the work, plot_runs naming the file it really wrote. Then a fuzzer: Hypothesis draws flag
values for each script (finite and non-finite floats, huge and negative integers, odd strings) and
asserts exit 0, or exit 2 with one `error:` line and no traceback; no numpy overflow warning; a
refusal writes nothing; nothing is written outside tmp. test_what_the_fuzzer_found keeps what it found.

The default profile is small and derandomised: 60 examples per script, the same every run (the whole
file takes about 15 s on 2 cores). QAPPROX_FUZZ_EXAMPLES=N runs N random examples per script instead
and prints how they ended, e.g. (about 3 minutes for 1000)
    QAPPROX_FUZZ_EXAMPLES=1000 OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -s tests/test_script_inputs.py -k fuzzed
"""

from __future__ import annotations

import importlib
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from qapprox.scripts._cli import run

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LONG = int(os.environ.get("QAPPROX_FUZZ_EXAMPLES", "0"))
REPO = Path(__file__).resolve().parents[1]


def fuzz(default: int):
    return settings(max_examples=LONG or default, deadline=None, derandomize=not LONG, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def call(script: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """scripts.<script>.main(argv) in-process through run(): (exit status, stdout, stderr). A numeric
    RuntimeWarning (overflow, invalid value: nan on its way) fails the call, as it would print to stderr."""
    module = importlib.import_module(f"scripts.{script}")
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as exit_:
        warnings.simplefilter("always")
        run(lambda: module.main(argv))
    torch.set_num_threads(1)
    out, err = capsys.readouterr()
    numeric = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numeric, (argv, numeric)
    return exit_.value.code, out, err


def assert_refused(code: int, err: str, *fragments: str) -> None:
    assert code == 2, (code, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


# ------------------------------------------------------------------ one test per finding
@pytest.mark.parametrize("script, argv, named", [
    ("td_lambda", ["--runs", "1000000000"], "TD(λ) on 1,000,000,000 runs × 10 episodes"),
    ("gd_paths", ["--m", "1000000000"], "gradient descent on m=1,000,000,000 observations"),
])
def test_sizes_are_refused_by_their_memory_estimate_before_any_allocation(script, argv, named, tmp_path, capsys):
    """Before: a MemoryError traceback (td_lambda), an OOM kill after a minute of swapping (gd_paths)."""
    start = time.perf_counter()
    code, _, err = call(script, [*argv, "--logdir", str(tmp_path)], capsys)
    assert_refused(code, err, named, "of memory;", "is available")
    assert time.perf_counter() - start < 10 and files(tmp_path) == []


@pytest.mark.parametrize("script, argv, named", [
    ("td_lambda", ["--alpha", "inf"], "argument --alpha: 'inf' is not a finite number"),
    ("td_lambda", ["--alphas", "0.1", "nan", "--sweep"], "argument --alphas: 'nan' is not a finite number"),
    ("mc_regression", ["--ridge", "nan"], "argument --ridge: 'nan' is not a finite number"),
    ("nn_regression", ["--alpha", "inf"], "argument --alpha: 'inf' is not a finite number"),
    ("backprop_example", ["--x1", "nan"], "argument --x1: 'nan' is not a finite number"),
    ("backprop_example", ["--weights", "inf", *["1"] * 8], "argument --weights: 'inf' is not a finite number"),
    ("backprop_example", ["--weights", "1e200", *["1"] * 8], "overflow float64: ŷ = 1e+200, L = inf"),
])
def test_non_finite_numbers_are_refused_instead_of_printing_nan(script, argv, named, tmp_path, capsys):
    """Before: exit 0 with nan (or inf) printed as the answer."""
    code, out, err = call(script, argv + ([] if script == "backprop_example" else ["--logdir", str(tmp_path)]), capsys)
    assert_refused(code, err, named)
    assert out == "" and files(tmp_path) == []


@pytest.mark.parametrize("script, argv, flag, bad", [
    ("td_lambda", ["--sweep", "--runs", "2", "--episodes", "2", "--png", "/nonexistent/d/x.png"], "--png",
     "/nonexistent/d"),
    ("gd_paths", ["--png", "/proc/x.png"], "--png", "/proc/x.png"),
    ("plot_runs", ["--out", "/proc/x.png"], "--out", "/proc/x.png"),
    ("td_lambda", ["--logdir", "/proc/x"], "--logdir", "/proc/x"),
    ("mc_regression", ["--logdir", "/proc/x"], "--logdir", "/proc/x"),
    ("nn_regression", ["--logdir", "/proc/x"], "--logdir", "/proc/x"),
    ("gd_paths", ["--logdir", "/proc/x"], "--logdir", "/proc/x"),
])
def test_output_paths_are_refused_before_the_work(script, argv, flag, bad, tmp_path, capsys, monkeypatch):
    """Before: every episode sampled, every network fitted and every path run, then an OSError."""
    monkeypatch.chdir(tmp_path)
    if script == "plot_runs":
        argv = [str(tmp_path / "no_such_run"), *argv]  # before: its curves were read before --out was tried
    elif "--logdir" not in argv:
        argv = [*argv, "--logdir", str(tmp_path / "runs")]
    work = {"td_lambda": "qapprox.approximators.traces.EpisodeBatch.sample", "gd_paths": "qapprox.approximators.gd_paths.compare",
            "mc_regression": "qapprox.envs.finite.FiniteMDP.episodes", "nn_regression": "qapprox.envs.finite.FiniteMDP.episodes",
            "plot_runs": "qapprox.dqn.analysis.read_run"}[script]

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(work, no_work)
    code, _, err = call(script, argv, capsys)
    assert_refused(code, err, flag, bad)
    assert files(tmp_path) == []


def test_a_file_given_as_logdir_and_a_bad_figure_format_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = call("td_lambda", ["--logdir", str(tmp_path / "file" / "runs")], capsys)
    assert_refused(code, err, f"--logdir {tmp_path / 'file' / 'runs'}: {tmp_path / 'file'} is a file, not a folder")
    code, _, err = call("gd_paths", ["--png", str(tmp_path / "x.pgf"), "--logdir", str(tmp_path)], capsys)
    assert_refused(code, err, "--png", ".pgf is not a figure format; allowed: .png, .pdf")
    assert files(tmp_path) == [tmp_path / "file"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny td_lambda run: a TensorBoard directory with the scalar rms_error."""
    logdir = tmp_path_factory.mktemp("runs")
    from qapprox.scripts import td_lambda

    assert td_lambda.main(["--runs", "2", "--episodes", "3", "--json", "--logdir", str(logdir)]) == 0
    torch.set_num_threads(1)
    (directory,) = logdir.iterdir()
    return directory


def test_plot_runs_prints_the_path_it_really_wrote(run_dir, tmp_path, capsys):
    """Before: `--out DIR` wrote DIR.png and printed `wrote DIR`."""
    code, out, err = call("plot_runs", [str(run_dir), "--tag", "rms_error", "--out", str(tmp_path / "curves")], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'curves.png'}"
    assert files(tmp_path) == [tmp_path / "curves.png"]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_td_lambda_figure_without_a_suffix_is_named_as_written(tmp_path, capsys):
    code, out, err = call("td_lambda", ["--sweep", "--runs", "2", "--episodes", "2", "--lams", "0.5", "--alphas", "0.1",
                                        "--png", str(tmp_path / "sweep"), "--logdir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert f"figure: {tmp_path / 'sweep.png'}" in out and (tmp_path / "sweep.png").is_file()


@pytest.mark.parametrize("script, argv, named", [
    ("td_lambda", ["--seed", "-1"], "seed=-1 must be an integer in [0, 4,294,967,295]"),
    ("gd_paths", ["--seed", str(2**70)], f"seed={2**70} must be an integer"),
    ("nn_regression", ["--seed", str(2**64)], f"seed={2**64} must be an integer"),  # before: torch's overflow traceback
    ("quiz9", ["--episodes", "1000000000"], "regression of returns on 1,000,000,000 episodes needs"),
    ("mc_regression", ["--episodes", "100000000"], "regression of returns on 100,000,000 quiz9 episodes needs"),
    ("nn_regression", ["--hidden", "1000000000"], "fitting a network of 8,000,000,001 weights"),
    ("plot_runs", ["--points", "10000000000"], "--points=10,000,000,000 for 1 run(s) × 1 tag(s) needs"),
    ("plot_runs", ["--tag", "x"] * 100, "--tag given 100 times; at most 78 panels"),
])
def test_integer_flags_out_of_range_are_one_line(script, argv, named, tmp_path, capsys):
    if script == "plot_runs":
        argv = [str(tmp_path / "run"), *argv, "--out", str(tmp_path / "x.png")]
    elif script != "quiz9":
        argv = [*argv, "--logdir", str(tmp_path)]
    code, _, err = call(script, argv, capsys)
    assert_refused(code, err, named)
    assert files(tmp_path) == []


def test_diverging_step_sizes_are_named_not_printed_as_nan(tmp_path, capsys):
    code, _, err = call("mc_regression", ["--method", "sgd", "--alpha", "1e300", "--episodes", "20",
                                          "--logdir", str(tmp_path)], capsys)
    assert_refused(code, err, "sgd diverged in epoch 1", "alpha=1e+300 is too large")
    code, out, err = call("gd_paths", ["--alpha", "1e10", "--epochs", "2", "--logdir", str(tmp_path)], capsys)
    assert code == 0 and "diverged: α too large" in out and err == ""


@pytest.mark.parametrize("script, argv, code, named", [
    ("nn_regression", ["--alpha", "3.5e37"], 2, "alpha=3.5e+37 is too large for float32 weights"),  # torch's RuntimeError
    ("gd_paths", ["--noise", "11203703"], 0, ""),  # `error: Contour levels must be increasing`, after the work
    ("gd_paths", ["--noise", "1e300"], 2, "noise=1e+300 is too large"),  # overflow warnings, then an OverflowError
    ("gd_paths", ["--png", "x.pgf"], 2, ".pgf is not a figure format"),  # after the work: 'xelatex' not found
    ("plot_runs", ["--title", "$$"], 0, ""),  # mathtext's multi-line ParseException
    ("plot_runs", ["--title", "\udcff"], 0, ""),  # an undecodable argv byte: matplotlib's TypeError
    ("backprop_example", ["--x1", "1.26e62"], 0, ""),  # numpy's overflow warnings on stderr (the step's cost)
    ("backprop_example", ["--x1", "1e200"], 2, "overflow float64"),  # a table of inf and nan, and warnings
])
def test_what_the_fuzzer_found(script, argv, code, named, run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = {"nn_regression": ["--episodes", "20", "--epochs", "2", "--batch-size", "5"], "gd_paths": ["--epochs", "2"]}
    if script == "plot_runs":
        argv = [str(run_dir), "--tag", "rms_error", *argv, "--out", str(tmp_path / "x.png")]
    elif script in small:
        argv = [*argv, *small[script], "--logdir", str(tmp_path / "runs")]
    got, _, err = call(script, argv, capsys)
    if code == 2:
        assert_refused(got, err, named)
    else:
        assert got == 0 and "Traceback" not in err, err


def test_the_memory_estimates_are_near_what_is_allocated():
    """td_lambda_bytes against tracemalloc's peak for a small batch (numpy's arrays are traced)."""
    import tracemalloc

    from qapprox.approximators.features import state_features
    from qapprox.approximators.traces import EpisodeBatch, td_lambda, td_lambda_bytes
    from qapprox.envs import make_mdp

    mdp = make_mdp("random-walk-19")
    pi, X = mdp.uniform_policy(), state_features(mdp)
    tracemalloc.start()
    batch = EpisodeBatch.sample(mdp, pi, 200, 5, np.random.default_rng(0))
    td_lambda(batch, X, alpha=np.full(4, 0.1), lam=np.full(4, 0.8))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.7 * peak < td_lambda_bytes(mdp, pi, 200, 5, 4, X.shape[1]) < 2.5 * peak


# ------------------------------------------------------------------ the fuzzer
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "1e308", "1e-320", "-0", "0", "1", "0.5", "1e400", "0x10", "1_0"]),
)
INTS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, 10**30, "1e3", "", "0x10", "1_000", "٣", "10" * 30]),
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=10)
ODD = st.one_of(TEXT, st.sampled_from(["", ".", "..", "a/../../b", "x" * 300, "$\\frac{$", "random-walk-0",
                                       "random-walk-000019", "random-walk-3", "quiz9", "-1", "--json", "\udcff"]))


def value(kind):
    return {"float": FLOATS, "int": INTS, "text": ODD}[kind].map(str)


# flag → kind (and a few valid choices mixed in for the string flags), per script. Sizes stay small by
# default so that an accepted draw runs in a fraction of a second; what is drawn replaces the default.
SCRIPTS = {
    "td_lambda": ({"--lam": "float", "--alpha": "float", "--episodes": "int", "--runs": "int", "--seed": "int",
                   "--threads": "int", "--trace": ["accumulating", "true-online", "offline-lambda-return", "x"],
                   "--env": ["random-walk-5", "quiz9", "random-walk-0", "random-walk-x", "text"],
                   "--lams": "float", "--alphas": "float", "--png": "path"},
                  ["--episodes", "2", "--runs", "2", "--json"]),
    "mc_regression": ({"--epsilon": "float", "--ridge": "float", "--alpha": "float", "--episodes": "int",
                       "--epochs": "int", "--batch-size": "int", "--seed": "int", "--threads": "int",
                       "--method": ["lstsq", "sgd", "minibatch", "text"], "--policy": ["uniform", "epsilon-optimal"],
                       "--q-features": ["one-hot", "block", "text"], "--env": ["quiz9", "random-walk-5", "text"]},
                      ["--episodes", "30", "--epochs", "2", "--json"]),
    "nn_regression": ({"--alpha": "float", "--episodes": "int", "--epochs": "int", "--batch-size": "int",
                       "--seed": "int", "--threads": "int", "--hidden": "int",
                       "--optimizer": ["sgd", "adam", "text"], "--activation": ["relu", "tanh", "text"],
                       "--env": ["quiz9", "random-walk-3", "text"]},
                      ["--episodes", "20", "--epochs", "2", "--batch-size", "8", "--hidden", "4"]),
    "backprop_example": ({"--x1": "float", "--x2": "float", "--y": "float", "--alpha": "float", "--weights": "float",
                          "--activation": ["relu", "tanh", "sigmoid", "text"]}, ["--json"]),
    "gd_paths": ({"--m": "int", "--noise": "float", "--alpha": "float", "--epochs": "int", "--batch-size": "int",
                  "--seed": "int", "--threads": "int", "--png": "path"}, ["--m", "20", "--epochs", "2", "--batch-size", "5"]),
    "plot_runs": ({"--points": "int", "--title": "text", "--tag": ["rms_error", "text"], "--out": "path"},
                  ["--tag", "rms_error"]),
    "quiz9": ({"--seed": "int", "--episodes": "int", "--threads": "int"}, ["--episodes", "10", "--json"]),
}
SIZES = ("--episodes", "--runs", "--epochs", "--m", "--points", "--hidden")


def flag_values(kind, tmp: Path):
    if isinstance(kind, list):
        return st.sampled_from([k for k in kind if k != "text"]) | (ODD if "text" in kind else st.nothing())
    if kind == "path":  # inside tmp, or somewhere that cannot be written
        return st.one_of(
            st.sampled_from(["fig", "fig.png", "fig.pdf", "fig.foo", "fig.pgf", "no_dir/fig.png", "", ".", "x" * 300 + ".png",
                             "file/fig.png"]).map(lambda name: str(tmp / name)),
            st.sampled_from(["/proc/x.png", "/nonexistent/d/x.png", "/proc", "/"]),
        )
    return value(kind)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_fuzzed_flags_exit_0_or_2_with_one_line(script, tmp_path_factory, run_dir, capsys, monkeypatch):
    flags, base = SCRIPTS[script]
    examples = {"count": 0, "exit 0": 0, "exit 2": 0}
    outside = files(REPO / "runs") if (REPO / "runs").exists() else []

    @fuzz(60)
    @given(data=st.data())
    def check(data):
        tmp = tmp_path_factory.mktemp(script)
        (tmp / "file").write_text("x")
        monkeypatch.chdir(tmp)
        drawn = data.draw(st.lists(st.sampled_from(sorted(flags)), min_size=1, max_size=3, unique=True))
        argv = list(base)
        for flag in drawn:
            values = data.draw(st.lists(flag_values(flags[flag], tmp), min_size=1,
                                        max_size=9 if flag in ("--weights", "--hidden", "--lams", "--alphas") else 1))
            if flag in SIZES:  # what runs stays small (< 100); what is refused may be huge (> 10**12) …
                huge = 10**12 if (script, flag) != ("mc_regression", "--epochs") else math.inf  # … SGD's epochs
                values = [v if not v.lstrip("-").isdigit() or not 100 <= int(v) <= huge else "3" for v in values]
            argv += [flag, *values] if not values[0].startswith("-") else [f"{flag}={values[0]}", *values[1:]]
        if script == "plot_runs":
            argv = [str(run_dir), *argv] + ([] if "--out" in drawn else ["--out", str(tmp / "curves.png")])
        elif script not in ("backprop_example", "quiz9"):
            argv += ["--logdir", str(tmp / "runs")]
        before = {p for p in files(tmp)}
        code, _, err = call(script, argv, capsys)
        examples["count"] += 1
        examples[f"exit {code}"] = examples.get(f"exit {code}", 0) + 1
        event(f"exit {code}")
        assert code in (0, 2), (argv, code, err[-3000:])
        if code == 2:
            assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
            assert not (set(files(tmp)) - before) or "diverged" in err, (argv, err, set(files(tmp)) - before)

    check()  # the scripts ran in tmp (cwd); nothing may have been written outside it
    assert (files(REPO / "runs") if (REPO / "runs").exists() else []) == outside
    assert not Path("/nonexistent").exists()
    assert examples["exit 2"] > 0  # the fuzzer reaches refusals…
    assert examples["exit 0"] > 0  # …and accepted flags
    if LONG:
        with capsys.disabled():
            print(f"\n{script}: {examples}")
