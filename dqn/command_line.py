"""What a command line run from the library shares with the scripts: one-line errors and exit codes.

    if __name__ == "__main__":
        run(main)          # main() returns 0 done, EXIT_DIVERGED (4) diverged, 130 stopped by Ctrl-C

Exit status: bad input (a ValueError, a missing file, an allocation too large) is `error: …` on stderr and 2;
a full or read-only disk is one line and EXIT_DISK (3). qapprox.scripts._cli re-exports these for the scripts.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable

from qapprox.approximators.limits import check_threads

# Exit status when the disk is full or read-only: the run stops, the last good checkpoint stays.
EXIT_DISK = 3
# Exit status when stdout's reader closed the pipe: 128 + SIGPIPE, what a shell reports for such a tool.
EXIT_PIPE = 141
# Exit status when the divergence guard stopped training (non-finite values): an outcome of the run, told
# apart from a crash (a Python traceback exits 1), so that a sweep reports it as a result.
EXIT_DIVERGED = 4
DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: …`, exit 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(main: Callable[[], int | None]) -> None:
    """Call main(); bad input (ValueError, a missing file) becomes `error: …` on stderr and exit 2;
    a full or read-only disk becomes one line and exit 3 (EXIT_DISK); a reader that went away
    (`qapprox … | head`) ends the command quietly with 141, as a shell's tools do."""
    try:
        code = main()
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit would fail again
        sys.exit(EXIT_PIPE)
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
