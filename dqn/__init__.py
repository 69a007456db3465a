"""Deep Q-networks built on approximators/ and envs/.

    from qapprox.dqn import DQN, DQNConfig
    agent = DQN(DQNConfig(env_id="CartPole-v1")).learn()
"""

from qapprox.dqn.agent import DQN, DivergenceError
from qapprox.dqn.checkpoint import CheckpointError
from qapprox.dqn.config import PRESETS, DQNConfig, from_toml, preset

__all__ = ["DQN", "DQNConfig", "DivergenceError", "CheckpointError", "PRESETS", "preset", "from_toml"]
