"""The kinds of Q-network that approximators.networks.q_network builds, kept apart from torch: dqn.config checks
a config's q_network against them without importing torch."""

Q_NETWORK_KINDS = ("mlp", "cnn", "linear")  # an MLP on vectors, the Nature CNN on images, q̂ = wᵀx(s) per action
