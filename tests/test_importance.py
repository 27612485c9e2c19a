"""Importance-weight diagnostics: Kish's ESS and the Pareto shape of the largest weights."""
import math

import numpy as np
import pytest

from lib import stats


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_pareto_k_recovers_the_shape_of_generalised_pareto_weights(k):
    """Weights drawn from a generalised Pareto distribution of shape k (scale 1): the fitted tail shape is within
    0.15 of k for 20000 weights (PSIS's prior pulls towards 1/2 by 10 pseudo-observations of about 400)."""
    rng = np.random.default_rng(7)
    w = (rng.uniform(size=20000) ** (-k) - 1.0) / k
    assert abs(stats.pareto_k(np.log(w)) - k) < 0.15


def test_importance_ess_of_equal_and_of_one_dominant_weight():
    assert math.isclose(stats.importance_ess(np.zeros(50)), 50.0)
    lw = np.zeros(50)
    lw[3] = 200.0
    assert math.isclose(stats.importance_ess(lw), 1.0, rel_tol=1e-12)


def test_a_proposal_narrower_than_the_target_is_flagged():
    """Target N(0, 1), proposal N(0, 0.6^2): the weights have infinite variance (k = 1 - 0.36 = 0.64 > 1/2 in theory)
    and k-hat exceeds 1/2; the proposal N(0, 1.5^2) has bounded weights and a small k-hat."""
    rng = np.random.default_rng(3)
    for scale, above in ((0.6, True), (1.5, False)):
        x = rng.normal(scale=scale, size=20000)
        log_w = -0.5 * x ** 2 + 0.5 * (x / scale) ** 2
        assert (stats.pareto_k(log_w) > 0.5) is above


def test_bad_input():
    with pytest.raises(ValueError, match="log_w"):
        stats.importance_ess([0.0, float("nan")])
    with pytest.raises(ValueError, match="log_w"):
        stats.pareto_k([])
    with pytest.raises(ValueError, match="n must"):
        stats.pareto_k_threshold(1)
    assert stats.pareto_k_threshold(10 ** 6) == 0.7
    assert math.isinf(stats.pareto_k(np.zeros(10)))
