"""Where a sweep's trials run: a Ray cluster joined by address, or a local one on 127.0.0.1 only.

    ray = connect(None, num_cpus=4)        # a local cluster, gone with this process (even by SIGKILL)
    ...                                    # ray.remote(...), ray.get(...)
    disconnect(ray)                        # leave it; a local one is stopped and waited for

A local cluster listens on loopback only, with an authentication token of its own, and all of its
processes end with the driver (a keeper process, see the comment above LocalCluster). Nothing here
imports Ray before it is asked to connect; the keeper and the head are this module run as a program
(`python -m qapprox.dqn.ray_cluster keeper|head CPUS DASHBOARD`).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

RAY_MISSING = "the sweep needs Ray: pip install 'qapprox[distributed]'"
MAX_RETRIES = 100  # retries of one trial whose worker died


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """The cluster a sweep runs on, and what one trial takes of it."""

    address: str | None = None  # 'auto' or HOST:PORT to join; None: start a local cluster
    num_cpus: int | None = None  # the local cluster's CPUs (default: all this process may use)
    dashboard: bool = False  # the local cluster's Ray dashboard, on 127.0.0.1
    cpus_per_trial: float = 1.0
    gpus_per_trial: str = "auto"  # a fraction, or auto: the trial's CPU share of the cluster's GPUs
    max_retries: int = 3  # retries of a trial whose worker died

    def check(self, bench: bool = False) -> None:
        """One-line ValueError for a bad option, before anything starts.
        `bench`: the sweep will also time its trials sequentially against a local cluster."""
        from qapprox.approximators.limits import check_threads, cpu_count
        from qapprox.envs.validation import check_float, check_int

        if self.address is not None:
            for given, flag in ((self.num_cpus is not None, "--num-cpus"), (self.dashboard, "--dashboard"),
                                (bench, "--bench")):
                if given:
                    raise ValueError(f"{flag} is for the local cluster; a cluster joined with --address has its own")
        elif self.num_cpus is not None:
            check_threads("num_cpus", self.num_cpus)
        check_float("cpus_per_trial", self.cpus_per_trial, 0.0, low_open=True)
        local_cpus = self.num_cpus or cpu_count()
        if self.address is None and self.cpus_per_trial > local_cpus:
            raise ValueError(f"cpus_per_trial={self.cpus_per_trial:g} is more than the local cluster's {local_cpus} CPUs")
        check_int("max_retries", self.max_retries, 0, MAX_RETRIES)
        parse_gpus(self.gpus_per_trial)  # its one-line error now; run() parses it for use


def parse_gpus(text: str) -> float | None:
    """--gpus-per-trial: a fraction ≥ 0, or None for 'auto'."""
    if text == "auto":
        return None
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not (math.isfinite(share) and share >= 0):
        raise ValueError(f"gpus_per_trial={text!r} must be a number ≥ 0 or auto")
    return share


def gpu_share(cluster: dict[str, float], cpus_per_trial: float, gpus_per_trial: float | None) -> float:
    """GPUs per trial; auto (None): the trial's share of the cluster's CPUs, of its GPUs (0 without GPUs).
    A trial that no cluster node could ever hold is a one-line error, not a hang."""
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if cpus_per_trial > cpus:
        raise ValueError(f"cpus_per_trial={cpus_per_trial:g} is more than the Ray cluster's {cpus:g} CPUs")
    share = gpus * cpus_per_trial / cpus if gpus_per_trial is None else gpus_per_trial
    if share > gpus:
        raise ValueError(f"gpus_per_trial={share:g} is more than the Ray cluster's {gpus:g} GPUs")
    return share


def check_ray_installed() -> None:
    """A one-line error saying how to install Ray if it is missing — without importing it, so that
    nothing of Ray starts before the sweep's input is checked."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ValueError(RAY_MISSING)


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(RAY_MISSING) from None
    return ray


def connect(address: str | None, num_cpus: int | None, dashboard: bool = False):
    """Join the cluster at `address` ('auto' or HOST:PORT), or start a local one (see LocalCluster):
    loopback only, no dashboard unless `dashboard`, and gone with this process. disconnect() ends it."""
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address:
        ray = import_ray()
        ray.init(address=address, include_dashboard=False, **quiet)
        return ray
    imported = "ray" in sys.modules
    os.environ.update(local_ray_environment())  # before `import ray`: Ray reads it when imported
    ray = import_ray()
    if imported:  # the same settings, applied late where Ray has read them already
        from ray._private import ray_constants
        from ray._raylet import AuthenticationTokenLoader, Config

        ray_constants.ENABLE_RAY_CLUSTER = False
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    if dashboard and ray._private.utils.get_dashboard_dependency_error() is not None:
        raise ValueError("--dashboard needs Ray's dashboard packages: pip install 'ray[default]'")
    from qapprox.approximators.limits import cpu_count  # here: the keeper and head import this module too

    cluster = LocalCluster(num_cpus or cpu_count(), dashboard, os.environ.copy())
    try:
        ray.init(address=cluster.address, _node_ip_address=LOOPBACK, **quiet)
    except BaseException:
        cluster.stop()
        raise
    _LOCAL_CLUSTERS.append(cluster)
    if cluster.dashboard_url:
        print(f"ray dashboard: http://{cluster.dashboard_url}", flush=True)
    return ray


def disconnect(ray) -> None:
    """Leave the cluster; a local one started by connect() is stopped, and waited for."""
    ray.shutdown()
    while _LOCAL_CLUSTERS:
        _LOCAL_CLUSTERS.pop().stop()


# --------------------------------------------------------------------------------------------
# The local cluster: on 127.0.0.1 only, and ended with the driver, even by SIGKILL
# --------------------------------------------------------------------------------------------
#
# Process tree (the driver is `qapprox sweep`, or any process that called connect()):
#
#   driver ── keeper (own session, child subreaper) ── head (ray.init: gcs, raylet, …) ── agents, workers, trials
#
# Ray fate-shares gcs_server, raylet, the log monitor, dashboard and autoscaler monitor with the
# process that ran ray.init (prctl PR_SET_PDEATHSIG), but not the raylet's dashboard and runtime-env
# agents: after a SIGKILL they notice their raylet is gone and then block ~60 s publishing that to the
# dead GCS, still listening. Ray's workers put themselves in their own process groups, so killing a
# process group would miss them too. Hence the keeper: a small process whose stdin is a pipe the
# driver alone holds open. When the driver exits, however it exits, the pipe reads EOF; the head
# (reading the same pipe) shuts Ray down, and the keeper then SIGKILLs whatever is left below it.
# As the child subreaper (PR_SET_CHILD_SUBREAPER), the keeper inherits every orphan below it — a Ray
# process whose parent died is re-parented to the keeper, not to init — so "no child left" is "no Ray
# process of this cluster left", and it reaps them until there is none.
#
# Loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's own switch for a single-machine cluster
# (its default on macOS and Windows): Ray then takes 127.0.0.1 as the node's address — ray.init would
# otherwise turn _node_ip_address="127.0.0.1" into the address of the default route — and its gRPC
# servers (GCS, raylet, object manager, every core worker) listen on 127.0.0.1 when the node address is
# 127.0.0.1; the runtime-env agent listens on the node address. Set before `import ray` in every process
# of the cluster (they inherit it). Usage statistics, which Ray would send to its servers, are off.
#
# Loopback is open to every user of the machine, so the cluster also takes Ray's token authentication,
# with a new token per cluster handed down in the environment (readable by this user only). Ray ≥ 2.5x
# would otherwise enable it with a token it keeps in ~/.ray/auth_token, a file other users may read,
# and the driver, joining by address, would not find it.

LOOPBACK = "127.0.0.1"
LOCAL_RAY_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                         "RAY_AUTH_MODE": "token"}
LOCAL_START_SECONDS = 180.0  # for the head to answer with its address (ray.init on a loaded 2-core machine)
HEAD_STOP_SECONDS = 10.0  # for the head's ray.shutdown() after the driver is gone, before SIGKILL
_LOCAL_CLUSTERS: list[LocalCluster] = []
PR_SET_CHILD_SUBREAPER = 36


def local_ray_environment() -> dict[str, str]:
    """LOCAL_RAY_ENVIRONMENT and a new authentication token (RAY_AUTH_TOKEN) for one local cluster."""
    import secrets

    return LOCAL_RAY_ENVIRONMENT | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}


class LocalCluster:
    """A one-machine Ray cluster for this process: started by a keeper process, stopped when this
    process closes its end of the keeper's stdin (stop(), or exiting in any way, SIGKILL included).

    `environment` is the cluster's (default: ours with local_ray_environment()); a driver joins it at
    `address` with the same RAY_AUTH_TOKEN and LOCAL_RAY_ENVIRONMENT in its own environment."""

    def __init__(self, num_cpus: int, dashboard: bool = False, environment: dict[str, str] | None = None,
                 timeout: float = LOCAL_START_SECONDS) -> None:
        import selectors

        self.environment = environment or os.environ | local_ray_environment()

        reader, self._lifeline = os.pipe()  # non-inheritable: no other child of ours holds it open
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qapprox.dqn.ray_cluster", "keeper", str(int(num_cpus)), str(int(dashboard))],
                stdin=reader, stdout=subprocess.PIPE, env=self.environment,
                start_new_session=True)  # the terminal's Ctrl-C reaches the driver, which then stops us
        finally:
            os.close(reader)
        atexit.register(self.stop)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            answered = bool(selector.select(timeout))
        try:
            head = json.loads(self.process.stdout.readline() if answered else b"null")
            self.address, self.dashboard_url = str(head["address"]), head.get("dashboard_url")
        except (ValueError, KeyError, TypeError):
            self.stop()
            why = "failed (Ray's message is above)" if answered else f"did not start within {timeout:g} s"
            raise RuntimeError(f"the local Ray cluster {why}") from None

    def stop(self, timeout: float = 3 * HEAD_STOP_SECONDS) -> None:
        """Close the keeper's stdin and wait for it to have ended every process of the cluster."""
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - the keeper is stuck: its orphans stay
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def _head(num_cpus: int, dashboard: bool) -> None:
    """The head process: ray.init a new local cluster, write its address on stdout, then wait for EOF
    on stdin (the driver is gone) and shut it down. Ray's processes inherit neither pipe."""
    lifeline, answer = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # what Ray prints goes where the driver's errors go
    import ray  # LOCAL_RAY_ENVIRONMENT and the token are in our environment already

    context = ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK,
                       include_dashboard=dashboard, dashboard_host=LOOPBACK, logging_level="ERROR",
                       log_to_driver=False)
    answer.write(json.dumps({"address": ray.get_runtime_context().gcs_address,
                             "dashboard_url": context.dashboard_url or None}) + "\n")
    answer.close()
    lifeline.read()
    ray.shutdown()


def _descendants(root: int) -> list[int]:
    """Live (not zombie) processes below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    state, ppid = stat.read().rsplit(b")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != b"Z":
                children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _keeper(num_cpus: int, dashboard: bool) -> None:
    """The keeper process (see the comment above LocalCluster): start the head, wait for EOF on stdin,
    give the head HEAD_STOP_SECONDS to shut Ray down, then SIGKILL and reap everything below us."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:  # pragma: no cover - Linux < 3.4
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a SIGTERM still cleans up (finally below)
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(1))
    head = subprocess.Popen([sys.executable, "-m", "qapprox.dqn.ray_cluster", "head", str(num_cpus), str(int(dashboard))],
                            preexec_fn=die_with_parent)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the head holds the answer pipe alone: EOF if it dies
    try:
        sys.stdin.buffer.read()
        head.wait(HEAD_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    finally:
        deadline = time.monotonic() + HEAD_STOP_SECONDS
        while True:
            _reap()
            left = _descendants(os.getpid())
            if not left or time.monotonic() > deadline:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)


def die_with_parent() -> None:
    """In a child process (preexec_fn): SIGKILL when the process that started it dies (Linux), so that no
    orphan keeps running — a trial writing into its directory while the retry runs, a head without keeper."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


if __name__ == "__main__":  # the local cluster's keeper and head processes (LocalCluster)
    role, cpus, with_dashboard = sys.argv[1:]
    {"keeper": _keeper, "head": _head}[role](int(cpus), with_dashboard == "1")
