"""Sweep trial directories written by hand, as dqn.trial and dqn.agent leave them, for the report tests."""

from __future__ import annotations

import json
import time

from qapprox.dqn import analysis
from qapprox.dqn.trial_files import config_name


def write_run(trial_dir, attempts, monkeypatch, config, seed, finished=True, scalars=None, outcome=None,
              env="CartPole-v1"):
    """A trial directory as the sweep leaves it: one run directory, one event file per attempt.

    attempts: [(start wall time, resumed from step or None, [(step, greedy return, wall time), ...])];
    scalars: {tag: [(step, value), ...]} more, in the last attempt's file; outcome: done.json's."""
    from torch.utils.tensorboard import SummaryWriter

    for start, resumed, points in attempts:
        with monkeypatch.context() as patch:  # pin the file's first event (its start) to `start`
            patch.setattr(time, "time", lambda: start)
            # as dqn.agent resumes: same directory, events after the checkpoint's step purged
            writer = SummaryWriter(trial_dir / f"{env}__dqn__{seed}__1000",
                                   purge_step=None if resumed is None else resumed + 1)
        for step, value, wall in points:
            writer.add_scalar(analysis.RETURN_TAG, value, step, walltime=wall)
            writer.add_scalar(analysis.TRAINING_RETURN_TAG, value / 2, step, walltime=wall)
        if (start, resumed, points) == attempts[-1]:
            for tag, tag_points in (scalars or {}).items():
                for step, value in tag_points:
                    writer.add_scalar(tag, value, step, walltime=start)
        writer.close()
    name = f"{config_name(config)}__seed{seed}"
    (trial_dir / "trial.json").write_text(json.dumps({"name": name, "env": env, "seed": seed,
                                                 "config": config}))
    if finished:
        (trial_dir / "done.json").write_text(json.dumps({"outcome": outcome} if outcome else {}))
