"""TensorBoard logging for DQN runs under runs/<env>__<name>__<seed>__<unix time>/.

Tags (step = environment steps, global_step):
    charts/episodic_return, charts/episodic_length   per finished episode
    charts/epsilon, charts/SPS                        every log_interval steps
    losses/td_loss, losses/q_values, losses/grad_norm means over the updates since the last log
    losses/q_max_abs                  the largest |q̂(S_i, a, w)| of those updates' minibatches
    charts/diverged                   1 at the step where the divergence guard stopped the run
    eval/mean_return, eval/std_return                 greedy evaluation every eval_interval steps
    overestimation/q_taken          mean over a finished episode of q̂(S_t, A_t, w) at collection time
    overestimation/observed_return  mean of the discounted return G_t actually observed from S_t
    overestimation/gap              their difference, q_taken − observed_return (> 0: overestimation)
The full config goes in as text (config) and in the HParams dashboard with the final metrics.
"""

from __future__ import annotations

import json
import threading
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np

from qapprox.envs.validation import check_name, shown

TAGS = (  # what every run logs (charts/diverged only a run that diverged)
    "charts/episodic_return", "charts/episodic_length", "charts/epsilon", "charts/SPS",
    "losses/td_loss", "losses/q_values", "losses/grad_norm", "losses/q_max_abs", "eval/mean_return",
    "eval/std_return", "overestimation/q_taken", "overestimation/observed_return", "overestimation/gap",
)


SEPARATOR = "__"  # between the parts of a run directory's name
RUN_DIR_GLOB = "*__*__*__*"  # a folder that may be a run directory (parse_run_dir decides)
CHECKPOINTS = "checkpoints"  # a run directory's folder of checkpoints: latest.ckpt and best.ckpt


def checkpoint_path(run_dir: str | Path, which: str = "latest") -> Path:
    """run_dir/checkpoints/<which>.ckpt: "latest" (periodic and final) or "best" (best greedy evaluation)."""
    return Path(run_dir) / CHECKPOINTS / f"{which}.ckpt"


class RunDirName(typing.NamedTuple):
    """The parts of a run directory's name <env>__<name>__<seed>__<unix time>."""

    env: str  # the env id, '/' and '\\' made '-'
    name: str  # run_name
    seed: int
    time: int

    @property
    def group(self) -> str:
        """<env>__<name>: the runs of one configuration, whatever their seed and start time."""
        return f"{self.env}{SEPARATOR}{self.name}"


def check_run_name(field: str, name: str) -> str:
    """A run name that make_run_dir can write and parse_run_dir read back: one plain path component
    (check_name), without '__' (the separator of the name's parts) and not starting with '_'."""
    check_name(field, name)
    if SEPARATOR in name or name.startswith("_"):
        raise ValueError(f"{field}={shown(name)} must not contain '__' or start with '_': run directories are "
                         "named <env>__<name>__<seed>__<time>")
    return name


def make_run_dir(root: str | Path, env_id: str, name: str, seed: int, started: int | None = None) -> Path:
    """root/<env>__<name>__<seed>__<unix time> (`started`, default now), '/' in env ids made safe; always a
    child of root.

    A name that is not one plain path component (a separator, '..', a NUL) or holds '__' is a one-line
    ValueError (check_run_name)."""
    check_run_name("run_name", name)
    if not str(root):
        raise ValueError("logdir='' names no folder; give one (e.g. runs)")
    env = env_id.replace("/", "-").replace(chr(92), "-")
    return Path(root) / SEPARATOR.join((env, name, str(seed), str(int(time.time()) if started is None else started)))


def parse_run_dir(path: str | Path) -> RunDirName | None:
    """make_run_dir's name read back: RunDirName(env, name, seed, time), or None for any other folder name.

    The seed and time are the last two parts (digits); the name is the part before them, up to the last
    '__' (a name holds no '__' and does not start with '_'); the env id is what remains."""
    parts = Path(path).name.rsplit(SEPARATOR, 3)
    if len(parts) != 4 or not all(parts) or not all(p.isascii() and p.isdigit() for p in parts[2:]):
        return None
    env, name, seed, started = parts
    return RunDirName(env, name, int(seed), int(started))


def run_dirs(folder: str | Path) -> list[Path]:
    """The run directories (make_run_dir's, by parse_run_dir) directly inside folder, sorted by name."""
    return sorted(p for p in Path(folder).glob(RUN_DIR_GLOB) if p.is_dir() and parse_run_dir(p) is not None)


def _quiet_writer_errors(args: threading.ExceptHookArgs) -> None:
    """TensorBoard's writer thread re-raises a failed write (a full or read-only disk) in the main thread at the
    next write or flush; printing its traceback from the thread as well would bury the one-line error."""
    if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
        return
    _PREVIOUS_EXCEPTHOOK(args)


_PREVIOUS_EXCEPTHOOK = threading.excepthook


class RunLogger:
    """A SummaryWriter for one run; `purge_step` (on resume) drops events at or after that step."""

    def __init__(self, directory: str | Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        threading.excepthook = _quiet_writer_errors
        self.directory = Path(directory)
        self.writer = SummaryWriter(log_dir=str(self.directory), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def episode(self, episodic_return: float, length: int, q_taken: np.ndarray, observed: np.ndarray, step: int) -> None:
        """One finished episode: its return and length, and q̂(S_t, A_t) beside the observed G_t."""
        q_mean, observed_mean = float(np.mean(q_taken)), float(np.mean(observed))
        self.scalars({
            "charts/episodic_return": episodic_return,
            "charts/episodic_length": length,
            "overestimation/q_taken": q_mean,
            "overestimation/observed_return": observed_mean,
            "overestimation/gap": q_mean - observed_mean,
        }, step)

    def config(self, config: dict[str, Any]) -> None:
        """The full config as a Markdown table under the `config` text tag."""
        rows = "\n".join(f"| {key} | {value} |" for key, value in config.items())
        self.writer.add_text("config", "| field | value |\n|---|---|\n" + rows, 0)
        self.writer.add_text("config_json", json.dumps(config), 0)

    def hparams(self, config: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """HParams dashboard entry in this run's own event file (not a sub-run as add_hparams makes)."""
        from torch.utils.tensorboard.summary import hparams

        values = {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in config.items()}
        experiment, session_start, session_end = hparams(values, metrics)
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        self.scalars(metrics, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
