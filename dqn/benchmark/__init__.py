"""The benchmark of qapprox's DQN against Stable-Baselines3, CleanRL and its own floor, and of the
vectorised linear TD(λ) sweep against a plain loop: what `qapprox benchmark`, `qapprox benchmark-memory`
and `qapprox benchmark-linear` run.

    suites.py   the suites, their sides and the driver: every training run in a process of its own
    worker.py   one measurement in that process (`python -m qapprox.dqn.benchmark.worker`): a qapprox
                or SB3 training run, timed, and its greedy evaluation
    floor.py    the bare costs the training loop cannot avoid (env step, batch-1 action, one update)
    cleanrl.py  CleanRL's dqn.py, fetched from PyPI and run as published
    report.py   summaries, the Markdown table and learning-curve PNGs of the results
    memory.py   resident memory of the agent and its replay buffer, one process per case
    linear.py   the Figure-12.3 TD(λ) sweep, vectorised against a per-run loop; least squares at 10⁶

Solved is `qapprox.dqn.evaluation.first_solved` over the last SOLVE_WINDOW training returns (the
benchmark cannot evaluate CleanRL's script during training, so every side is judged on its training
episodes); the greedy evaluation after training is `qapprox.dqn.evaluation.greedy_returns`.
"""
