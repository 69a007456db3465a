"""What every command-line front shares: one-line errors, run directories, thread choice."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from approximators.limits import check_finite, check_threads

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
        return check_finite("value", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number") from None


def check_output_path(name: str, path: str | Path) -> Path:
    """A file we will write at the end of the work, checked before it starts: its folder must exist
    and take a new file, and the path must not be a folder. One-line ValueError otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path} is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{name} {path}: folder {folder} does not exist")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise ValueError(f"{name} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    return path
