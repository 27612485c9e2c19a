"""Cross-check of lib.stats (tau_int, mean_error) against the field's reference implementation of Wolff's Gamma
method, pyerrors (a test-only dependency), on series of known integrated autocorrelation time.

Where the two differ by construction:

* the mean subtracted for several chains: pyerrors subtracts each chain's (replica's) own mean, lib the mean over all
  chains (Wolff 2004, eq. (31)), so lib's Gamma(t) also holds the scatter of the chain means.  The errors of the mean
  differ by a relative O((2W + 1)/N_chain) (measured: 1-3 %); on data centred chain by chain they agree to rounding.
* the bias correction of tau_int.  Both multiply tau_int(W) by (1 + (2W + 1)/N)
(Wolff 2004, eq. (49)); pyerrors divides by (1 + 1/N), lib by (1 + 2 tau_int(W)/N), because lib corrects Gamma(t)
itself (Gamma -> Gamma + C_F/N), which also corrects the variance.  The error of the mean is the same in both to
rounding; tau_int differs by a relative O((2 tau - 1)/N).  Both keep tau_int >= 1/2 for anticorrelated series.
"""
import warnings

import numpy as np
import pytest

from lib import stats

pe = pytest.importorskip("pyerrors")


def ar1(a: float, n: int, chains: int, seed: int) -> np.ndarray:
    """AR(1) chains x_t = a x_{t-1} + sqrt(1 - a^2) eta_t started in equilibrium; exact tau_int = (1 + a) / (2 (1 - a))."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, chains))
    x[0] = rng.normal(size=chains)
    eta = rng.normal(size=(n, chains)) * np.sqrt(1 - a * a)
    for t in range(1, n):
        x[t] = a * x[t - 1] + eta[t]
    return x


def reference(series: np.ndarray, S: float = 1.5):
    """pyerrors' tau_int, error of the mean and window for (N, chains) data, one replica per chain."""
    obs = pe.Obs([series[:, c] for c in range(series.shape[1])], [f"ens|r{c}" for c in range(series.shape[1])])
    obs.gamma_method(S=S)
    return obs.e_tauint["ens"], obs.dvalue, obs.e_windowsize["ens"]


def _compare(x):
    """lib against pyerrors on x (N, chains): equal on chain-centred data, within O((2W+1)/N_chain) on x itself."""
    centred = x - x.mean(axis=0)  # pyerrors' convention for several chains (no-op for one chain up to rounding)
    ours, (_, err) = stats.tau_int(centred), stats.mean_error(centred)
    tau_ref, err_ref, window_ref = reference(x)
    assert ours.window == window_ref
    assert err == pytest.approx(err_ref, rel=1e-9)  # the same error of the mean
    assert ours.tau == pytest.approx(tau_ref, rel=2 * abs(2 * tau_ref - 1) / x.size + 1e-12)  # the stated O(1/N)
    raw = stats.tau_int(x)
    _, err_raw = stats.mean_error(x)
    assert err_raw == pytest.approx(err_ref, rel=(2 * raw.window + 1) / x.shape[0] + 1e-9)
    return raw


@pytest.mark.parametrize("a", [0.0, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("chains", [1, 4])
def test_tau_int_and_error_agree_with_pyerrors_on_ar1(a, chains):
    x = ar1(a, 20_000 // chains, chains, seed=int(100 * a) + chains)
    ours = _compare(x)
    exact = (1 + a) / (2 * (1 - a))
    assert abs(ours.tau - exact) < 4 * ours.tau_error + 0.02 * exact  # and both near the exact value


@pytest.mark.parametrize("a", [-0.5, -0.95])
def test_anticorrelated_series_keep_tau_int_at_one_half_like_pyerrors(a):
    x = ar1(a, 2000, 1, seed=7)
    with pytest.warns(RuntimeWarning, match="anticorrelated"):
        ours = stats.tau_int(x)
    with pytest.warns(RuntimeWarning, match="anticorrelated"):
        mean, err = stats.mean_error(x)
    tau_ref, err_ref, _ = reference(x)
    assert ours.tau >= 0.5 and ours.tau_error >= 0 and err > 0
    assert ours.tau == pytest.approx(0.5, rel=5e-3) and tau_ref == pytest.approx(0.5, rel=5e-3)
    assert err == pytest.approx(err_ref, rel=1e-6)
    # the naive error: an upper bound on the true one, sqrt(2 tau var / N) with the exact tau (1 + a) / (2 (1 - a))
    assert err >= np.sqrt((1 + a) / (1 - a) * x.var() / x.size)


def test_short_and_alternating_series_give_a_positive_tau_int():
    rng = np.random.default_rng(3)
    for n in (2, 3, 10, 60, 99):
        x = (-1.0) ** np.arange(n) + 0.01 * rng.normal(size=n)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = stats.tau_int(x)
            mean, err = stats.mean_error(x)
        assert t.tau >= 0.5 and t.tau_error >= 0 and np.isfinite(err) and err > 0, n
        if n >= 10:  # significantly anticorrelated: said so
            assert any("anticorrelated" in str(w.message) for w in caught), n


def test_iid_data_below_one_half_by_chance_give_no_warning():
    x = ar1(0.0, 20_000, 1, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.tau_int(x).tau == pytest.approx(0.5, abs=0.03)


def test_agrees_with_pyerrors_on_a_real_hmc_series():
    from lib.core.random import make_generator
    from lib.physics import hmc, phi4

    params = phi4.Phi4Params(8, 0.25, 0.022)
    gen = make_generator(11)
    run = hmc.hmc(params, phi4.hot_start(params, 4, gen), 1500, 0.2, 5, gen, integrator="omelyan", n_therm=100)
    series = run.records["M2"].double().numpy()  # (1500, 4)
    assert _compare(series).tau > 1.0  # a genuinely autocorrelated series
