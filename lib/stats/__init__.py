"""Statistics: moments and cumulants, resampling errors, autocorrelation of Markov chains, weighted fits.

One module per concept (``lib.stats.moments``, ``lib.stats.resampling``, ``lib.stats.autocorrelation``,
``lib.stats.fitting``, ``lib.stats.importance``); their public names are gathered here, so ``from lib import stats``
and ``stats.tau_int(...)`` is how the book uses them.
"""
from lib.stats.autocorrelation import TauInt, mean_error, tau_int
from lib.stats.fitting import PolyFit, weighted_polyfit
from lib.stats.importance import importance_ess, pareto_k, pareto_k_threshold
from lib.stats.moments import cumulants, cumulants_from_moments, cumulants_from_power_sums, moments
from lib.stats.resampling import WeightedMean, bootstrap, bootstrap_cumulants, jackknife, weighted_mean

__all__ = ["moments", "cumulants", "cumulants_from_moments", "cumulants_from_power_sums", "bootstrap",
           "bootstrap_cumulants", "jackknife", "WeightedMean", "weighted_mean", "TauInt", "tau_int", "mean_error", "PolyFit",
           "weighted_polyfit", "importance_ess", "pareto_k", "pareto_k_threshold"]
