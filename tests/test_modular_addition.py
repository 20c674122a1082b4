"""theory.modular_addition (arXiv 2602.16849) against closed forms, its own invariants and a
float64 gradient flow of the full network; the modular-addition-fourier smoke verify."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics
import experiments
from models import modular_addition as net
from theory import modular_addition as ma

strict = pytest.mark.strict_dtypes


@strict
def test_blow_up_time_matches_the_aligned_closed_forms():
    # D0 = 0: R = a²b ≥ 0 and b' = a²/(pτ) = (C + 2b²)/(pτ): b = √(C/2) tan(...), or b0/(1 − 2b0t/(pτ)) at C = 0.
    # Gauss–Legendre on an analytic integrand converges exponentially: tol 1e-9 is rounding of 256-term sums.
    p, tau = 13, 2.0
    assert float(ma.blow_up_time(p=p, a0=np.sqrt(2) * 0.01, b0=0.01, phase0=0.0, tau=tau)) == pytest.approx(
        p * tau / (2 * 0.01), rel=1e-9)
    a0, b0 = 0.05, 0.01
    c = a0**2 - 2 * b0**2
    expected = p * tau * (np.pi / 2 - np.arctan(b0 * np.sqrt(2 / c))) / np.sqrt(2 * c)
    assert float(ma.blow_up_time(p=p, a0=a0, b0=b0, phase0=0.0, tau=tau)) == pytest.approx(expected, rel=1e-9)


@strict
def test_frequency_flow_solves_the_aligned_mode_and_keeps_both_invariants():
    p, b0 = 11, 0.02
    t_star = p / (2 * b0)
    t = np.linspace(0.0, 0.99 * t_star, 50)
    a, b, d = map(np.asarray, ma.frequency_flow(t, p=p, a0=np.sqrt(2) * b0, b0=b0, phase0=0.0))
    exact = b0 / (1 - 2 * b0 * t / p)
    # PID rtol 1e-11 per step over ~1e3 steps of a solution growing 100×: 1e-7 relative.
    np.testing.assert_allclose(b, exact, rtol=1e-7)
    np.testing.assert_allclose(a, np.sqrt(2) * exact, rtol=1e-7)
    assert np.all(np.abs(d) < 1e-9)
    past = ma.frequency_flow(np.linspace(0.0, 1.01 * t_star, 50), p=p, a0=np.sqrt(2) * b0, b0=b0, phase0=0.0)[1]
    assert np.isnan(past[-1]) and np.isfinite(past[0])
    # A misaligned mode: a² − 2b² and a²b sin D stay at their initial values (to the solver's rtol,
    # measured against the largest a², a²b reached) while D → 0 (phase alignment).
    a0, b0, d0 = 0.01, 0.02, 2.5
    t = np.linspace(0.0, 0.999 * float(ma.blow_up_time(p=p, a0=a0, b0=b0, phase0=d0)), 50)
    a, b, d = map(np.asarray, ma.frequency_flow(t, p=p, a0=a0, b0=b0, phase0=d0))
    c = ma.conserved_quantity(a, b)
    k = ma.phase_invariant(a, b, d)
    assert np.max(np.abs(c - c[0])) < 1e-8 * np.max(a**2)
    assert np.max(np.abs(k - k[0])) < 1e-8 * np.max(a**2 * b)
    assert abs(d[-1]) < 1e-3 < abs(d0)


@strict
@pytest.mark.slow  # a diffrax flow of the full network (~15 s); the smoke verify compares GD with the flow by default
def test_reduced_flow_follows_the_full_network_from_small_init():
    """One neuron at one frequency, full network, float64 gradient flow on the mean cross-entropy over
    all p² pairs. The reduced flow drops softmax(f) − 1/p; with logits |f| ≤ F that is within a factor
    e^{±2F} − 1 of 1/p, and bounding both gradients in sup norm the rates of (2) are off by at most
    ε = 4(e^{2F} − 1) relative, so a log-magnitude drifts by at most ε·ln(growth)."""
    p, k = 11, 3
    a0, b0, d0, phi0 = 1e-3, 1.5e-3, 1.0, 0.4
    params = net.init_single_frequency(p=p, k=k, a0=a0, b0=b0, phi0=phi0, psi0=2 * phi0 + d0)
    batch = net.all_pairs(p)
    t = np.linspace(0.0, 0.97 * float(ma.blow_up_time(p=p, a0=a0, b0=b0, phase0=d0)), 12)

    def observe(pr):
        return {"a": jnp.sqrt(net.frequency_power(pr.theta)[0, k - 1]), "b": jnp.sqrt(net.frequency_power(pr.xi)[0, k - 1]),
                "d": net.frequency_phase(pr.xi)[0, k - 1] - 2 * net.frequency_phase(pr.theta)[0, k - 1],
                "f": jnp.max(jnp.abs(net.apply(pr, batch[0]))), "balance": net.balance(pr)[0]}

    flow = dynamics.gradient_flow(net.cross_entropy, params, batch, times=t, observe=observe, rtol=1e-10, atol=1e-14)
    a, b, d = map(np.asarray, ma.frequency_flow(t, p=p, a0=a0, b0=b0, phase0=d0))
    s = {key: np.asarray(v) for key, v in flow.stats.items()}
    eps = 4 * np.expm1(2 * s["f"].max())
    growth = np.log(max(a[-1] / a0, b[-1] / b0))
    assert growth > 1.5  # the comparison covers real growth, not just the start
    np.testing.assert_allclose(s["a"], a, rtol=eps * growth)
    np.testing.assert_allclose(s["b"], b, rtol=eps * growth)
    np.testing.assert_allclose(np.asarray(ma.wrap_phase(s["d"] - d)), 0.0, atol=eps * np.pi)
    # Exact for the full network (f invariant under θ → cθ, ξ → ξ/c²): ‖θ‖² − 2‖ξ‖², to the flow's rtol.
    np.testing.assert_allclose(s["balance"], s["balance"][0], atol=1e-8 * abs(s["balance"][0]))


@strict
def test_frequency_state_reads_a_single_frequency_init_back():
    # Explicit DFT sums (theory) against the FFT (model) and the construction itself: rounding only.
    p, k = 13, 4
    a0, b0, phi0, psi0 = np.array([0.3, 0.1]), np.array([0.2, 0.5]), np.array([0.7, -2.0]), np.array([1.0, 3.0])
    params = net.init_single_frequency(p=p, k=k, a0=a0, b0=b0, phi0=phi0, psi0=psi0)
    a, b, d = map(np.asarray, ma.frequency_state(params, p))
    np.testing.assert_allclose(a[:, k - 1], a0, rtol=1e-12)
    np.testing.assert_allclose(b[:, k - 1], b0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ma.wrap_phase(d[:, k - 1] - (psi0 - 2 * phi0))), 0.0, atol=1e-12)
    assert np.max(np.delete(a, k - 1, axis=1)) < 1e-14
    np.testing.assert_allclose(np.asarray(net.frequency_power(params.theta)), a**2, atol=1e-14)


@strict
def test_winning_frequency_is_the_first_mode_to_blow_up():
    # Neuron 0: frequency 2 is aligned but smaller, frequency 5 larger but misaligned (D = 2.8):
    # the blow-up rule and the initial-growth rule then disagree in a way we can compute.
    p = 13
    wj = 2 * np.pi * np.arange(p) / p
    theta = 0.01 * np.cos(2 * wj) + 0.03 * np.cos(5 * wj)
    xi = 0.01 * np.cos(2 * wj) + 0.03 * np.cos(5 * wj + 2.8)
    params = net.Params(jnp.asarray(theta)[None], jnp.asarray(xi)[None])
    t2 = float(ma.blow_up_time(p=p, a0=0.01, b0=0.01, phase0=0.0))
    t5 = float(ma.blow_up_time(p=p, a0=0.03, b0=0.03, phase0=2.8))
    assert int(ma.winning_frequencies(params, p)[0]) == (2 if t2 < t5 else 5)
    g = ma.growth_rates(np.array([0.01, 0.03]), np.array([0.01, 0.03]), np.array([0.0, 2.8]), p=p)
    assert int(ma.winning_frequencies(params, p, rule="growth")[0]) == (2 if g[0] > g[1] else 5)


def test_network_matches_its_formula_on_every_pair():
    # f(x, y)_j = Σ_m ξ[m, j] σ(θ[m, x] + θ[m, y]) and the mean cross-entropy, by explicit loops: rounding only.
    p, hidden = 5, 3
    params = net.init(jax.random.key(3), p=p, hidden=hidden, init_scale=0.7)
    theta, xi = np.asarray(params.theta), np.asarray(params.xi)
    pairs, labels = net.all_pairs(p)
    for activation, sigma in (("quad", np.square), ("relu", lambda u: np.maximum(u, 0.0))):
        logits = np.asarray(net.apply(params, pairs, activation))
        ce = 0.0
        for n, (x, y) in enumerate(np.asarray(pairs)):
            f = sum(xi[m] * sigma(theta[m, x] + theta[m, y]) for m in range(hidden))
            np.testing.assert_allclose(logits[n], f, rtol=1e-12, atol=1e-14)
            assert labels[n] == (x + y) % p
            ce += np.log(np.sum(np.exp(f))) - f[(x + y) % p]
        assert float(net.cross_entropy(params, (pairs, labels), activation)) == pytest.approx(ce / p**2, rel=1e-12)


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ValueError, match="odd integer"):
        ma.frequency_flow(np.array([0.0, 1.0]), p=12, a0=0.1, b0=0.1, phase0=0.0)
    with pytest.raises(ValueError, match="a0 > 0"):
        ma.blow_up_time(p=11, a0=0.0, b0=0.1, phase0=0.0)
    with pytest.raises(ValueError, match="rule"):
        ma.winning_frequencies(net.init(jax.random.key(0), p=11, hidden=2, init_scale=0.1), 11, rule="first")
    with pytest.raises(ValueError, match="activation"):
        net.apply(net.init(jax.random.key(0), p=5, hidden=2, init_scale=0.1), jnp.zeros((1, 2), int), "tanh")


def test_smoke_verify_passes(tmp_path):
    exp = experiments.get("modular-addition-fourier")
    rows = exp.run(exp.smoke(), tmp_path / "run").rows
    failed = [r for r in rows if not r["passed"]]
    assert len(rows) == 4 and not failed, failed


@pytest.mark.slow
def test_full_config_verify_passes(tmp_path):
    exp = experiments.get("modular-addition-fourier")
    rows = exp.run(exp.Config(), tmp_path / "run").rows
    failed = [r for r in rows if not r["passed"]]
    assert rows and not failed, failed
