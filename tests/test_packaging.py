"""One import name and one command: the wheel holds only `qapprox` (the folders envs/, approximators/, dqn/ and
scripts/ under it) and its dist-info; `qapprox --help` lists every subcommand and each one's --help is its
script's. (.ci/check_install installs the wheel into a fresh venv and trains from another directory.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qapprox.scripts import cli

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("envs/", "approximators/", "dqn/", "scripts/")


@pytest.fixture(autouse=True)
def keep_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main sets argparse's prog through sys.argv


def source_files() -> list[str]:
    """The files git tracks or would track (not the ignored ones: .venv, build/, runs/)."""
    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return [name for name in done.stdout.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the files git tracks or would track: a stale build/ cannot leak in."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
                   check=True, cwd=out, timeout=600)
    [path] = out.glob("qapprox-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_installs_only_qapprox_and_its_dist_info(wheel):
    from importlib.metadata import version

    top = {name.split("/")[0] for name in wheel.namelist()}
    assert top == {"qapprox", f"qapprox-{version('qapprox')}.dist-info"}
    sources = {f"qapprox/{name}" for name in source_files() if name.endswith(".py") and name.startswith(FOLDERS)}
    assert sources and sources == {name for name in wheel.namelist() if name.endswith(".py")}


def test_the_wheel_declares_the_qapprox_command(wheel):
    [entry_points] = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    assert "qapprox = qapprox.scripts.cli:main" in wheel.read(entry_points).decode().splitlines()


def test_help_lists_every_subcommand_with_its_scripts_summary(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    listing = capsys.readouterr().out
    assert exit_.value.code == 0
    for name, module in cli.SUBCOMMANDS.items():
        assert (REPO / "scripts" / f"{module}.py").is_file()
        assert f"  {name} " in listing and cli.summary(module) in listing
    assert len(cli.SUBCOMMANDS) == len({*cli.SUBCOMMANDS.values()})


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_each_subcommand_help_is_its_scripts_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: qapprox {name}")


def test_an_unknown_subcommand_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["trian"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "'trian'" in err and "train" in err


@pytest.mark.parametrize("module", ["train_dqn", "evaluate"])
def test_python_m_scripts_still_works_from_a_checkout(module):
    done = subprocess.run([sys.executable, "-m", f"scripts.{module}", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage:")


def test_python_m_the_cli_module_finds_its_subcommands():
    done = subprocess.run([sys.executable, "-m", "qapprox.scripts.cli", "evaluate", "--help"], cwd=REPO.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: qapprox evaluate")


def test_a_closed_pipe_ends_a_command_quietly():
    # `qapprox … | head`: the reader is gone before the command writes; no traceback, exit 141 (128 + SIGPIPE).
    process = subprocess.Popen([sys.executable, "-m", "qapprox.scripts.cli", "quiz9", "--json"], cwd=REPO.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 141 and err == b""
