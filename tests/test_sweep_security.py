"""The sweep treats its input and its machine with care: every bad flag is one line and exit 2 before
Ray starts or anything is allocated; the local Ray cluster listens on loopback only and ends with
its driver, also when the driver is SIGKILLed.

Sockets and processes are read from /proc (Linux): /proc/net/{tcp,tcp6,udp,udp6} give the sockets,
/proc/<pid>/fd maps them to processes, /proc/<pid>/stat gives parents and start times."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qapprox.approximators.limits import cpu_count
from qapprox.dqn import ray_cluster, sweep
from qapprox.scripts import sweep as sweep_script
from qapprox.scripts._cli import run

REPO = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")


# ---------------------------------------------------------------- refusals, before Ray


@pytest.fixture
def no_ray(monkeypatch):
    """Any step towards Ray fails the test; Ray itself need not be installed for these."""
    def started(*args, **kwargs):
        raise AssertionError("Ray was started for an input that should have been refused")

    monkeypatch.setattr(ray_cluster, "check_ray_installed", lambda: None)
    for name in ("connect", "import_ray", "LocalCluster"):
        monkeypatch.setattr(ray_cluster, name, started)
    for name in ("benchmark", "run_on_ray", "run"):
        monkeypatch.setattr(sweep, name, started)
    return "ray" in sys.modules


def refuse(argv, monkeypatch, capsys, tmp_path) -> str:
    """Run `sweep argv` as the command line does; return its one stderr line (exit 2, no sweep dir)."""
    ray_imported = "ray" in sys.modules
    sweep_dir = tmp_path / "sweep"
    monkeypatch.setattr(sys, "argv", ["sweep", "--sweep-dir", str(sweep_dir), *argv])
    with pytest.raises(SystemExit) as exit_info:
        run(sweep_script.main)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured
    assert not sweep_dir.exists()
    assert ray_imported or "ray" not in sys.modules  # not even imported
    return captured.err


MANY_RATES = "learning_rate=" + ",".join(f"{i}e-5" for i in range(1, 102))  # 101 values


@pytest.mark.parametrize("argv, named", [
    (["--num-cpus", "0"], f"num_cpus=0 must be an integer in [1, {cpu_count()}]"),
    (["--num-cpus", str(cpu_count() + 1)], f"num_cpus={cpu_count() + 1} must be an integer in [1, {cpu_count()}]"),
    (["--num-cpus", "1", "--cpus-per-trial", "2"], "cpus_per_trial=2 is more than the local cluster's 1 CPUs"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial: 'nan' is not a finite number"),
    (["--cpus-per-trial", "inf"], "--cpus-per-trial: 'inf' is not a finite number"),
    (["--cpus-per-trial", "0"], "cpus_per_trial=0.0 must be > 0"),
    (["--gpus-per-trial", "inf"], "gpus_per_trial='inf' must be a number ≥ 0 or auto"),
    (["--max-retries", "-1"], "max_retries=-1 must be an integer in [0, 100]"),
    (["--max-retries", "1000000"], "max_retries=1000000 must be an integer in [0, 100]"),
    (["--solve-threshold", "nan"], "--solve-threshold: 'nan' is not a finite number"),
    (["--total-timesteps", "1e30"], "--total-timesteps: invalid int value: '1e30'"),
    (["--total-timesteps", str(10**30)], f"total_timesteps={10**30} must be an integer in [0, 2**53]"),
    (["--env", "NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
    (["--seeds", "0-100000000"], "seeds='0-100000000' lists 100,000,001 seeds; at most 100,000 are allowed"),
    (["--seeds", "4294967296"], "seed=4294967296 must be an integer in [0, 4,294,967,295]"),
    (["--seeds", "0-999", "--grid", MANY_RATES],
     "101 configurations × 1,000 seed(s) = 101,000 trials; at most 100,000 trials are allowed"),
    (["--random", "1000000000", "--search", "learning_rate=loguniform:1e-4:1e-2"],
     "the sweep has 1,000,000,000 configurations; at most 100,000 trials are allowed"),
    (["--random", "2", "--search", "batch_size=int:1:inf"], "'batch_size=int:1:inf': LOW and HIGH must be finite"),
    (["--random", "2", "--search", "learning_rate=uniform:nan:1"], "LOW and HIGH must be finite numbers"),
    (["--search-seed", "-1", "--random", "1", "--search", "gamma=uniform:0.9:0.99"], "search_seed=-1 must be an integer in [0, 4,294,967,295]"),
    (["--grid", "run_name=../../x"], "run_name='../../x' must be a plain name"),
    (["--grid", "activation=relu,a/b"], "activation='a/b' must be a plain name"),
    (["--grid", "activation=.."], "activation='..' must be a plain name"),
    (["--grid", "learning_rate=1e-3,0.001"], "learning_rate=0.001 is given twice"),
    (["--grid", "hidden=" + "1000000 " * 40], "is longer than 255 bytes"),
    (["--address", "auto", "--num-cpus", "2"], "--num-cpus is for the local cluster"),
    (["--address", "auto", "--dashboard"], "--dashboard is for the local cluster"),
])
def test_bad_input_is_one_line_and_exit_2_before_ray(argv, named, no_ray, monkeypatch, capsys, tmp_path):
    assert named in refuse(argv, monkeypatch, capsys, tmp_path)


def test_bench_out_is_checked_before_any_work(no_ray, monkeypatch, capsys, tmp_path):
    error = refuse(["--bench", "--bench-out", str(tmp_path / "no-folder" / "sweep.json")], monkeypatch, capsys, tmp_path)
    assert f"--bench-out {tmp_path / 'no-folder' / 'sweep.json'}: folder {tmp_path / 'no-folder'} does not exist" in error


def test_a_sweep_dir_that_is_a_file_is_refused(no_ray, monkeypatch, capsys, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(sys, "argv", ["sweep", "--sweep-dir", str(tmp_path / "file")])
    with pytest.raises(SystemExit) as exit_info:
        run(sweep_script.main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --sweep-dir {tmp_path / 'file'} exists and is not a directory\n"


def test_seed_ranges_are_counted_not_listed():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="lists 10,000,000,000,001 seeds"):
        sweep.parse_seeds("0-10000000000000", sweep.MAX_TRIALS)
    with pytest.raises(ValueError, match="lists 100,002 seeds"):  # duplicates count: 2 × 50,001
        sweep.parse_seeds("0-50000,0-50000", limit=100_000)
    assert time.perf_counter() - start < 0.5
    assert sweep.parse_seeds("3,0-2,1", sweep.MAX_TRIALS) == [3, 0, 1, 2]
    assert len(sweep.parse_seeds("0-99999", sweep.MAX_TRIALS)) == 100_000


def test_trial_directories_stay_inside_the_sweep_dir(tmp_path):
    # what canonical() refuses, handed to make_trials directly: still no directory outside sweep_dir
    for value in ("../../x", "a/b", "a\\b", "x\0y"):
        with pytest.raises(ValueError, match="must be a plain name|is not a new folder"):
            sweep.make_trials(tmp_path, "CartPole-v1", [0], [{"run_name": value}], {}, None, "cpu")
    with pytest.raises(ValueError, match="is not a new folder"):  # two trials, one directory
        sweep.make_trials(tmp_path, "CartPole-v1", [0], [{"loss": "mse"}, {"loss": "mse"}], {}, None, "cpu")
    for value in ("..", "..x"):  # part of one plain name: run_name=..__seed0 is a folder like any other
        [trial] = sweep.make_trials(tmp_path, "CartPole-v1", [0], [{"run_name": value}], {}, None, "cpu")
        assert trial.directory.parent == tmp_path.resolve()


def test_random_draws_that_round_alike_are_one_configuration():
    fields = sweep.config_fields()
    search = sweep.parse_search(["batch_size=int:32:33"], fields)
    configs = sweep.configurations({}, search, 20, seed=0)
    assert sorted(c["batch_size"] for c in configs) == ["32", "33"]


# ---------------------------------------------------------------- the local Ray cluster

DRIVER = """
import json, os, sys
from qapprox.dqn import ray_cluster
ray = ray_cluster.connect(None, 1)
worker = ray.get(ray.remote(lambda: os.getpid()).remote())
print(json.dumps({"worker": worker, "session": ray._private.worker._global_node.get_session_dir_path(),
                  "gcs": ray.get_runtime_context().gcs_address}), flush=True)
if sys.stdin.readline() == "disconnect\\n":
    ray_cluster.disconnect(ray)
    print("disconnected", flush=True)
"""


def start_driver():
    """`connect(None, 1)` in a subprocess that has run one task; (process, what it printed)."""
    pytest.importorskip("ray")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    line = driver.stdout.readline()
    if not line:
        driver.kill()
        pytest.fail(f"the driver exited with {driver.wait()} before the cluster answered")
    return driver, json.loads(line)


def stat(pid: int) -> tuple[int, str, int] | None:
    """(parent, state, start time) of a process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0].decode(), int(fields[19])


def tree(root: int) -> dict[int, int]:
    """pid → start time of `root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := stat(int(entry.name))) and info[1] != "Z":
            children.setdefault(info[0], []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if (info := stat(pid)) is not None:
            found[pid] = info[2]
            todo += children.get(pid, [])
    return found


def alive(processes: dict[int, int]) -> list[int]:
    """The processes (pid → start time) still running: same pid, same start time, not a zombie."""
    return [pid for pid, start in processes.items() if (info := stat(pid)) and info[2] == start and info[1] != "Z"]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def address(hex_address: str) -> tuple[str, int]:
    """'0100007F:1F90' → ('127.0.0.1', 8080); IPv6 in /proc's four host-order words."""
    ip, port = hex_address.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))), int(port, 16)


def sockets() -> dict[int, tuple[str, str, tuple[str, int], tuple[str, int]]]:
    """inode → (protocol, state, local address, remote address) of every inet socket on the machine."""
    table = {}
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]
        for fields in (line.split() for line in lines):
            table[int(fields[9])] = (protocol, fields[3], address(fields[1]), address(fields[2]))
    return table


def socket_inodes(pid: int) -> set[int]:
    found = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    except OSError:
        pass
    return found


def is_loopback(ip: str) -> bool:
    parsed = ipaddress.ip_address(ip)
    return parsed.is_loopback or bool(getattr(parsed, "ipv4_mapped", None) and parsed.ipv4_mapped.is_loopback)


TCP_LISTEN = "0A"


@pytest.fixture(scope="module")
def driver():
    driver, info = start_driver()
    yield driver, info
    driver.kill()
    driver.wait()


@linux_only
def test_every_socket_of_the_local_cluster_is_on_loopback(driver):
    process, info = driver
    listening: dict[tuple, str] = {}
    for _ in range(3):  # the agents bind a little after ray.init returns: look three times
        table, processes = sockets(), tree(process.pid)
        for pid in processes:
            for inode in socket_inodes(pid):
                if inode not in table:
                    continue
                protocol, state, local, remote = table[inode]
                where = f"{protocol} {local[0]}:{local[1]} of {pid} ({cmdline(pid)})"
                assert is_loopback(local[0]), f"bound beyond loopback: {where}"
                if state == TCP_LISTEN if protocol.startswith("tcp") else remote[1] == 0:
                    listening[(protocol, *local)] = cmdline(pid)  # listening TCP, unconnected UDP
                else:  # a connection: its other end is on this machine too
                    assert is_loopback(remote[0]), f"connected beyond loopback: {where} → {remote}"
        time.sleep(1)
    gcs_port = int(info["gcs"].rsplit(":", 1)[1])
    assert any(port == gcs_port for _, _, port in listening), listening  # the scan sees the GCS
    assert len(processes) >= 6 and len(listening) >= 5, (processes, listening)  # gcs, raylet ×2, driver, worker…


def assert_all_end(processes: dict[int, int], session: str, within: float = 15.0) -> None:
    """Every process of `processes` ends within `within` s, and so does any other with the session in its command."""
    start, survivors = time.monotonic(), []
    while time.monotonic() - start < within:
        survivors = alive(processes) + [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                                        if session in cmdline(p) and (info := stat(p)) and info[1] != "Z"]
        if not survivors:
            return
        time.sleep(0.2)
    pytest.fail(f"alive {within:g} s after the driver's SIGKILL: " + "; ".join(f"{p} {cmdline(p)}" for p in survivors))


@linux_only
def test_sigkill_of_the_driver_ends_every_ray_process(driver):
    process, info = driver
    processes = tree(process.pid)
    assert info["worker"] in processes and len(processes) >= 6
    process.kill()
    process.wait()
    assert_all_end(processes, Path(info["session"]).name)


@linux_only
def test_even_with_the_head_killed_too_the_keeper_ends_the_rest():
    # Ray's own shutdown (in the head) has no chance here: the raylet's agents, which outlive a dead
    # raylet by about a minute, are the keeper's to end.
    process, info = start_driver()
    processes = tree(process.pid)
    [head] = [pid for pid in processes if "qapprox.dqn.ray_cluster head" in cmdline(pid)]
    os.kill(head, signal.SIGKILL)
    process.kill()
    process.wait()
    assert_all_end(processes, Path(info["session"]).name)


@linux_only
def test_disconnect_stops_the_local_cluster_and_waits_for_it():
    process, info = start_driver()
    try:
        processes = tree(process.pid)
        out, _ = process.communicate("disconnect\n", timeout=60)
        assert out == "disconnected\n" and process.returncode == 0
        assert alive(processes) == [], [cmdline(p) for p in alive(processes)]  # gone before the driver returned
    finally:
        process.kill()
        process.wait()
