r"""Observables of lattice :math:`\phi^4` ensembles: magnetisation, susceptibility, Binder
cumulant, two-point functions and single-site cumulants, with errors.

Conventions (:doc:`/book/notation`, :doc:`/book/part3/phi4_hmc`): :math:`V = L^2`,
:math:`M = V^{-1}\sum_x \phi(x)`, :math:`\chi_2 = V(\langle M^2\rangle - \langle M\rangle^2)`,
:math:`U_L = 1 - \langle M^4\rangle / (3\langle M^2\rangle^2)`, and the Fourier transform
:math:`\tilde\phi(p) = \sum_x e^{-ipx}\phi(x)` (:func:`torch.fft.fft2`, momenta
:math:`p = 2\pi n/L` in FFT order, see :func:`lib.physics.phi4.lattice_momenta`).

Errors of quantities measured on Markov chains account for autocorrelations: means use
:func:`lib.stats.mean_error` (Wolff's Gamma method); the nonlinear :math:`\chi_2` and
:math:`U_L` use a bootstrap over blocks of consecutive trajectories that never straddle two
chains, with blocks ten times longer than the largest :math:`\tau_\mathrm{int}` of
:math:`|M|` and :math:`M^2` (:func:`magnetisation_summary`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lib import stats
from lib.core.checks import require_finite, require_int

__all__ = [
    "pooled_power_records",
    "magnetisation",
    "susceptibility",
    "binder_cumulant",
    "momentum_power",
    "two_point_momentum",
    "two_point_position",
    "site_cumulants",
    "site_cumulants_bootstrap",
    "site_cumulant_ratios",
    "magnetisation_summary",
    "sign_interfaces",
]


def _as_numpy(x, name: str) -> np.ndarray:
    """Real samples as a finite float64 numpy array (torch tensors on any device accepted)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return require_finite(arr, name)


def _check_batch(phi, name: str = "phi", min_ndim: int = 2) -> torch.Tensor:
    if not isinstance(phi, torch.Tensor) or not phi.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point torch.Tensor")
    if phi.ndim < min_ndim or phi.shape[0] < 1:
        raise ValueError(f"{name} must have a batch axis and configuration axes, got shape {tuple(phi.shape)}")
    return phi


def _check_lattice(phi) -> torch.Tensor:
    phi = _check_batch(phi, min_ndim=3)
    if phi.ndim != 3 or phi.shape[1] != phi.shape[2]:
        raise ValueError(f"phi must have shape (B, L, L), got {tuple(phi.shape)}")
    return phi


def magnetisation(phi: torch.Tensor) -> torch.Tensor:
    r"""Magnetisation :math:`M = V^{-1} \sum_x \phi(x)` of every configuration, shape ``(B,)``.

    Shape-agnostic: averages over every axis but the batch axis.  See :doc:`/book/part3/phi4_hmc`.
    """
    phi = _check_batch(phi)
    return phi.mean(dim=tuple(range(1, phi.ndim)))


def sign_interfaces(phi: torch.Tensor) -> torch.Tensor:
    r"""The fraction of the :math:`2V` nearest-neighbour links of each configuration across which the field changes sign,
    shape ``(B,)``.

    Zero for a configuration that sits in one vacuum of the broken phase; about the perimeter of its domains over
    :math:`2V` when domains of both vacua coexist (the "bulk patterns" of a hot start).  Periodic boundaries, like the
    action.  See :doc:`/book/part3/deep_broken_phase`.
    """
    phi = _check_lattice(phi)
    s = torch.sign(phi)
    links = (s != torch.roll(s, 1, dims=-1)).sum(dim=(-2, -1)) + (s != torch.roll(s, 1, dims=-2)).sum(dim=(-2, -1))
    return links.to(torch.float64) / (2 * phi.shape[-1] * phi.shape[-2])


def susceptibility(m, volume: int) -> float:
    r"""Susceptibility :math:`\chi_2 = V(\langle M^2\rangle - \langle M\rangle^2)` from samples of :math:`M`.

    ``m`` holds magnetisations (any shape, pooled).  See :doc:`/book/part3/phi4_hmc`.
    """
    m = _as_numpy(m, "m").reshape(-1)
    return float(volume * (np.mean(m * m) - np.mean(m) ** 2))


def binder_cumulant(m) -> float:
    r"""Binder cumulant :math:`U_L = 1 - \langle M^4\rangle / (3 \langle M^2\rangle^2)` from samples of :math:`M`.

    :math:`U_L \to 0` for a Gaussian :math:`M` (symmetric phase) and :math:`\to 2/3` deep in the
    broken phase.  See :doc:`/book/part3/phi4_hmc`.
    """
    m = _as_numpy(m, "m").reshape(-1)
    m2 = m * m
    if not np.mean(m2) > 0:
        raise ValueError("binder_cumulant: <M^2> = 0 (every magnetisation is zero), U_L is undefined")
    return float(1.0 - np.mean(m2 * m2) / (3.0 * np.mean(m2) ** 2))


def momentum_power(phi: torch.Tensor) -> torch.Tensor:
    r"""Per-configuration power spectrum :math:`|\tilde\phi(p)|^2 / V`, shape ``(B, L, L)`` (FFT order).

    Its batch mean is the full (disconnected) momentum-space two-point function; per-chain
    means of it give errors.  See :doc:`/book/part3/phi4_hmc` (eq. ``eq-two-point-momentum``).
    """
    phi = _check_lattice(phi)
    volume = phi.shape[1] * phi.shape[2]
    return torch.fft.fft2(phi).abs().square() / volume


def pooled_power_records(x: torch.Tensor, n_max: int = 8, spectrum_squares: bool = False) -> dict:
    r"""What the lattice diffusion runs record along a run: pooled power sums and the summed power spectrum.

    For a batch ``x`` ``(B, L, L)`` (in float64): ``power_sums`` ``(n_max + 1,)``, the sums over sites and
    configurations of :math:`x^0, \dots, x^{n_{max}}` (so that ``power_sums[n] / power_sums[0]`` are the pooled
    single-site moments, and :func:`lib.stats.cumulants_from_power_sums` gives the cumulants), and
    ``spectrum_sum`` ``(L, L)``, the sum over configurations of :func:`momentum_power`; with
    ``spectrum_squares`` also ``spectrum_sq_sum``, the sum of its squares (for errors).  Sums, not means, so that
    batches add up.  Used by :mod:`lib.recipes.phi4_diffusion`.
    """
    xd = _check_lattice(x).to(torch.float64)
    powers = [torch.ones((), dtype=torch.float64, device=x.device) * xd.numel()]
    p = torch.ones_like(xd)
    for _ in range(n_max):
        p = p * xd
        powers.append(p.sum())
    spectrum = momentum_power(xd)
    out = {"power_sums": torch.stack(powers).cpu(), "spectrum_sum": spectrum.sum(dim=0).cpu()}
    if spectrum_squares:
        out["spectrum_sq_sum"] = spectrum.square().sum(dim=0).cpu()
    return out


def two_point_momentum(phi: torch.Tensor, connected: bool = True) -> torch.Tensor:
    r"""Momentum-space two-point function averaged over the ensemble.

    .. math::
        G(p) = \frac{\langle |\tilde\phi(p)|^2 \rangle}{V} - V \langle M\rangle^2 \delta_{p,0},

    the connected part subtracting :math:`|\langle\tilde\phi(p)\rangle|^2/V`, which by translation
    invariance is non-zero only at :math:`p = 0` where :math:`\tilde\phi(0) = VM`.  Hence
    :math:`G(0) = \chi_2`.  :math:`\langle M \rangle` is the ensemble average (close to zero for a
    :math:`Z_2`-symmetric ensemble, also in the broken phase on a finite lattice).  For the free
    field :math:`G(p) = 1/[2(1 - 2\kappa\sum_\mu\cos p_\mu)]` (:func:`lib.physics.phi4.free_propagator`).
    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-two-point-momentum``).

    Parameters
    ----------
    phi : torch.Tensor
        Ensemble ``(B, L, L)``.
    connected : bool
        Subtract the disconnected part at :math:`p = 0`.

    Returns
    -------
    torch.Tensor
        ``(L, L)`` in FFT order (index ``(n1, n2)`` is :math:`p = 2\pi(n_1, n_2)/L`).
    """
    phi = _check_lattice(phi)
    g = momentum_power(phi).mean(dim=0)
    if connected:
        volume = phi.shape[1] * phi.shape[2]
        g[0, 0] = g[0, 0] - volume * magnetisation(phi).mean() ** 2
    return g


def two_point_position(phi: torch.Tensor, connected: bool = True, full: bool = False) -> torch.Tensor:
    r"""Position-space two-point function, averaged over translations (and both directions).

    .. math::
        C(r) = \frac1V \sum_x \langle \phi(x)\phi(x+r) \rangle - \langle M\rangle^2
             = \frac1V \mathrm{IFFT}\big[\langle|\tilde\phi(p)|^2\rangle\big](r) - \langle M\rangle^2,

    and, unless ``full``, :math:`G(r) = \frac12 [C(r, 0) + C(0, r)]` for
    :math:`r = 0, \dots, L-1` (periodic, so :math:`G(r) = G(L - r)`).  The connected
    :math:`C` sums to :math:`\chi_2` over :math:`r`.  See :doc:`/book/part3/phi4_hmc`
    (eq. ``eq-two-point-position``).

    Returns
    -------
    torch.Tensor
        ``(L,)``, or ``(L, L)`` for ``full=True`` (index = displacement :math:`r`).
    """
    phi = _check_lattice(phi)
    volume = phi.shape[1] * phi.shape[2]
    power = torch.fft.fft2(phi).abs().square().mean(dim=0)
    c = torch.fft.ifft2(power).real / volume
    if connected:
        c = c - magnetisation(phi).mean() ** 2
    if full:
        return c
    return 0.5 * (c[:, 0] + c[0, :])


def site_cumulants(phi, n_max: int = 8) -> np.ndarray:
    r"""Cumulants :math:`\kappa_n` (``n = 0..n_max``) of the single-site field, pooled over sites and configurations.

    The quantity of Table 2 of arXiv:2410.21212; computed by :func:`lib.stats.cumulants`
    (``axis=None``).  See :doc:`/book/part3/phi4_hmc`.
    """
    return stats.cumulants(phi, n_max=n_max, axis=None)


def _site_power_sums(phi, n_max: int, symmetric: bool, name: str) -> np.ndarray:
    r"""Per-configuration power sums ``(N, n_max + 1)`` of the pooled single-site field.

    About the global mean; with ``symmetric`` about zero with the odd sums set to zero: the moments of the
    :math:`Z_2`-symmetrised ensemble :math:`\{\phi\} \cup \{-\phi\}`, whose odd moments vanish exactly.
    """
    arr = _as_numpy(phi, "phi")
    if arr.ndim < 1 or arr.shape[0] < 2:
        raise ValueError(f"phi needs at least 2 configurations along axis 0, got shape {arr.shape}")
    d = arr.reshape(arr.shape[0], -1).astype(np.float64)
    if not symmetric:
        d = d - d.mean()
    if not np.any(d):
        raise ValueError(f"{name}: the field is constant (kappa_2 = 0), the cumulants and ratios are undefined")
    sums = np.empty((d.shape[0], n_max + 1))
    sums[:, 0] = d.shape[1]
    p = d.copy()
    for k in range(1, n_max + 1):
        sums[:, k] = 0.0 if symmetric and k % 2 else p.sum(axis=1)
        if k < n_max:
            p *= d
    return sums


def site_cumulants_bootstrap(phi, n_max: int = 8, n_boot: int = 500, generator: np.random.Generator | None = None,
                             n_blocks: int = 1000, symmetric: bool = False):
    r"""Pooled single-site cumulants with bootstrap errors, resampling whole configurations.

    Delegates to :func:`lib.stats.bootstrap_cumulants`: the configurations (axis 0) are cut
    into ``n_blocks`` contiguous blocks and the sites of a configuration always stay together,
    so correlations within a configuration are accounted for.  For configurations from one
    Markov chain, order them in time and choose blocks longer than :math:`\tau_\mathrm{int}`.
    See :doc:`/book/part3/phi4_hmc`.

    With ``symmetric=True`` the cumulants are those of the :math:`Z_2`-symmetrised ensemble
    :math:`\{\phi\}\cup\{-\phi\}` (odd moments exactly zero), for a target that is symmetric by construction;
    the bootstrap resamples the original configurations, so a configuration and its image count once.

    Returns
    -------
    (estimate, error) : numpy arrays of shape ``(n_max + 1,)``
    """
    if not symmetric:
        return stats.bootstrap_cumulants(phi, n_max=n_max, n_boot=n_boot, generator=generator, n_blocks=n_blocks)
    n_max = require_int(n_max, "n_max")
    sums = _site_power_sums(phi, n_max, True, "site_cumulants_bootstrap")

    def statistic(rows):
        return stats.cumulants_from_moments(rows.sum(axis=0) / rows[:, 0].sum())

    return stats.bootstrap(sums, statistic, n_boot=n_boot, generator=generator,
                           n_blocks=min(int(n_blocks), sums.shape[0]))


def site_cumulant_ratios(phi, orders=(4, 6, 8), n_boot: int = 500, generator: np.random.Generator | None = None,
                         n_blocks: int = 1000, symmetric: bool = False):
    r"""Normalisation-free ratios :math:`\kappa_n / \kappa_2^{n/2}` of the pooled single-site cumulants.

    An affine map :math:`\phi \to (\phi - a)/s` (e.g. the authors' min/max normalisation,
    :mod:`lib.diffusion.normalise`) leaves these ratios unchanged, so ensembles normalised differently can
    be compared.  Errors: bootstrap (:func:`lib.stats.bootstrap`) over ``n_blocks`` contiguous
    blocks of configurations, resampling per-configuration power sums about the global mean
    (the sites of a configuration stay together).  See :doc:`/book/part3/phi4_hmc`.

    Parameters
    ----------
    phi : torch.Tensor or array_like
        Configurations along axis 0 (any trailing shape, pooled).
    orders : sequence of int
        Even orders n >= 3 (default 4, 6, 8).
    n_boot, generator, n_blocks
        As :func:`lib.stats.bootstrap` (``n_blocks`` is reduced to the number of configurations).
    symmetric : bool
        The ratios of the :math:`Z_2`-symmetrised ensemble (as :func:`site_cumulants_bootstrap`); only a
        rescaling :math:`\phi \to \phi/s` leaves them unchanged then.

    Returns
    -------
    (estimate, error) : numpy arrays of shape ``(len(orders),)``
    """
    orders = [int(n) for n in orders]
    if not orders or min(orders) < 3:
        raise ValueError(f"orders must be integers >= 3, got {orders}")
    sums = _site_power_sums(phi, max(orders), symmetric, "site_cumulant_ratios")

    def statistic(rows):
        kappa = stats.cumulants_from_moments(rows.sum(axis=0) / rows[:, 0].sum())
        return np.array([kappa[n] / kappa[2] ** (n / 2) for n in orders])

    n_blocks = min(int(n_blocks), sums.shape[0])
    est, err = stats.bootstrap(sums, statistic, n_boot=n_boot, generator=generator, n_blocks=n_blocks)
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(err))):
        raise ValueError(f"site_cumulant_ratios: non-finite ratios {est} +- {err} (kappa_2 = 0 in some bootstrap "
                         "replica: too few configurations or blocks)")
    return est, err


def _summary_statistic(volume: int):
    def statistic(blocks: np.ndarray) -> np.ndarray:
        m = blocks.reshape(-1)
        m2 = m * m
        mean_m2 = m2.mean()
        return np.array([
            m.mean(),
            np.abs(m).mean(),
            volume * (mean_m2 - m.mean() ** 2),
            1.0 - (m2 * m2).mean() / (3.0 * mean_m2 ** 2),
            volume * (mean_m2 - np.abs(m).mean() ** 2),
        ])
    return statistic


def magnetisation_summary(m, volume: int, generator: np.random.Generator, n_boot: int = 500,
                          block_length: int | None = None) -> dict:
    r""":math:`\langle M\rangle`, :math:`\langle|M|\rangle`, :math:`\chi_2`, :math:`U_L` and :math:`\chi_{|M|}` with errors.

    :math:`\chi_2 = V(\langle M^2\rangle - \langle M\rangle^2)`; :math:`\chi_{|M|} = V(\langle M^2\rangle -
    \langle|M|\rangle^2)` is the connected susceptibility of the broken phase (the fluctuations around the vacuum
    of each configuration), which does not count the distance between the two vacua of a :math:`Z_2`-symmetric
    ensemble.

    Errors come from a block bootstrap (:func:`lib.stats.bootstrap`): each chain is cut into
    blocks of ``block_length`` consecutive measurements (the remainder of a chain is dropped),
    blocks never straddle two chains, and blocks are resampled with replacement.  By default
    ``block_length = ceil(10 * tau_max)`` with :math:`\tau_\mathrm{max}` the larger integrated
    autocorrelation time (:func:`lib.stats.tau_int`) of :math:`|M|` and :math:`M^2`, so the error
    accounts for autocorrelations.  For independent configurations (e.g. the authors'
    one-chain-per-configuration ensemble) pass ``m`` of shape ``(N,)`` and ``block_length=1``.
    See :doc:`/book/part3/phi4_hmc`.

    Parameters
    ----------
    m : array_like or torch.Tensor
        Magnetisations, shape ``(N,)`` (one chain, or independent samples) or
        ``(n_traj, n_chains)`` (time along axis 0, as the ``records`` of :func:`lib.physics.hmc.hmc`).
    volume : int
        :math:`V = L^2`.
    generator : numpy.random.Generator
        For the bootstrap (required).
    n_boot : int
        Bootstrap resamples.
    block_length : int or None
        Measurements per block (None: automatic, see above).

    Returns
    -------
    dict
        ``{"M": (est, err), "absM": ..., "chi2": ..., "U_L": ..., "chi2_abs": ..., "tau_absM": TauInt,
        "tau_M2": TauInt, "block_length": int, "n_blocks": int}`` (the ``tau_*`` entries are
        None when ``block_length`` is given).
    """
    arr = _as_numpy(m, "m")
    if not np.any(arr):
        raise ValueError("magnetisation_summary: every magnetisation is zero, chi_2 and U_L are undefined")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"m must have shape (N,) or (n_traj, n_chains), got {arr.shape}")
    require_int(volume, "volume", 1)
    n_traj, n_chains = arr.shape
    tau_abs = tau_m2 = None
    if block_length is None:
        tau_abs = stats.tau_int(np.abs(arr), layout="draws, chains")
        tau_m2 = stats.tau_int(arr * arr, layout="draws, chains")
        block_length = max(1, math.ceil(10.0 * max(tau_abs.tau, tau_m2.tau)))
    require_int(block_length, "block_length", 1)
    block_length = int(min(block_length, n_traj))
    per_chain = n_traj // block_length
    n_blocks = per_chain * n_chains
    if n_blocks < 2:
        raise ValueError(
            f"only {n_blocks} block(s) of length {block_length}: the series is too short for an error estimate"
        )
    blocks = arr[: per_chain * block_length].T.reshape(n_blocks, block_length)
    est, err = stats.bootstrap(blocks, _summary_statistic(int(volume)), n_boot=n_boot, generator=generator)
    names = ("M", "absM", "chi2", "U_L", "chi2_abs")
    out = {name: (float(est[i]), float(err[i])) for i, name in enumerate(names)}
    out.update(tau_absM=tau_abs, tau_M2=tau_m2, block_length=block_length, n_blocks=n_blocks)
    return out


def ratios_from_cumulants(kappa: dict, orders=(4, 6, 8)):
    r"""Ratios :math:`\kappa_n/\kappa_2^{n/2}` and their errors from printed cumulants ``{n: (value, error)}``.

    Linear error propagation with the cumulants' errors treated as independent (all a printed table allows):
    :math:`\delta r/|r| = \sqrt{(\delta\kappa_n/\kappa_n)^2 + (\tfrac n2\,\delta\kappa_2/\kappa_2)^2}`.
    Used for the paper's rows of Table 2 in :doc:`/book/part3/phi4_hmc` and :doc:`/book/part3/phi4_diffusion`.

    Returns
    -------
    (ratios, errors) : numpy arrays of shape ``(len(orders),)``
    """
    if 2 not in kappa:
        raise ValueError(f"kappa must contain the second cumulant (key 2), got keys {sorted(kappa)}")
    k2, dk2 = kappa[2]
    out, err = [], []
    for n in orders:
        if n not in kappa:
            raise ValueError(f"kappa has no entry for order {n}")
        kn, dkn = kappa[n]
        r = kn / k2 ** (n / 2)
        out.append(r)
        err.append(abs(r) * math.hypot(dkn / kn, (n / 2) * dk2 / k2))
    return np.array(out), np.array(err)
