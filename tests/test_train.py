"""Tests of lib.diffusion.training: the DSM loss against its analytic minimum for a Gaussian target, a short training run that
learns the exact score, non-finite losses, config validation, epochs and augmentation, EMA, bitwise-identical resume
from checkpoints (the stored round trip of trained weights: tests/test_trained_networks.py)."""
import math

import pytest
import torch
from scipy.integrate import quad
from scipy.stats import kstest

import lib.diffusion.training as train_mod
from lib.core.checks import NonFiniteError
from lib.core.random import make_generator
from lib.diffusion.nets import MLPConfig, build_mlp, score_fn
from lib.diffusion.sde import ve, vp
from lib.diffusion.losses import dsm_loss, sample_times
from lib.diffusion.training import (CHECKPOINT_NAME, CheckpointError, TrainConfig, TrainingDiverged, learning_rate,
                                    train_score_model)




def _gauss_var(sde, s0, t):
    """Variance s0^2 f^2 + Xi of p(x, t) for the target N(0, s0^2)."""
    return s0**2 * sde.f(t) ** 2 + sde.xi(t)


def _gauss_score(sde, s0, factor=1.0):
    def score(x, t):
        return -factor * x / _gauss_var(sde, s0, t).to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    return score


def _time_average(fn, sde, t_min):
    return quad(lambda t: fn(t), t_min, sde.T, limit=200, epsabs=1e-12, epsrel=1e-10)[0] / (sde.T - t_min)


SMALL = MLPConfig(dim=2, hidden=(16, 16), embed_dim=16, embed_scale=16.0)


def _small_net(seed=0, sde=None, cfg=SMALL):
    return build_mlp(cfg, sde, generator=make_generator(seed))


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the loss ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", [ve(sigma=10.0), vp(sigma=10.0)], ids=["ve", "vp"])
def test_dsm_loss_of_exact_score_is_the_analytic_minimum(sde):
    s0, d, n, t_min = 0.5, 2, 100_000, 1e-5
    x0 = s0 * torch.randn(n, d, generator=make_generator(0), dtype=torch.float64)
    per = dsm_loss(_gauss_score(sde, s0), sde, x0, make_generator(1), t_min, reduction="none")
    assert per.shape == (n,)
    # E[loss | t] = d/2 s0^2 f^2 / (s0^2 f^2 + Xi), averaged over t ~ U(t_min, T)
    minimum = _time_average(lambda t: 0.5 * d * float(s0**2 * sde.f(t) ** 2 / _gauss_var(sde, s0, t)), sde, t_min)
    mean, err = float(per.mean()), float(per.std() / math.sqrt(n))
    assert abs(mean - minimum) < 5 * err, (mean, err, minimum)
    # the same samples with a perturbed score a * s: excess = 1/2 E Xi |s - s_true|^2 = d/2 (a-1)^2 E_t[Xi / var]
    a = 1.3
    per_bad = dsm_loss(_gauss_score(sde, s0, a), sde, x0, make_generator(1), t_min, reduction="none")
    excess = per_bad - per
    assert float(excess.mean()) > 0
    expected = _time_average(lambda t: 0.5 * d * (a - 1) ** 2 * float(sde.xi(t) / _gauss_var(sde, s0, t)), sde, t_min)
    assert abs(float(excess.mean()) - expected) < 5 * float(excess.std()) / math.sqrt(n)
    mean_loss = dsm_loss(_gauss_score(sde, s0), sde, x0, make_generator(1), t_min)
    assert mean_loss.ndim == 0 and float(mean_loss) == pytest.approx(mean, rel=1e-12)


def test_zero_mode_weight_adds_its_share_and_keeps_the_minimiser():
    # isotropic Gaussian target in d = 4: the constant direction is one direction among d, so the weight w adds
    # w/2 E[s0^2 f^2 / var] with the exact score and (w/2)(a-1)^2 E[Xi / var] of excess with the score a * s_exact
    sde, s0, d, n, t_min, w = ve(sigma=10.0), 0.5, 4, 100_000, 1e-5, 3.0
    x0 = s0 * torch.randn(n, d, generator=make_generator(0), dtype=torch.float64)
    plain = dsm_loss(_gauss_score(sde, s0), sde, x0, make_generator(1), t_min, reduction="none")
    weighted = dsm_loss(_gauss_score(sde, s0), sde, x0, make_generator(1), t_min, reduction="none",
                        zero_mode_weight=w)
    extra = weighted - plain
    assert float(extra.min()) >= 0
    share = _time_average(lambda t: 0.5 * w * float(s0**2 * sde.f(t) ** 2 / _gauss_var(sde, s0, t)), sde, t_min)
    assert abs(float(extra.mean()) - share) < 5 * float(extra.std()) / math.sqrt(n), (float(extra.mean()), share)
    a = 1.3
    bad = dsm_loss(_gauss_score(sde, s0, a), sde, x0, make_generator(1), t_min, reduction="none", zero_mode_weight=w)
    excess = bad - weighted
    expected = _time_average(lambda t: 0.5 * (d + w) * (a - 1) ** 2 * float(sde.xi(t) / _gauss_var(sde, s0, t)),
                             sde, t_min)
    assert abs(float(excess.mean()) - expected) < 5 * float(excess.std()) / math.sqrt(n)
    # per sample it is exactly (w/2)(sum_i r_i)^2 / d of the residual r = sqrt(Xi) s + eta (x0 = 0: eta = x_t / sqrt(Xi))
    seen = []

    def spy(x, t):
        seen.append((x.clone(), t.clone()))
        return 0.3 * torch.ones_like(x) - x

    x1 = torch.zeros(5, d, dtype=torch.float64)
    extra = dsm_loss(spy, sde, x1, make_generator(5), t_min, reduction="none", zero_mode_weight=w) \
        - dsm_loss(spy, sde, x1, make_generator(5), t_min, reduction="none")
    x_t, t = seen[0]
    std = sde.xi(t).sqrt()[:, None]
    r = std * spy(x_t, t) + x_t / std
    assert torch.allclose(extra, 0.5 * w * r.sum(dim=1) ** 2 / d, rtol=1e-12, atol=0)


def test_dsm_loss_draws_one_time_per_sample_in_range():
    sde, seen = ve(), []

    def spy(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    x0 = torch.zeros(5000, 3, 3, dtype=torch.float64)
    per = dsm_loss(spy, sde, x0, make_generator(2), t_min=0.2, reduction="none")
    t = seen[0]
    assert t.shape == (5000,) and t.dtype == torch.float64
    assert float(t.min()) >= 0.2 and float(t.max()) <= 1.0 and float(t.std()) > 0.2
    # zero score: the loss is |eta|^2 / 2 summed over the 9 sites, mean 9/2
    assert abs(float(per.mean()) - 4.5) < 5 * math.sqrt(9 / 2) / math.sqrt(5000)


def _t_cdf(t_sampling, t_min, T):
    """The cumulative distribution function of the times drawn by sample_times."""
    def uniform(t):
        return (t - t_min) / (T - t_min)

    def log_uniform(t):
        return torch.log(torch.as_tensor(t / t_min)).numpy() / math.log(T / t_min)

    return {"uniform": uniform, "log-uniform": log_uniform,
            "mixture": lambda t: 0.5 * uniform(t) + 0.5 * log_uniform(t)}[t_sampling]


@pytest.mark.parametrize("t_sampling", ["uniform", "log-uniform", "mixture"])
def test_sample_times_follow_their_distribution(t_sampling):
    sde, t_min = ve(), 1e-4
    t = sample_times(20_000, sde, t_min, t_sampling, make_generator(3))
    assert t.shape == (20_000,) and t.dtype == torch.float64
    assert float(t.min()) >= t_min and float(t.max()) <= sde.T
    assert kstest(t.numpy(), _t_cdf(t_sampling, t_min, sde.T)).pvalue > 1e-3
    # and not the other distributions: the test can tell them apart
    for other in {"uniform", "log-uniform", "mixture"} - {t_sampling}:
        assert kstest(t.numpy(), _t_cdf(other, t_min, sde.T)).pvalue < 1e-6, other


def test_uniform_times_are_the_authors_draw():
    """"uniform" consumes the generator as dsm_loss always did: t = t_min + (T - t_min) u, nothing else drawn."""
    sde, gen, ref = ve(), make_generator(4), make_generator(4)
    t = sample_times(1000, sde, 1e-5, "uniform", gen)
    u = torch.rand(1000, generator=ref, dtype=torch.float64)
    assert torch.equal(t, 1e-5 + (sde.T - 1e-5) * u)
    assert torch.equal(gen.get_state(), ref.get_state())


def test_dsm_loss_with_log_uniform_times_is_the_analytic_minimum():
    """The exact score minimises the loss for any distribution of t: E[loss] = E_q(t) of d/2 s0^2 f^2 / var."""
    sde, s0, d, n, t_min = ve(sigma=10.0), 0.5, 2, 100_000, 1e-5
    x0 = s0 * torch.randn(n, d, generator=make_generator(0), dtype=torch.float64)
    per = dsm_loss(_gauss_score(sde, s0), sde, x0, make_generator(1), t_min, reduction="none",
                   t_sampling="log-uniform")
    # log-uniform density q(t) = 1 / (t log(T / t_min)); integrate over log t
    minimum = quad(lambda lt: 0.5 * d * float(s0**2 * sde.f(math.exp(lt)) ** 2 / _gauss_var(sde, s0, math.exp(lt))),
                   math.log(t_min), math.log(sde.T), limit=200)[0] / math.log(sde.T / t_min)
    uniform_minimum = _time_average(lambda t: 0.5 * d * float(s0**2 * sde.f(t) ** 2 / _gauss_var(sde, s0, t)),
                                    sde, t_min)
    mean, err = float(per.mean()), float(per.std() / math.sqrt(n))
    assert abs(mean - minimum) < 5 * err, (mean, err, minimum)
    assert abs(mean - uniform_minimum) > 10 * err  # a different weighting of the times: a different constant


def test_dsm_loss_bad_input():
    sde, x0 = ve(), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(_gauss_score(sde, 1.0), sde, x0, make_generator(0), reduction="sum")
    with pytest.raises(ValueError, match="t_min"):
        dsm_loss(_gauss_score(sde, 1.0), sde, x0, make_generator(0), t_min=1.0)
    with pytest.raises(ValueError, match="t_min"):
        dsm_loss(_gauss_score(sde, 1.0), sde, x0, make_generator(0), t_min=0.0)
    with pytest.raises(ValueError, match="x0"):
        dsm_loss(_gauss_score(sde, 1.0), sde, torch.zeros(4, dtype=torch.long), make_generator(0))
    with pytest.raises(ValueError, match="t_sampling"):
        dsm_loss(_gauss_score(sde, 1.0), sde, x0, make_generator(0), t_sampling="beta")
    with pytest.raises(ValueError, match="zero_mode_weight"):
        dsm_loss(_gauss_score(sde, 1.0), sde, x0, make_generator(0), zero_mode_weight=-1.0)


# --- training ---------------------------------------------------------------------------------------------------------
def test_training_learns_the_gaussian_score():
    sde, s0 = ve(sigma=10.0), 1.0
    data = s0 * torch.randn(20_000, generator=make_generator(0), dtype=torch.float64)
    cfg = MLPConfig(dim=1, hidden=(32, 32), embed_dim=32, embed_scale=16.0, odd=True)
    net = build_mlp(cfg, sde, generator=make_generator(1))
    untrained = build_mlp(cfg, sde, generator=make_generator(1))
    config = TrainConfig(n_steps=1500, lr=3e-3, batch_size=256, ema_decay=0.99)
    result = train_score_model(net, sde, data, config, make_generator(2), progress=False)
    losses = result.losses
    assert losses.shape == (1500,) and losses.dtype == torch.float64
    minimum = _time_average(lambda t: 0.5 * float(s0**2 / _gauss_var(sde, s0, t)), sde, 1e-5)
    late = float(losses[-300:].mean())
    assert float(losses[:50].mean()) > late  # the loss decreased ...
    assert late == pytest.approx(minimum, rel=0.03)  # ... to its analytic minimum (stat. error ~0.5%)
    for t in (0.1, 0.5, 1.0):  # weighted error sqrt(Xi)|s - s_exact| on +-2 std of p(x, t), relative to the score
        std_t = float(_gauss_var(sde, s0, t).sqrt())
        x = torch.linspace(-2 * std_t, 2 * std_t, 41, dtype=torch.float64)
        tt = torch.full((41,), t, dtype=torch.float64)
        exact = _gauss_score(sde, s0)(x, tt)
        scale = float((exact * sde.xi(t).sqrt()).pow(2).mean().sqrt())
        for model, tol in ((result.sampling_model, 0.15),):
            err = float(((score_fn(model)(x, tt) - exact) * sde.xi(t).sqrt()).pow(2).mean().sqrt())
            assert err < tol * scale, (t, err, scale)
        err0 = float(((score_fn(untrained)(x, tt) - exact) * sde.xi(t).sqrt()).pow(2).mean().sqrt())
        assert err0 > 0.5 * scale  # the check can fail: the untrained net is far off


def test_non_finite_loss_names_the_step():
    sde = ve()
    data = torch.randn(200, 2, generator=make_generator(0))
    net = _small_net()
    with pytest.raises(NonFiniteError, match=r"non-finite .* at step \d+ of 50"):
        train_score_model(net, sde, data, TrainConfig(n_steps=50, lr=1e10, batch_size=32), make_generator(1))

    class NaNAfter(torch.nn.Module):  # returns NaN from its third call on
        def __init__(self):
            super().__init__()
            self.w, self.calls = torch.nn.Parameter(torch.zeros(())), 0

        def forward(self, x, t):
            self.calls += 1
            return self.w * x + (float("nan") if self.calls >= 3 else 0.0)

    with pytest.raises(NonFiniteError, match="at step 3 of 10"):
        train_score_model(NaNAfter(), sde, data, TrainConfig(n_steps=10, batch_size=32), make_generator(1))
    bad = data.clone()
    bad[17, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="training data"):
        train_score_model(_small_net(), sde, bad, TrainConfig(n_steps=10), make_generator(1))


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one"), ({"n_steps": 10, "epochs": 2}, "exactly one"), ({"n_steps": 0}, "n_steps"),
    ({"epochs": 1.5}, "epochs"), ({"n_steps": 10, "lr": 0.0}, "lr"), ({"n_steps": 10, "lr": float("inf")}, "lr"),
    ({"n_steps": 10, "batch_size": 0}, "batch_size"), ({"n_steps": 10, "batch_size": None}, "batch_size"),
    ({"n_steps": 10, "ema_decay": 1.0}, "ema_decay"), ({"n_steps": 10, "ema_decay": -0.5}, "ema_decay"),
    ({"n_steps": 10, "t_min": 0.0}, "t_min"), ({"n_steps": 10, "checkpoint_every": 0}, "checkpoint_every"),
    ({"n_steps": 10, "augment_flip": "yes"}, "augment_flip"), ({"n_steps": 10, "t_sampling": "log"}, "t_sampling"),
    ({"n_steps": 10, "lr_schedule": "linear"}, "lr_schedule"),
    ({"n_steps": 10, "zero_mode_weight": -0.5}, "zero_mode_weight"),
    ({"n_steps": 10, "zero_mode_weight": float("nan")}, "zero_mode_weight"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_learning_rate_schedules():
    const = TrainConfig(n_steps=100, lr=2e-3)
    assert all(learning_rate(const, s, 100) == 2e-3 for s in (0, 50, 99))
    cos = TrainConfig(n_steps=100, lr=2e-3, lr_schedule="cosine")
    assert learning_rate(cos, 0, 100) == 2e-3
    assert learning_rate(cos, 50, 100) == pytest.approx(1e-3, rel=1e-12)
    assert learning_rate(cos, 99, 100) == pytest.approx(0.5 * 2e-3 * (1 + math.cos(math.pi * 0.99)), rel=1e-12)
    assert learning_rate(cos, 99, 100) < 1e-6
    lrs = [learning_rate(cos, s, 100) for s in range(100)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_training_uses_the_schedule(monkeypatch):
    """The optimiser sees the scheduled learning rate at every step."""
    seen, real_step = [], torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    config = TrainConfig(n_steps=8, lr=1e-2, batch_size=4, lr_schedule="cosine")
    train_score_model(_small_net(), ve(), torch.randn(16, 2), config, make_generator(0))
    assert seen == [learning_rate(config, s, 8) for s in range(8)]


def test_bad_arguments():
    sde, data, cfg = ve(), torch.randn(20, 2), TrainConfig(n_steps=2)
    with pytest.raises(ValueError, match="TrainConfig"):
        train_score_model(_small_net(), sde, data, {"n_steps": 2}, make_generator(0))
    with pytest.raises(ValueError, match="generator"):
        train_score_model(_small_net(), sde, data, cfg, 0)
    with pytest.raises(ValueError, match="data"):
        train_score_model(_small_net(), sde, torch.zeros(20, 2, dtype=torch.long), cfg, make_generator(0))
    with pytest.raises(ValueError, match="t_min"):
        train_score_model(_small_net(), ve(T=1e-6), data, cfg, make_generator(0))
    with pytest.raises(ValueError, match="2 numbers per configuration"):
        train_score_model(_small_net(), sde, torch.randn(20, 3), cfg, make_generator(0))


def test_epochs_and_augmentation_visit_every_sample_once(monkeypatch):
    seen, real = [], train_mod.dsm_loss

    def spy(model, sde, x0, generator, t_min, **kwargs):
        seen.append(x0.clone())
        return real(model, sde, x0, generator, t_min, **kwargs)

    monkeypatch.setattr(train_mod, "dsm_loss", spy)
    data = torch.arange(1.0, 51.0).reshape(25, 2)
    config = TrainConfig(epochs=2, batch_size=8, augment_flip=True)
    result = train_score_model(_small_net(), ve(), data, config, make_generator(0))
    assert len(result.losses) == 2 * math.ceil(50 / 8) == len(seen)
    per_epoch = len(seen) // 2
    both = torch.cat([data, -data])
    for epoch in range(2):
        batch = torch.cat(seen[epoch * per_epoch:(epoch + 1) * per_epoch])
        assert torch.equal(batch[batch[:, 0].argsort()], both[both[:, 0].argsort()])
    assert not torch.equal(torch.cat(seen[:per_epoch]), torch.cat(seen[per_epoch:]))  # reshuffled each epoch
    assert result.steps == 2 * per_epoch and result.resumed_from is None


def test_ema_update_rule():
    net = _small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = train_score_model(net, ve(), torch.randn(64, 2), TrainConfig(n_steps=1, ema_decay=0.9, lr=1e-2),
                               make_generator(0))
    after, ema = net.state_dict(), result.ema.state_dict()
    assert not torch.equal(after["out.weight"], before["out.weight"])
    for k in before:
        torch.testing.assert_close(ema[k], 0.9 * before[k] + 0.1 * after[k])
    assert result.sampling_model is result.ema
    no_ema = train_score_model(_small_net(), ve(), torch.randn(64, 2), TrainConfig(n_steps=1, ema_decay=None),
                               make_generator(0))
    assert no_ema.ema is None and no_ema.sampling_model is no_ema.model


# --- checkpoints ------------------------------------------------------------------------------------------------------
RESUME = TrainConfig(n_steps=23, lr=1e-3, batch_size=64, augment_flip=True, ema_decay=0.95, checkpoint_every=5)
RESUME_DATA = torch.randn(150, 2, generator=make_generator(0), dtype=torch.float64)  # 300 augmented: 5 steps/epoch


def _assert_identical(a, b, gen_a, gen_b):
    assert _states_equal(a.model, b.model) and _states_equal(a.ema, b.ema)
    assert torch.equal(a.losses, b.losses)
    assert torch.equal(gen_a.get_state(), gen_b.get_state())


def test_resume_is_bitwise_identical(tmp_path):
    sde = vp()
    gen_ref = make_generator(7)
    ref = train_score_model(_small_net(), sde, RESUME_DATA, RESUME, gen_ref)
    # first leg: 12 steps (mid-epoch) with checkpoints; second leg asks for all 23 and continues from step 12
    first = train_score_model(_small_net(), sde, RESUME_DATA, TrainConfig(**{**RESUME.__dict__, "n_steps": 12}),
                              make_generator(7), checkpoint_dir=tmp_path)
    assert len(first.losses) == 12 and (tmp_path / CHECKPOINT_NAME).is_file()
    gen = make_generator(99)  # its state and the fresh weights are replaced by the checkpoint's
    resumed = train_score_model(_small_net(seed=5), sde, RESUME_DATA, RESUME, gen, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 12
    _assert_identical(ref, resumed, gen_ref, gen)
    # a finished checkpoint is the result: nothing is trained again
    again = train_score_model(_small_net(seed=6), sde, RESUME_DATA, RESUME, make_generator(1), checkpoint_dir=tmp_path)
    assert again.resumed_from == 23 and _states_equal(again.model, ref.model)
    assert list(tmp_path.iterdir()) == [tmp_path / CHECKPOINT_NAME]  # no temporary files left behind


@pytest.mark.parametrize("config", [RESUME, TrainConfig(**{**RESUME.__dict__, "lr_schedule": "cosine",
                                                              "t_sampling": "mixture"})], ids=["constant", "cosine"])
def test_resume_after_a_crash(tmp_path, monkeypatch, config, crash_dsm_loss_at):
    sde = ve()
    gen_ref = make_generator(3)
    ref = train_score_model(_small_net(), sde, RESUME_DATA, config, gen_ref)
    undo = crash_dsm_loss_at(13, KeyboardInterrupt("simulated interruption"))
    with pytest.raises(KeyboardInterrupt):
        train_score_model(_small_net(), sde, RESUME_DATA, config, make_generator(3), checkpoint_dir=tmp_path)
    undo()
    gen = make_generator(3)
    resumed = train_score_model(_small_net(), sde, RESUME_DATA, config, gen, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 10  # the last checkpoint before the crash
    _assert_identical(ref, resumed, gen_ref, gen)


def test_resume_refuses_a_mismatched_checkpoint(tmp_path):
    sde = ve()
    train_score_model(_small_net(), sde, RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="differs"):
        train_score_model(_small_net(), sde, RESUME_DATA, TrainConfig(**{**RESUME.__dict__, "lr": 1e-2}),
                          make_generator(0), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="beyond"):
        train_score_model(_small_net(), sde, RESUME_DATA, TrainConfig(**{**RESUME.__dict__, "n_steps": 20}),
                          make_generator(0), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"belongs to another run; differs in data"):
        train_score_model(_small_net(), sde, RESUME_DATA[:100], RESUME, make_generator(0), checkpoint_dir=tmp_path)


def test_a_checkpoint_of_another_sde_or_other_data_of_the_same_size_is_refused(tmp_path):
    """Before: only a few hyperparameters and the sample count were compared, so a VE-trained network came back as
    the VP model (and one trained on other data of the same size as this one)."""
    train_score_model(_small_net(), ve(), RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    with pytest.raises(CheckpointError, match=r"differs in sde \(checkpoint: 'LinearDriftSDE") as info:
        train_score_model(_small_net(), vp(), RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    assert info.value.path == path and str(path) in str(info.value)
    other = RESUME_DATA + 1e-3  # same size, other values
    with pytest.raises(CheckpointError, match=r"differs in data"):
        train_score_model(_small_net(), ve(), other, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    wider = build_mlp(MLPConfig(dim=2, hidden=(16,)), ve(), generator=make_generator(1))
    with pytest.raises(CheckpointError, match=r"differs in network .*parameters"):
        train_score_model(wider, ve(), RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "flipped weight byte"])
def test_a_corrupt_checkpoint_is_refused_with_its_name(tmp_path, damage):
    train_score_model(_small_net(), ve(), RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    raw = bytearray(path.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    elif damage == "garbage":
        raw = bytearray(b"not a checkpoint" * 10)
    else:  # one byte in the middle of the payload (the serialised weights), the zip structure intact
        payload = torch.load(path, weights_only=True)["payload"].numpy().tobytes()
        at = raw.find(payload[len(payload) // 2: len(payload) // 2 + 64])
        assert at > 0
        raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    expected = "is corrupt: the sha256" if damage == "flipped weight byte" else "is unreadable"
    with pytest.raises(CheckpointError, match=expected) as info:
        train_score_model(_small_net(), ve(), RESUME_DATA, RESUME, make_generator(0), checkpoint_dir=tmp_path)
    assert str(path) in str(info.value)


def test_a_diverging_training_stops_with_an_error():
    """Before: lr = 1e3 drove the loss to ~1e27 and the training finished without a word."""
    data = torch.randn(512, 2, generator=make_generator(0))
    config = TrainConfig(n_steps=400, lr=1e3, batch_size=64, ema_decay=None)
    with pytest.raises(TrainingDiverged, match=r"the loss diverged.*lower the learning rate"):
        train_score_model(_small_net(), ve(), data, config, make_generator(1))
    ok = train_score_model(_small_net(), ve(), data, TrainConfig(n_steps=300, lr=1e-3, batch_size=64),
                           make_generator(1))
    assert ok.steps == 300
    with pytest.raises(ValueError, match="max_loss_growth must be > 1"):
        TrainConfig(n_steps=1, max_loss_growth=0.5)


def test_divergence_is_checked_at_every_step_including_the_last():
    """Before: the check ran every 100 steps, so a 99-step run at lr = 1e3 ended with a loss of ~1e16 and no error."""
    data = torch.randn(512, 2, generator=make_generator(0))
    for n_steps in (99, 37):
        config = TrainConfig(n_steps=n_steps, lr=1e3, batch_size=64, ema_decay=None)
        with pytest.raises(TrainingDiverged, match=r"the loss diverged"):
            train_score_model(_small_net(), ve(), data, config, make_generator(1))


def test_a_checkpoint_of_a_network_scaled_by_another_sde_is_refused(tmp_path):
    """Before: the identity held the loss's SDE only, so a network whose output is divided by the kernel width of
    ve(25) resumed a checkpoint of one scaled by ve(10), and the losses differed from an uninterrupted run."""
    config = TrainConfig(**{**RESUME.__dict__, "n_steps": 5})
    train_score_model(_small_net(sde=ve(10.0)), ve(), RESUME_DATA, config, make_generator(0), checkpoint_dir=tmp_path)
    longer = TrainConfig(**{**RESUME.__dict__, "n_steps": 10})
    with pytest.raises(CheckpointError, match="network_sde"):
        train_score_model(_small_net(sde=ve(25.0)), ve(), RESUME_DATA, longer, make_generator(0),
                          checkpoint_dir=tmp_path)


def test_progress_bar_only_when_asked(capsys):
    data = torch.randn(64, 2, generator=make_generator(0))
    train_score_model(_small_net(), ve(), data, TrainConfig(n_steps=3, batch_size=32), make_generator(0), progress=True)
    assert "training" in capsys.readouterr().err
    train_score_model(_small_net(), ve(), data, TrainConfig(n_steps=3, batch_size=32), make_generator(0))
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a terminal: quiet by default


# --- snapshots along one run ------------------------------------------------------------------------------------------
def _state_equal_to(state: dict, model) -> bool:
    return all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_kept_snapshots_are_the_networks_of_shorter_runs_and_survive_a_crash(tmp_path, monkeypatch, crash_dsm_loss_at):
    sde, cfg = ve(), TrainConfig(**{**RESUME.__dict__, "keep_at": (4, 13)})
    ref = train_score_model(_small_net(), sde, RESUME_DATA, cfg, make_generator(3))
    assert sorted(ref.snapshots) == [4, 13]
    for k in (4, 13):  # constant learning rate: the run's first k steps are the k-step run
        short = train_score_model(_small_net(), sde, RESUME_DATA, TrainConfig(**{**RESUME.__dict__, "n_steps": k}),
                                  make_generator(3))
        assert _state_equal_to(ref.snapshots[k], short.sampling_model)
    assert not _state_equal_to(ref.snapshots[4], ref.sampling_model)
    undo = crash_dsm_loss_at(14, KeyboardInterrupt("simulated interruption"))
    with pytest.raises(KeyboardInterrupt):
        train_score_model(_small_net(), sde, RESUME_DATA, cfg, make_generator(3), checkpoint_dir=tmp_path)
    undo()
    resumed = train_score_model(_small_net(), sde, RESUME_DATA, cfg, make_generator(3), checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 10  # snapshot 4 came from the checkpoint, snapshot 13 from the resumed leg
    for k in (4, 13):
        assert all(torch.equal(ref.snapshots[k][n], v) for n, v in resumed.snapshots[k].items())


@pytest.mark.parametrize("keep_at, match", [((5, 3), "strictly increasing"), ((0,), "keep_at step"),
                                             ((30,), "beyond n_steps"), ("10", "sequence")])
def test_keep_at_is_validated(keep_at, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(n_steps=23, keep_at=keep_at)


def test_keep_at_beyond_an_epoch_count_is_refused():
    with pytest.raises(ValueError, match="beyond the 2 steps"):
        train_score_model(_small_net(), ve(), torch.randn(64, 2), TrainConfig(epochs=1, batch_size=32, keep_at=(3,)),
                          make_generator(0))
