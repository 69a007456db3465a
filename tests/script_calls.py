"""A command's main(argv) called in-process as the `qapprox` command runs it, for the script tests."""

from __future__ import annotations

import pytest

from qapprox.scripts._cli import run


def exit_status(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) through run() (one-line errors, exit codes): (exit status, stdout, stderr) of this call only."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run(lambda: main(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err
