"""What every command-line front shares: one-line errors, thread choice, output paths checked before the work.

The exit-code mapping (run), the one-line ArgumentParser and set_threads live in qapprox.dqn.command_line,
where the library's own command line (qapprox.dqn.train_cli) uses them too; they are re-exported here."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from qapprox.dqn.command_line import DISK_ERRORS, EXIT_DISK, ArgumentParser, run, set_threads
from qapprox.envs.validation import check_float

__all__ = ["DISK_ERRORS", "EXIT_DISK", "ArgumentParser", "run", "set_threads", "finite_float",
           "add_output_flags", "check_output_path", "FIGURE_FORMATS", "figure_path", "check_run_dir", "recorded_command"]


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """--json, --logdir and --threads, as the lecture's prediction scripts share them."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--logdir", default="runs", help="TensorBoard root directory")
    parser.add_argument("--threads", type=int, default=1)


def finite_float(text: str) -> float:
    """argparse type: a finite number (nan and ±inf refused)."""
    try:
        return check_float("value", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number") from None


def check_output_path(name: str, path: str | Path) -> Path:
    """A file we will write at the end of the work, checked before it starts: its folder must exist
    and take a new file, and the path must not be a folder. One-line ValueError otherwise."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{name} {path} is a directory; give a file name")
        folder = path.parent
        if not folder.is_dir():
            raise ValueError(f"{name} {path}: folder {folder} does not exist")
    except OSError as exc:  # a name longer than the file system allows, …
        raise ValueError(f"{name} {path}: {exc.strerror or exc}") from None
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise ValueError(f"{name} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    return path


# What savefig writes here without extra software (pgf needs LaTeX), by the file's suffix.
FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def figure_path(name: str, path: str | Path) -> Path:
    """The file a figure saved to `path` is really written to, checked before the work: a name without a
    suffix gets .png (as matplotlib would add it), the suffix must be one of FIGURE_FORMATS, and the
    folder must take the file (check_output_path). One-line ValueError otherwise."""
    path = Path(path)
    try:
        if not path.suffix and path.name.strip(".") and not path.is_dir():
            path = path.with_name(path.name.rstrip(".") + ".png")
        if path.suffix[1:].lower() not in FIGURE_FORMATS and not path.is_dir():
            raise ValueError(f"{name} {path}: {path.suffix or 'no suffix'} is not a figure format; "
                             f"allowed: {', '.join('.' + f for f in FIGURE_FORMATS)}")
        return check_output_path(name, path)
    except OSError as exc:  # a name too long for the file system, …
        raise ValueError(f"{name} {path}: {exc.strerror or exc}") from None


def check_run_dir(name: str, run_dir: str | Path) -> Path:
    """A run directory root/<run> that TensorBoard will create, checked before the work: its nearest
    existing folder must take new entries, and every folder still to be made must have a name the file
    system allows. `name` is the flag that chose root (--logdir). One-line ValueError; nothing is created."""
    run_dir = Path(run_dir)
    root, existing = f"{name} {run_dir.parent}", run_dir
    try:
        existing = next(folder for folder in (run_dir, *run_dir.parents) if folder.exists())
        if not existing.is_dir():
            raise ValueError(f"{root}: {existing} is a file, not a folder")
        limit = os.pathconf(existing, "PC_NAME_MAX")
        for part in run_dir.relative_to(existing).parts:
            if len(os.fsencode(part)) > limit:
                raise ValueError(f"{root}: the folder name {part[:40]!r}… is {len(os.fsencode(part))} bytes long; "
                                 f"{existing} allows {limit}")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise ValueError(f"{root}: cannot create folders in {existing} ({exc.strerror or exc})") from None
    return run_dir


def recorded_command(prog: str, module: str, argv: Sequence[str]) -> str:
    """The command line a result file records as the one that ran it: `qapprox NAME ARGS` under the qapprox
    command (its prog, set by scripts/cli.py), else `python -m scripts.MODULE ARGS`."""
    head = prog if prog.startswith("qapprox") else f"python -m scripts.{module}"
    return " ".join([head, *map(shlex.quote, argv)])
