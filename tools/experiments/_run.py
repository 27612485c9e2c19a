"""The step every phi^4 experiment script shares: train a DMSpec and generate from it, both through the cache."""
import time


from lib.infra.cache import ArtefactCache
from lib.recipes.pipelines import lattice_sampling as dms
from lib.recipes.pipelines import lattice_training as dmt
def train_and_generate(spec: dmt.DMSpec, sample: dms.SampleSpec):
    """``(generated, training, train_seconds, sample_seconds)``: the generated and the training configurations in
    float64, and the wall times of training and sampling (near 0 when cached)."""
    cache = ArtefactCache()
    t0 = time.perf_counter()
    dmt.trained_model(spec, cache, progress=False)
    t1 = time.perf_counter()
    generated = dms.generate(spec, sample, cache, progress=False)["configs"].double()
    t2 = time.perf_counter()
    training = dmt.training_configs(spec, cache, progress=False).double()
    return generated, training, t1 - t0, t2 - t1
