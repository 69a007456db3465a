"""Deep Q-networks built on approximators/ and envs/."""
