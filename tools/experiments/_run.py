"""The step every phi^4 experiment script shares: train a DMSpec and generate from it, both through the cache."""
import time

import torch

from lib.infra.cache import ArtefactCache
from lib.recipes import phi4_diffusion as dm


def train_and_generate(spec: dm.DMSpec, sample: dm.SampleSpec):
    """``(generated, training, train_seconds, sample_seconds)``: the generated and the training configurations in
    float64, and the wall times of training and sampling (near 0 when cached)."""
    cache = ArtefactCache()
    t0 = time.perf_counter()
    dm.trained_model(spec, cache, progress=False)
    t1 = time.perf_counter()
    generated = dm.generate(spec, sample, cache, progress=False)["configs"].double()
    t2 = time.perf_counter()
    training = dm.training_configs(spec, cache, progress=False).double()
    return generated, training, t1 - t0, t2 - t1
