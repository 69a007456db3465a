"""TD(λ) with every trace type against hand-worked numbers; the forward/backward equivalences;
convergence on the 19-state walk; SARSA(λ) evaluation and control; one-line errors."""

import numpy as np
import pytest

from qapprox.approximators.features import state_action_features, state_features
from qapprox.approximators.linear import rms_error
from qapprox.approximators.traces import EpisodeBatch, TDLambda, offline_lambda_return, sarsa_lambda, td_lambda
from qapprox.envs import make_mdp, quiz9_mdp
from qapprox.scripts._cli import run
from qapprox.scripts.td_lambda import main as td_lambda_main

A, B, C = 0, 1, 2

# ------------------------------------------------------------------ the hand-worked episode
# S_0 = s_A, S_1 = s_B, S_2 = s_A, then terminal; R_1 = 1, R_2 = 0, R_3 = 1.
# One-hot x(s) over (s_A, s_B, s_C), w_0 = 0, γ = 1, λ = 0.5, α = 0.5 (so γλ = 0.5, αγλ = 0.25).
HAND_EPISODE = (np.array([A, B, A]), np.array([0, 0, 0]), np.array([1.0, 0.0, 1.0]))

# accumulating:  t=0  δ = 1 − 0 = 1,                  z = (1, 0, 0),         w = (0.5, 0, 0)
#                t=1  δ = 0 + w_A − w_B = 0.5,        z = (0.5, 1, 0),       w += 0.25·z = (0.625, 0.25, 0)
#                t=2  δ = 1 + 0 − w_A = 0.375,        z = (1.25, 0.5, 0),    w += 0.1875·z = (0.859375, 0.34375, 0)
# replacing:     t=2  z = (1, 0.5, 0)  (z_A reset to 1): w = (0.625 + 0.1875, 0.25 + 0.09375, 0)
# dutch:         t=1  z = 0.5·(1,0,0) + (1 − 0.25·0)·(0,1,0) = (0.5, 1, 0)
#                t=2  z_1ᵀx_2 = 0.5 → z = 0.5·(0.5,1,0) + (1 − 0.25·0.5)·(1,0,0) = (1.125, 0.5, 0),
#                     w = (0.625, 0.25, 0) + 0.1875·z = (0.8359375, 0.34375, 0)
# true online:   V_old = 0; t=0: V = 0, V' = 0, δ = 1, z = (1,0,0), w = 0.5·1·z = (0.5, 0, 0), V_old = 0
#                t=1: V = 0, V' = 0.5, δ = 0.5, z = (0.5,1,0), w += 0.5·(0.5 + 0 − 0)·z = (0.625, 0.25, 0), V_old = 0.5
#                t=2: V = 0.625, V' = 0, δ = 0.375, z = (1.125, 0.5, 0),
#                     w += 0.5·(0.375 + 0.625 − 0.5)·z − 0.5·(0.625 − 0.5)·x_A = (0.28125 − 0.0625, 0.125, 0)
# TD(0) (λ = 0): δ = 1 → w_A = 0.5; δ = 0.5 → w_B = 0.25; δ = 1 − 0.5 → w_A = 0.75.
# offline TD(λ), accumulating, w = 0 all episode: δ = (1, 0, 1), z as above: Δw = 0.5·[(1,0,0) + (1.25,0.5,0)]
# offline λ-return, w = 0: G^λ_2 = 1, G^λ_1 = 0 + 0.5·1 = 0.5, G^λ_0 = 1 + 0.5·0.5 = 1.25
#     summed:      Δw = 0.5·(1.25 + 1, 0.5, 0) — the same as offline TD(λ)
#     in sequence: w_A = 0.5·1.25 = 0.625; w_B = 0.5·0.5 = 0.25; w_A += 0.5·(1 − 0.625) → 0.8125
HAND_RESULTS = [
    ("accumulating", 0.5, False, [0.859375, 0.34375, 0.0]),
    ("replacing", 0.5, False, [0.8125, 0.34375, 0.0]),
    ("dutch", 0.5, False, [0.8359375, 0.34375, 0.0]),
    ("true-online", 0.5, False, [0.84375, 0.375, 0.0]),
    ("accumulating", 0.0, False, [0.75, 0.25, 0.0]),
    ("accumulating", 0.5, True, [1.125, 0.25, 0.0]),
    ("offline-lambda-return", 0.5, True, [1.125, 0.25, 0.0]),
    ("offline-lambda-return", 0.5, False, [0.8125, 0.25, 0.0]),
]


@pytest.mark.parametrize("trace, lam, offline, expected", HAND_RESULTS)
def test_each_trace_on_the_hand_worked_episode(trace, lam, offline, expected):
    mdp = quiz9_mdp()
    batch = EpisodeBatch.from_episodes(mdp, [HAND_EPISODE], runs=1)
    w = td_lambda(batch, state_features(mdp), trace=trace, alpha=0.5, lam=lam, gamma=1.0, offline=offline)
    assert w.shape == (1, 1, 1, 3)
    assert np.allclose(w[0, 0, 0], expected, atol=1e-15, rtol=0)


# ------------------------------------------------------------------ equivalences
def random_walk_batch(runs=6, episodes=3, seed=1):
    mdp = make_mdp("random-walk-19")
    return mdp, EpisodeBatch.sample(mdp, mdp.uniform_policy(), runs, episodes, np.random.default_rng(seed))


def test_offline_td_lambda_equals_offline_lambda_return_to_machine_precision():
    mdp, batch = random_walk_batch()
    features = np.random.default_rng(2).normal(size=(mdp.n_states, 5))   # dense, not one-hot
    features[mdp.terminal] = 0.0
    alpha, lam = np.array([0.01, 0.02, 0.005]), np.array([0.3, 0.8, 1.0])
    backward = td_lambda(batch, features, trace="accumulating", alpha=alpha, lam=lam, gamma=0.9, offline=True)
    forward = td_lambda(batch, features, trace="offline-lambda-return", alpha=alpha, lam=lam, gamma=0.9, offline=True)
    assert np.max(np.abs(backward - forward)) < 1e-12 * max(1.0, np.max(np.abs(forward)))
    assert np.max(np.abs(forward)) > 0.01                                 # it did learn


def lambda_return_by_definition(rewards, values_next, gamma, lam, t):
    """G^λ_t = (1−λ) Σ_{n=1}^{T−t−1} λ^{n−1} G_{t:t+n} + λ^{T−t−1} G_t, with v̂(S_{t+n}) = values_next[t+n−1]."""
    T = len(rewards)

    def n_step(n):
        G = sum(gamma**k * rewards[t + k] for k in range(n))
        return G + (gamma**n * values_next[t + n - 1] if t + n < T else 0.0)

    return (1 - lam) * sum(lam ** (n - 1) * n_step(n) for n in range(1, T - t)) + lam ** (T - t - 1) * n_step(T - t)


def test_offline_lambda_return_matches_its_definition_by_n_step_returns():
    mdp = quiz9_mdp()
    S, R = np.array([A, B, C, B, A, C]), np.array([0.5, -1.0, 2.0, 0.0, 1.0, 3.0])
    batch = EpisodeBatch.from_episodes(mdp, [(S, np.zeros(6, int), R)], runs=1)
    features = np.array([[1.0, 2.0], [0.5, -1.0], [-2.0, 1.0], [0.0, 0.0]])
    w0 = np.array([0.3, -0.2])                                  # targets from non-zero weights
    F = batch.feature_table(features)
    alpha, lam, gamma = 0.1, 0.7, 0.9
    w = offline_lambda_return(w0[None, None], F, batch.index[:, 0], batch.reward[:, 0],
                              np.array([[alpha]]), np.array([[lam]]), gamma, summed=True)
    values_next = [w0 @ features[s] for s in S[1:]] + [0.0]
    expected = w0 + sum(alpha * (lambda_return_by_definition(R, values_next, gamma, lam, t) - w0 @ features[S[t]])
                        * features[S[t]] for t in range(6))
    assert np.allclose(w[0, 0], expected, atol=1e-14, rtol=0)


def online_lambda_return(S, R, features, w0, alpha, lam, gamma):
    """S&B §12.4: for each horizon h = 1..T redo w^h_{t+1} = w^h_t + α[G^λ_{t:h} − v̂(S_t, w^h_t)] x(S_t)
    from w^h_0 = w0, with the truncated λ-return bootstrapping from v̂(S_{t+n}, w_{t+n−1}), w_k = w^k_k.
    Returns [w_0, w_1, …, w_T] (w_h = w^h_h)."""
    T = len(S)
    x = [features[s] for s in S] + [np.zeros_like(w0)]          # x(S_T) = 0: terminal
    diagonal = [w0]

    def n_step(t, n):                                           # G_{t:t+n}, t + n ≤ h
        G = sum(gamma**k * R[t + k] for k in range(n))
        return G + gamma**n * diagonal[t + n - 1] @ x[t + n]

    for h in range(1, T + 1):
        w = w0.copy()
        for t in range(h):
            G = (1 - lam) * sum(lam ** (n - 1) * n_step(t, n) for n in range(1, h - t)) + lam ** (h - t - 1) * n_step(t, h - t)
            w = w + alpha * (G - w @ x[t]) * x[t]
        diagonal.append(w)
    return diagonal


def test_true_online_td_lambda_equals_the_online_lambda_return_algorithm():
    rng = np.random.default_rng(3)
    S = np.array([0, 2, 1, 1, 3, 0, 2])
    R = rng.normal(size=S.size)
    features = rng.normal(size=(5, 4))                          # state 4 is never visited
    alpha, lam, gamma = 0.05, 0.8, 0.95
    learner = TDLambda(np.zeros(4), trace="true-online", alpha=alpha, lam=lam, gamma=gamma)
    learner.start_episode()
    weights = [learner.w.copy()]
    x = [features[s] for s in S] + [np.zeros(4)]
    for t in range(S.size):
        learner.step(x[t], x[t + 1], R[t])
        weights.append(learner.w.copy())
    reference = online_lambda_return(S, R, features, np.zeros(4), alpha, lam, gamma)
    assert np.max(np.abs(np.array(weights) - np.array(reference))) < 1e-13
    assert np.max(np.abs(weights[-1])) > 0.01


def test_rows_are_independent_runs_and_configs():
    """A batch of runs × configs gives what each run and config gives on its own (masking works)."""
    mdp, batch = random_walk_batch(runs=4, episodes=3)
    X = state_features(mdp)
    alpha, lam = np.array([0.1, 0.3]), np.array([0.9, 0.5])
    together = td_lambda(batch, X, trace="true-online", alpha=alpha, lam=lam)
    for n in range(4):
        single = EpisodeBatch(batch.index[n : n + 1], batch.reward[n : n + 1], batch.length[n : n + 1],
                              batch.n_states, batch.n_actions, False, batch.gamma)
        for k in range(2):
            alone = td_lambda(single, X, trace="true-online", alpha=alpha[k], lam=lam[k])
            assert np.array_equal(together[:, k, n], alone[:, 0, 0])


def test_same_seed_same_numbers():
    mdp = make_mdp("random-walk-19")
    runs = [td_lambda(EpisodeBatch.sample(mdp, mdp.uniform_policy(), 3, 2, np.random.default_rng(7)),
                      state_features(mdp)) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])


# ------------------------------------------------------------------ learning
def test_td_lambda_on_the_19_state_walk_converges_towards_v_pi():
    mdp = make_mdp("random-walk-19")
    X = state_features(mdp)
    v_pi, _ = mdp.evaluate(mdp.uniform_policy())
    assert np.allclose(v_pi[1:20], np.arange(1, 20) / 10 - 1)
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 20, 60, np.random.default_rng(0))
    w = td_lambda(batch, X, trace="accumulating", alpha=0.1, lam=0.8)
    rms = rms_error(w, X, v_pi, mdp.nonterminal).mean(axis=(1, 2))      # mean over runs, per episode
    assert rms[0] > 0.45                                                 # from w = 0: √(mean v_π²) ≈ 0.55
    assert rms[9] < 0.35 and rms[-10:].max() < 0.2                       # constant α: a noise floor per run
    assert rms_error(w[-10:].mean(axis=(0, 1, 2)), X, v_pi, mdp.nonterminal) < 0.07   # centred on v_π


def test_sarsa_lambda_policy_evaluation_approaches_q_pi():
    mdp = quiz9_mdp()
    pi = mdp.uniform_policy()
    _, q_pi = mdp.evaluate(pi)
    batch = EpisodeBatch.sample(mdp, pi, 10, 600, np.random.default_rng(0), action_values=True)
    w = td_lambda(batch, state_action_features(mdp), trace="accumulating", alpha=0.05, lam=0.5)
    estimate = w[-300:].mean(axis=(0, 1, 2)).reshape(3, 2)              # average over late episodes and runs
    assert np.max(np.abs(estimate - q_pi[:3])) < 0.2
    assert np.max(np.abs(w[0].mean(axis=(0, 1)).reshape(3, 2) - q_pi[:3])) > 2   # it started far away


def test_sarsa_lambda_control_finds_the_optimal_policy_on_quiz9():
    mdp = quiz9_mdp()
    _, q_star = mdp.optimal()
    optimal = np.argmax(q_star[:3], axis=1)                             # safe, forward, cash in
    assert optimal.tolist() == [0, 0, 0]
    result = sarsa_lambda(mdp, state_action_features(mdp), episodes=500, runs=20, trace="true-online",
                          alpha=0.1, lam=0.8, epsilon=0.1, rng=np.random.default_rng(0))
    greedy = np.argmax(result.w[-1].reshape(1, 20, 3, 2), axis=-1)     # (configs, runs, states)
    assert (greedy == optimal).all()
    # late returns are those of the ε-greedy policy around π_*, from s_A
    v_eps, _ = mdp.evaluate(0.1 * mdp.uniform_policy() + 0.9 * mdp.greedy_policy(q_star))
    assert abs(result.G[-100:].mean() - v_eps[A]) < 0.3
    assert result.G[:10].mean() < v_eps[A] - 1


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lam=1.5), "lam=1.5 is outside [0, 1]"),
        (dict(lam=-0.1), "lam=-0.1 is outside [0, 1]"),
        (dict(gamma=1.2), "gamma=1.2 is outside [0, 1]"),
        (dict(alpha=0.0), "alpha=0 must be > 0"),
        (dict(alpha=np.array([0.1, -1.0])), "alpha=-1 must be > 0"),
        (dict(trace="eligibility"), "trace='eligibility' is not one of accumulating, replacing, dutch, true-online"),
        (dict(trace="true-online", offline=True), "offline=True needs an accumulating, replacing or dutch trace"),
        (dict(features=np.zeros((21, 3, 2))), "features have shape (21, 3, 2); expected (|S⁺|, d) = (21, d)"),
        (dict(features=np.zeros((20, 19))), "features have shape (20, 19)"),
        (dict(features=np.full((21, 19), 0.5), trace="replacing"), "trace='replacing' needs binary features"),
    ],
)
def test_bad_input_is_a_one_line_value_error(kwargs, message):
    mdp, batch = random_walk_batch(runs=1, episodes=1)
    features = kwargs.pop("features", state_features(mdp))
    with pytest.raises(ValueError) as error:
        td_lambda(batch, features, **kwargs)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_step_with_a_wrong_feature_size_and_sarsa_with_state_features_fail_clearly():
    with pytest.raises(ValueError, match="feature vector has size 4; the weights w have size d=3"):
        TDLambda(np.zeros(3)).step(np.zeros(4), np.zeros(4), 0.0)
    with pytest.raises(ValueError, match=r"expected \(\|S⁺\|, \|A\|, d\)"):
        sarsa_lambda(quiz9_mdp(), state_features(quiz9_mdp()), episodes=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="epsilon=2 is outside"):
        sarsa_lambda(quiz9_mdp(), state_action_features(quiz9_mdp()), episodes=1, epsilon=2.0, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "count, message",
    [
        (dict(episodes=True), "episodes=True must be an integer ≥ 1"),
        (dict(episodes=2.0), "episodes=2.0 must be an integer ≥ 1"),
        (dict(runs=0), "runs=0 must be an integer ≥ 1"),
        (dict(max_steps=False), "max_steps=False must be an integer ≥ 1"),
    ],
)
def test_counts_are_integers_not_bools_or_floats(count, message):
    mdp, rng = quiz9_mdp(), np.random.default_rng(0)
    with pytest.raises(ValueError, match=f"^{message}$"):
        sarsa_lambda(mdp, state_action_features(mdp), **{"episodes": 1, **count}, rng=rng)
    if "max_steps" not in count:
        with pytest.raises(ValueError, match=f"^{message}$"):
            EpisodeBatch.sample(mdp, mdp.uniform_policy(), **{"runs": 1, "episodes": 1, **count}, rng=rng)
    with pytest.raises(ValueError, match="runs=True must be an integer ≥ 1"):
        EpisodeBatch.from_episodes(mdp, mdp.episodes(mdp.uniform_policy(), 1, rng), runs=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lam", "1.5"], "error: lam=1.5 is outside [0, 1]"),
        (["--alpha", "0"], "error: alpha=0 must be > 0"),
        (["--trace", "eligibility"], "error: trace='eligibility' is not one of"),
        (["--env", "random-walk"], "error: unknown env 'random-walk'"),
    ],
)
def test_script_exits_2_with_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(lambda: td_lambda_main(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_script_json_follows_the_figure_12_3_protocol(tmp_path, capsys):
    import json

    td_lambda_main(["--runs", "5", "--episodes", "3", "--json", "--logdir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    # the same numbers from the package: RMS over states, averaged over episodes and runs
    mdp = make_mdp("random-walk-19")
    X = state_features(mdp)
    batch = EpisodeBatch.sample(mdp, mdp.uniform_policy(), 5, 3, np.random.default_rng(0))
    rms = rms_error(td_lambda(batch, X, alpha=0.4, lam=0.8), X, mdp.evaluate(mdp.uniform_policy())[0], mdp.nonterminal)
    assert out["rms_error"] == pytest.approx(rms.mean(), abs=1e-15)
    assert out["rms_error_per_episode"] == pytest.approx(rms.mean(axis=(1, 2)).tolist(), abs=1e-15)
    assert any(tmp_path.iterdir())                                       # a TensorBoard run was written


def test_td_prediction_logs_its_scores_only_when_given_a_log_dir(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from qapprox.approximators.td_prediction import Prediction, sweep_table, td_prediction

    monkeypatch.chdir(tmp_path)
    mdp = make_mdp("random-walk-5")
    result = td_prediction(mdp, runs=3, episodes=4)
    assert list(tmp_path.iterdir()) == []                                # log_dir=None: nothing written
    logged = td_prediction(mdp, runs=3, episodes=4, log_dir=tmp_path / "one")
    np.testing.assert_array_equal(logged.rms, result.rms)                # logging changes nothing learned
    events = EventAccumulator(str(tmp_path / "one"))
    events.Reload()
    scalars = events.Scalars("rms_error")
    assert [s.step for s in scalars] == [1, 2, 3, 4]
    assert [s.value for s in scalars] == pytest.approx(result.per_episode[:, 0].tolist(), rel=1e-6)  # float32

    sweep = td_prediction(mdp, lams=(0.0, 1.0), alphas=(0.1,), runs=2, episodes=2, log_dir=tmp_path / "sweep",
                          png=tmp_path / "sweep.png", title="a sweep")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    events = EventAccumulator(str(tmp_path / "sweep"))
    events.Reload()
    assert events.Tags()["images"] == ["sweep"] and events.Tags()["scalars"] == []
    assert events.Tags()["tensors"] == ["sweep/rms_error/text_summary"]  # sweep_table, as Markdown text
    assert sweep_table(sweep).startswith("| λ \\ α | 0.1 |\n|---|---|\n| 0 | ")
    with pytest.raises(ValueError, match="give log_dir too"):
        td_prediction(mdp, runs=1, episodes=1, png=tmp_path / "alone.png")

    table = sweep_table(Prediction((0.0, 0.5), (0.1, 1.0), np.array([[[0.25], [0.5], [1.0], [np.inf]]]), 0.0))
    assert table == "| λ \\ α | 0.1 | 1 |\n|---|---|---|\n| 0 | 0.250 | 0.500 |\n| 0.5 | 1.000 | inf |"
