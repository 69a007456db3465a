"""What every command-line front shares: one-line errors, run directories, thread choice."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: …`, exit 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(main: Callable[[], int | None]) -> None:
    """Call main(); bad input (ValueError, a missing file) becomes `error: …` on stderr and exit 2."""
    try:
        code = main()
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def run_dir(root: str | Path, env: str, name: str, seed: int) -> Path:
    """runs/<env>__<name>__<seed>__<unix time>, with '/' in env ids made safe."""
    safe_env = env.replace("/", "-")
    return Path(root) / f"{safe_env}__{name}__{seed}__{int(time.time())}"


def set_threads(n: int | None) -> int:
    """torch intra-op threads: n, or 1 by default — small networks are fastest on one thread."""
    import torch

    n = 1 if n is None else n
    if n < 1:
        raise ValueError(f"threads={n} must be ≥ 1")
    torch.set_num_threads(n)
    return n
