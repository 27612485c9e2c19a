"""Tests of lib.recipes.pipelines.trained_networks and lib.infra.store: a trained network from the store, the artefact
cache or a training, the same whichever the source; checkpoints, resume, snapshots; the store's checksum and modes."""
import json
import math

import pytest
import torch

import lib.diffusion.training as train_mod
from lib.core.random import make_generator
from lib.diffusion.nets import MLPConfig, build_mlp
from lib.diffusion.sde import ve
from lib.diffusion.training import CHECKPOINT_NAME, TrainConfig
from lib.infra import store as store_mod
from lib.infra.cache import ArtefactCache, CacheWarning
from lib.recipes.pipelines.trained_networks import NetworkRecipe, trained

SMALL = MLPConfig(dim=2, hidden=(16, 16), embed_dim=16, embed_scale=16.0)
RESUME = TrainConfig(n_steps=23, lr=1e-3, batch_size=64, augment_flip=True, ema_decay=0.95, checkpoint_every=5)


@pytest.fixture(autouse=True)
def _own_store(tmp_path, monkeypatch):
    """Every test reads and writes a store of its own (not the repository's)."""
    monkeypatch.setenv("LIB_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("LIB_STORE", raising=False)


def _recipe(seed=11, calls=None, config=RESUME, kind="test_net"):
    sde = ve()

    def data(generator):
        if calls is not None:
            calls.append(1)
        return torch.randn(150, 2, generator=generator, dtype=torch.float64), {"scale": 2.5}

    return NetworkRecipe(kind, {"net": SMALL, "n_data": 150}, sde, config, seed, code="lib.diffusion.nets",
                         build=lambda g: build_mlp(SMALL, sde, generator=g), data=data)


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_recipe_is_validated():
    with pytest.raises(ValueError, match="params must be a dict"):
        NetworkRecipe("k", ["net"], ve(), RESUME, 1, code="lib.diffusion.nets", build=None, data=None)
    with pytest.raises(ValueError, match="train must be a TrainConfig"):
        NetworkRecipe("k", {}, ve(), {"n_steps": 3}, 1, code="lib.diffusion.nets", build=None, data=None)
    with pytest.raises(ValueError, match="recipe must be a NetworkRecipe"):
        trained({"kind": "k"})


def test_cache_round_trip_gives_the_same_network(tmp_path):
    cache, calls = ArtefactCache(tmp_path / "cache"), []
    first = trained(_recipe(calls=calls), cache)
    assert first.source == "trained" and len(calls) == 1 and first.steps == 23
    assert first.model is None and first.ema is not None  # keep_last=False: only the averaged weights are kept
    assert first.inputs == {"scale": 2.5} and first.record["extra"]["steps"] == 23
    assert not any(p.name.endswith(".scratch") for p in (cache.root / "test_net").iterdir())  # scratch removed
    second = trained(_recipe(calls=calls), cache)
    assert second.source == "cache" and len(calls) == 1  # no data generated, nothing trained
    assert _states_equal(first.sampling_model, second.sampling_model) and torch.equal(first.losses, second.losses)
    assert math.isfinite(first.wall_time) and second.wall_time == pytest.approx(first.wall_time, rel=1e-9)
    machine = second.record["extra"]["machine"]
    assert machine["arch"] and machine["torch_threads"] >= 1 and second.record["versions"]["torch"]
    third = trained(_recipe(seed=12, calls=calls), cache)  # another seed is another network
    assert third.source == "trained" and len(calls) == 2
    assert not _states_equal(first.sampling_model, third.sampling_model)
    with pytest.raises(ValueError, match="keep_last"):
        first.last_model


def test_keep_last_keeps_the_weights_of_the_last_step(tmp_path):
    cache = ArtefactCache(tmp_path)
    config = TrainConfig(**{**RESUME.__dict__, "keep_last": True})
    reference = train_mod.train_score_model(build_mlp(SMALL, ve(), generator=_init(11)), ve(),
                                            _recipe().data(_data_gen(11))[0], config, _train_gen(11))
    first = trained(_recipe(config=config), cache)
    again = trained(_recipe(config=config), cache)
    assert again.source == "cache" and _states_equal(first.last_model, again.last_model)
    assert _states_equal(reference.model, again.last_model) and _states_equal(reference.ema, again.sampling_model)
    assert not _states_equal(again.last_model, again.sampling_model)


def _seeds(seed):
    g = make_generator(seed)
    return torch.randint(0, 2**62, (2,), generator=g).tolist(), g


def _init(seed):
    return _seeds(seed)[1]


def _data_gen(seed):
    return make_generator(_seeds(seed)[0][0])


def _train_gen(seed):
    return make_generator(_seeds(seed)[0][1])


def test_resumes_after_a_crash_and_recovers_from_a_corrupt_checkpoint(tmp_path, monkeypatch, crash_dsm_loss_at):
    ref = trained(_recipe(), ArtefactCache(tmp_path / "ref"))
    cache = ArtefactCache(tmp_path / "cache")
    undo = crash_dsm_loss_at(17, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError, match="simulated"):
        trained(_recipe(), cache)
    undo()
    resumed = trained(_recipe(), cache)
    assert resumed.resumed_from == 15 and _states_equal(ref.sampling_model, resumed.sampling_model)
    assert torch.equal(ref.losses, resumed.losses)
    # a corrupt checkpoint is set aside and the training starts again, with the same result
    other = ArtefactCache(tmp_path / "other")
    undo = crash_dsm_loss_at(17, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError, match="simulated"):
        trained(_recipe(), other)
    undo()
    scratch = next((other.root / "test_net").glob("*.scratch"))
    (scratch / CHECKPOINT_NAME).write_bytes(b"corrupt")
    with pytest.warns(CacheWarning, match="is unreadable.*moved to.*starts again"):
        recovered = trained(_recipe(), other)
    assert recovered.resumed_from is None and _states_equal(ref.sampling_model, recovered.sampling_model)


def test_snapshots_are_kept(tmp_path):
    cache = ArtefactCache(tmp_path)
    config = TrainConfig(**{**RESUME.__dict__, "keep_at": (4, 13)})
    first = trained(_recipe(config=config), cache)
    again = trained(_recipe(config=config), cache)
    assert again.source == "cache" and sorted(again.snapshots) == [4, 13]
    assert all(torch.equal(first.snapshots[13][n], v) for n, v in again.snapshots[13].items())


def _put_in_store(cache, recipe, scale="quick"):
    entry = cache.entry_dir(recipe.kind, recipe.key_params(), code=recipe.code)
    return store_mod.NetworkStore().put(scale, entry)


def test_a_network_in_the_store_is_loaded_from_it(tmp_path):
    cache = ArtefactCache(tmp_path / "cache")
    made = trained(_recipe(), cache)
    entry = _put_in_store(cache, _recipe())
    assert entry.is_relative_to(tmp_path / "store" / "quick" / "test_net")
    fresh = ArtefactCache(tmp_path / "fresh")
    calls = []
    loaded = trained(_recipe(calls=calls), fresh)
    assert loaded.source == "store" and not calls and not (fresh.root / "test_net").exists()
    assert _states_equal(made.sampling_model, loaded.sampling_model) and torch.equal(made.losses, loaded.losses)
    assert loaded.inputs == made.inputs and loaded.wall_time == pytest.approx(made.wall_time)
    assert store_mod.NetworkStore().entries("quick") == [entry] and store_mod.NetworkStore().size("quick") > 0


def test_a_damaged_store_entry_is_an_error_naming_the_file(tmp_path):
    cache = ArtefactCache(tmp_path / "cache")
    trained(_recipe(), cache)
    entry = _put_in_store(cache, _recipe())
    data = entry / "data.pt"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(store_mod.StoreError, match=r"data\.pt does not match its checksum") as info:
        trained(_recipe(), ArtefactCache(tmp_path / "fresh"))
    assert info.value.path == data
    (entry / "provenance.json").write_text("{not json")
    with pytest.raises(store_mod.StoreError, match="provenance.json cannot be read"):
        trained(_recipe(), ArtefactCache(tmp_path / "fresh"))
    record = json.loads((cache.entry_dir("test_net", _recipe().key_params(), code="lib.diffusion.nets")
                         / "provenance.json").read_text())
    (entry / "provenance.json").write_text(json.dumps({**record, "key": "0" * 64}))
    with pytest.raises(store_mod.StoreError, match="another key"):
        trained(_recipe(), ArtefactCache(tmp_path / "fresh"))


def test_store_modes(tmp_path, monkeypatch):
    cache = ArtefactCache(tmp_path / "cache")
    trained(_recipe(), cache)
    _put_in_store(cache, _recipe())
    monkeypatch.setenv("LIB_STORE", "off")  # the store is not read: trained from scratch in an empty cache
    assert trained(_recipe(), ArtefactCache(tmp_path / "off")).source == "trained"
    monkeypatch.setenv("LIB_STORE", "require")
    assert trained(_recipe(), ArtefactCache(tmp_path / "req")).source == "store"
    with pytest.raises(store_mod.StoreMissing, match="make models"):
        trained(_recipe(seed=99), ArtefactCache(tmp_path / "req"))
    monkeypatch.setenv("LIB_STORE", "sometimes")
    with pytest.raises(ValueError, match="LIB_STORE must be one of"):
        trained(_recipe(), cache)


def test_store_put_refuses_a_damaged_cache_entry(tmp_path):
    cache = ArtefactCache(tmp_path / "cache")
    trained(_recipe(), cache)
    entry = cache.entry_dir("test_net", _recipe().key_params(), code="lib.diffusion.nets")
    (entry / "data.pt").write_bytes(b"damaged")
    with pytest.raises(store_mod.StoreError, match="does not match its checksum"):
        store_mod.NetworkStore().put("quick", entry)
    with pytest.raises(ValueError, match="scale"):
        store_mod.NetworkStore().scale_root("huge")
