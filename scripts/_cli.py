"""What every command-line front shares: one-line errors, thread choice, output paths checked before the work."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from qapprox.approximators.limits import check_threads
from qapprox.envs.validation import check_float

# Exit status when the disk is full or read-only: the run stops, the last good checkpoint stays.
EXIT_DISK = 3
DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO)


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: …`, exit 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(main: Callable[[], int | None]) -> None:
    """Call main(); bad input (ValueError, a missing file) becomes `error: …` on stderr and exit 2;
    a full or read-only disk becomes one line and exit 3 (EXIT_DISK)."""
    try:
        code = main()
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except MemoryError:  # an allocation no estimate foresaw (the checks before the work name theirs)
        print("error: out of memory; lower the sizes asked for (buffer, network, runs, states)", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {os.fsdecode(exc.filename)}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; the last good checkpoint is kept", file=sys.stderr)
        sys.exit(EXIT_DISK)
    sys.exit(code or 0)


def set_threads(n: int | None) -> int:
    """torch intra-op threads: n (at most the CPUs we may use), or 1 by default — small networks are
    fastest on one thread."""
    import torch

    n = check_threads("threads", 1 if n is None else n)
    torch.set_num_threads(n)
    return n


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
