"""What this machine can give a run — CPUs and memory — checked before anything is allocated.

    check_threads("threads", 4)                       # ValueError if more than the CPUs we may use
    check_memory("the replay buffer", nbytes)         # ValueError naming the estimate and what is free

Every refusal is one line naming the value and what is allowed, raised before the allocation. Checks of a
value alone (integers, finite numbers, seeds) are qapprox.envs.validation's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from qapprox.envs.validation import as_float, check_int


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes that can be allocated without swapping: MemAvailable, capped by a cgroup memory limit."""
    available = _meminfo_available()
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            available = min(available, max(int(limit) - usage, 0))
    return available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # pragma: no cover - no /proc
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2**62


def check_threads(name: str, threads: int) -> int:
    """`threads` if 1 ≤ threads ≤ cpu_count(); else a one-line ValueError."""
    try:
        return check_int(name, threads, 1, cpu_count())
    except ValueError as exc:
        raise ValueError(f"{exc} (the CPUs this process may use)") from None


def check_memory(what: str, nbytes: float) -> None:
    """Refuse (one-line ValueError) an allocation of `nbytes` that this machine cannot hold."""
    nbytes, available = as_float(nbytes), available_memory()
    if not math.isfinite(nbytes) or nbytes > available:
        raise ValueError(f"{what} needs {format_bytes(nbytes)} of memory; {format_bytes(available)} is available")


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; binary units up to PiB."""
    if not math.isfinite(n):
        return f"{n} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
