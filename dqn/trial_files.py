"""What a sweep trial's directory holds, read and written without Ray: its name and its JSON records.

The sweep's driver (dqn.trial, on Ray) writes them; the analysis of a sweep (dqn.analysis) reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_name(config: dict[str, str]) -> str:
    """{'learning_rate': '0.001', 'double_q': 'true'} → 'learning_rate=0.001,double_q=true'."""
    return ",".join(f"{key}={value}" for key, value in config.items()) or "default"


def read_json(path: Path, default=None):
    """The JSON record at path, or default if there is none yet."""
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, data) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)
