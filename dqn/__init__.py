"""Deep Q-networks built on approximators/ and envs/.

    from dqn import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1")).learn()
"""

from dqn.agent import DQN, DivergenceError
from dqn.checkpoint import CheckpointError
from dqn.config import PRESETS, DQNConfig, from_toml, preset

__all__ = ["DQN", "DQNConfig", "DivergenceError", "CheckpointError", "PRESETS", "preset", "from_toml"]
