"""Tests of lib.infra.cache: round trip, keys, provenance, corrupt entries, atomic writes, cache root."""
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lib
from lib.infra import cache as cache_mod
from lib.infra.cache import ArtefactCache, CacheWarning, default_root


@dataclasses.dataclass(frozen=True)
class Schedule:
    sigma: float = 10.0  # noise scale
    T: float = 1.0  # final time


@dataclasses.dataclass(frozen=True)
class OtherSchedule:
    sigma: float = 10.0  # same fields, other class
    T: float = 1.0  # final time


#: the module whose code "computes" the artefacts of these tests (any module of lib; its closure is in the key)
CODE = "lib.core.files"
PARAMS = {"sde": Schedule(), "n": 1000, "eps": 1e-3, "shape": (4, 4), "dtype": torch.float64, "name": "ve"}


@pytest.fixture
def cache(tmp_path):
    return ArtefactCache(tmp_path / "cache")


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(5, 3, generator=gen, dtype=torch.float64),
        "z": torch.randn(4, generator=gen, dtype=torch.complex64),
        "arr": np.linspace(0.0, 1.0, 7),
        "iarr": np.arange(6, dtype=np.int32).reshape(2, 3),
        "carr": np.array([1 + 2j, -0.5j]),
        "n": 7, "f": 0.1, "s": "hello", "none": None, "np_scalar": np.float64(2.5),
        "list": [1, 2.5, "three", torch.ones(2)],
        "state": torch.nn.Linear(3, 2).state_dict(),
        "nested": {"a": {"b": torch.arange(3)}, "c": np.zeros(2)},
    }


def test_round_trip(cache, data):
    cache.save("ensemble", PARAMS, data, seed=42, code=CODE)
    out = cache.load("ensemble", PARAMS, code=CODE)
    assert set(out) == set(data)
    for k in ("x", "z"):
        assert isinstance(out[k], torch.Tensor) and out[k].dtype == data[k].dtype
        assert torch.equal(out[k], data[k])
    for k in ("arr", "iarr", "carr"):
        assert isinstance(out[k], np.ndarray) and out[k].dtype == data[k].dtype
        np.testing.assert_array_equal(out[k], data[k])
    assert out["n"] == 7 and out["f"] == 0.1 and out["s"] == "hello" and out["none"] is None
    assert out["np_scalar"] == 2.5
    assert out["list"][:3] == [1, 2.5, "three"] and torch.equal(out["list"][3], torch.ones(2))
    assert isinstance(out["nested"]["c"], np.ndarray) and torch.equal(out["nested"]["a"]["b"], torch.arange(3))
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(out["state"])  # a state_dict comes back usable
    assert torch.equal(model.weight, data["state"]["weight"])


def test_data_loads_with_weights_only(cache, data):
    path = cache.save("ensemble", PARAMS, data, code=CODE)
    raw = torch.load(path / "data.pt", weights_only=True)
    assert torch.equal(raw["x"], data["x"])


def test_provenance(cache, data):
    path = cache.save("ensemble", PARAMS, data, seed=42, extra={"note": "test"}, wall_time=1.5, code=CODE)
    prov = cache.provenance("ensemble", PARAMS, code=CODE)
    assert prov["seed"] == 42 and prov["wall_time"] == 1.5 and prov["extra"] == {"note": "test"}
    assert prov["params"]["sde"] == {"__class__": "Schedule", "sigma": 10.0, "T": 1.0}
    assert prov["params"]["dtype"] == "torch.float64" and prov["params"]["shape"] == [4, 4]
    assert set(prov["versions"]) >= {"python", "torch", "numpy", "lib"}
    assert prov["versions"]["lib"] == lib.__version__ and prov["created"]
    assert prov["sha256"] == hashlib.sha256((path / "data.pt").read_bytes()).hexdigest()
    assert json.loads((path / "provenance.json").read_text()) == prov


def test_absent_entry(cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load("ensemble", PARAMS, code=CODE) is None
        assert cache.provenance("ensemble", PARAMS, code=CODE) is None


def test_key_stable_and_order_independent(cache):
    k1 = cache.key("ensemble", PARAMS, code=CODE)
    assert k1 == cache.key("ensemble", dict(PARAMS), code=CODE) and len(k1) == 64
    permuted = dict(reversed(list(PARAMS.items())))
    assert list(permuted) != list(PARAMS) and cache.key("ensemble", permuted, code=CODE) == k1
    assert ArtefactCache(cache.root / "elsewhere").key("ensemble", PARAMS, code=CODE) == k1  # independent of the root
    assert cache.entry_dir("ensemble", PARAMS, code=CODE) == cache.root / "ensemble" / k1[:16]


def test_key_same_in_another_process(cache):
    code = ("import torch, dataclasses; from lib.infra.cache import ArtefactCache\n"
            "@dataclasses.dataclass(frozen=True)\nclass Schedule:\n    sigma: float = 10.0\n    T: float = 1.0\n"
            "p = {'name': 've', 'shape': (4, 4), 'eps': 1e-3, 'n': 1000, 'dtype': torch.float64, 'sde': Schedule()}\n"
            "print(ArtefactCache('.').key('ensemble', p, code='lib.core.files'))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == cache.key("ensemble", PARAMS, code=CODE)


@pytest.mark.parametrize("change", [
    {"n": 1001}, {"eps": 1.0000001e-3}, {"sde": Schedule(sigma=25.0)}, {"sde": OtherSchedule()},
    {"dtype": torch.float32}, {"shape": (4, 5)}, {"name": "vp"}, {"extra": 0},
])
def test_changed_param_changes_key(cache, change):
    assert cache.key("ensemble", {**PARAMS, **change}, code=CODE) != cache.key("ensemble", PARAMS, code=CODE)


def test_key_details(cache):
    assert cache.key("a", {"x": 0.1}, code=CODE) != cache.key("a", {"x": 0.1000001}, code=CODE)
    assert cache.key("a", {"x": 0.1}, code=CODE) != cache.key("b", {"x": 0.1}, code=CODE)
    assert cache.key("a", {"x": True}, code=CODE) != cache.key("a", {"x": 1}, code=CODE)
    assert cache.key("a", {"x": (1, 2)}, code=CODE) == cache.key("a", {"x": [1, 2]}, code=CODE)
    assert cache.key("a", {"x": np.float64(0.1)}, code=CODE) == cache.key("a", {"x": 0.1}, code=CODE)


@pytest.mark.parametrize("params, where", [
    ({"gen": torch.Generator()}, r"params\['gen'\]"),
    ({"net": {"layers": [64, object()]}}, r"params\['net'\]\['layers'\]\[1\]"),
    ({"x": torch.ones(2)}, r"params\['x'\]"),
    ({"x": {1: 2}}, r"params\['x'\]"),
])
def test_unsupported_param_names_the_key(cache, params, where):
    with pytest.raises(TypeError, match=where):
        cache.key("a", params, code=CODE)


def test_bad_kind(cache):
    for kind in ("", "a/b", "../x", ".hidden"):
        with pytest.raises(ValueError, match="kind"):
            cache.key(kind, {}, code=CODE)


def test_unsupported_data_is_not_written(cache):
    with pytest.raises(TypeError, match=r"data\['bad'\]"):
        cache.save("a", {}, {"ok": 1, "bad": object()}, code=CODE)
    assert cache.load("a", {}, code=CODE) is None


def test_get_or_compute_computes_once(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(4.0)}

    first = cache.get_or_compute("a", {"n": 4}, compute, seed=1, code=CODE)
    second = cache.get_or_compute("a", {"n": 4}, compute, seed=1, code=CODE)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"])
    assert cache.provenance("a", {"n": 4}, code=CODE)["wall_time"] >= 0.0
    cache.get_or_compute("a", {"n": 5}, compute, code=CODE)  # a changed parameter never reuses the entry
    assert len(calls) == 2


def _truncate(path):
    blob = (path / "data.pt").read_bytes()
    (path / "data.pt").write_bytes(blob[: len(blob) // 2])


def _flip_byte(path):
    blob = bytearray((path / "data.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "data.pt").write_bytes(bytes(blob))


def _stale_key(path):
    prov = json.loads((path / "provenance.json").read_text())
    prov["key"] = "0" * 64
    (path / "provenance.json").write_text(json.dumps(prov))


CORRUPTIONS = {
    "truncated data": _truncate,
    "checksum mismatch": _flip_byte,
    "bad json": lambda p: (p / "provenance.json").write_text("{not json"),
    "missing provenance": lambda p: (p / "provenance.json").unlink(),
    "missing data": lambda p: (p / "data.pt").unlink(),
    "stale key": _stale_key,
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_entry_is_moved_aside_and_recomputed(cache, corrupt):
    path = cache.save("a", {"n": 1}, {"x": torch.arange(100.0)}, code=CODE)
    corrupt(path)
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.ones(3)}

    with pytest.warns(CacheWarning, match="corrupt"):
        out = cache.get_or_compute("a", {"n": 1}, compute, code=CODE)
    assert calls == [1] and torch.equal(out["x"], torch.ones(3))
    aside = list(path.parent.glob(path.name + ".corrupt-*"))
    assert len(aside) == 1
    assert {f.name: f.read_bytes() for f in aside[0].iterdir()} == before  # nothing lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.load("a", {"n": 1}, code=CODE)["x"], torch.ones(3))


def test_corrupt_entry_load_returns_none(cache):
    path = cache.save("a", {"n": 1}, {"x": torch.arange(10.0)}, code=CODE)
    _flip_byte(path)
    with pytest.warns(CacheWarning):
        assert cache.load("a", {"n": 1}, code=CODE) is None
    assert not path.exists()


def test_interrupted_write_leaves_no_entry(cache, monkeypatch):
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:20])  # half written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        cache.save("a", {"n": 1}, {"x": torch.arange(10.0)}, code=CODE)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load("a", {"n": 1}, code=CODE) is None
    assert list((cache.root / "a").iterdir()) == []  # no temporary leftovers


def test_overwrite(cache):
    cache.save("a", {"n": 1}, {"x": 1}, code=CODE)
    cache.save("a", {"n": 1}, {"x": 2}, code=CODE)
    assert cache.load("a", {"n": 1}, code=CODE) == {"x": 2}
    assert [p.name for p in (cache.root / "a").iterdir()] == [cache.key("a", {"n": 1}, code=CODE)[:16]]


def test_scratch_dir(cache):
    scratch = cache.scratch_dir("train", PARAMS, code=CODE)
    assert scratch.is_dir() and scratch != cache.entry_dir("train", PARAMS, code=CODE)
    assert scratch == cache.scratch_dir("train", PARAMS, code=CODE)
    assert scratch != cache.scratch_dir("train", {**PARAMS, "n": 1}, code=CODE)
    (scratch / "checkpoint.pt").write_bytes(b"x")
    assert cache.load("train", PARAMS, code=CODE) is None
    cache.clear_scratch("train", PARAMS, code=CODE)
    assert not scratch.exists()


def test_lib_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LIB_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_root() == (tmp_path / "elsewhere").resolve()
    cache = ArtefactCache()
    assert cache.root == (tmp_path / "elsewhere").resolve()
    assert cache.save("a", {}, {"x": 1}, code=CODE).is_relative_to(tmp_path / "elsewhere")


def test_default_root_in_checkout(monkeypatch):
    monkeypatch.delenv("LIB_CACHE_DIR", raising=False)
    checkout = Path(lib.__file__).resolve().parent.parent
    assert (checkout / "pyproject.toml").is_file()
    assert default_root() == checkout / ".artefacts"
    assert ArtefactCache().root == checkout / ".artefacts"


def test_default_root_outside_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("LIB_CACHE_DIR", raising=False)
    monkeypatch.setattr(cache_mod, "_PACKAGE_DIR", tmp_path / "site-packages" / "lib")
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path.resolve() / ".artefacts"


def test_key_includes_the_code_fingerprint(tmp_path, monkeypatch):
    cache = cache_mod.ArtefactCache(tmp_path)
    before = cache.key("k", {"a": 1}, code=CODE)
    assert cache.key("k", {"a": 1}, code="lib.core.checks") != before  # other code, other key
    monkeypatch.setattr(cache_mod, "code_fingerprint", lambda *args: "changed library")
    assert cache.key("k", {"a": 1}, code=CODE) != before


def test_key_refuses_a_code_that_is_not_a_module_of_lib(cache):
    for code in ("lib.no_such_module", "numpy", (), None):
        with pytest.raises((ValueError, TypeError), match="module"):
            cache.key("k", {"a": 1}, code=code)


def test_provenance_names_the_modules_of_the_code(cache):
    cache.save("k", {"a": 1}, {"x": 1}, code=CODE)
    prov = cache.provenance("k", {"a": 1}, code=CODE)
    assert prov["code_modules"] == ["lib.core.files"]


# --- nothing computed is lost (issue: reliability) ------------------------------------------------------------------
def test_unwritable_cache_returns_the_result_and_warns(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    cache = ArtefactCache(tmp_path / "file" / "cache")  # mkdir below a regular file fails, also for root
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3.0)}

    with pytest.warns(CacheWarning, match="not writable.*computed and returned but not stored"):
        out = cache.get_or_compute("kind", {"a": 1}, compute, code=CODE)
    assert calls == [1] and torch.equal(out["x"], torch.arange(3.0))


def test_a_failing_write_after_compute_returns_the_result(tmp_path, monkeypatch):
    cache = ArtefactCache(tmp_path)

    def broken_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "_write", broken_write)
    with pytest.warns(CacheWarning, match="could not store.*returned but not cached"):
        out = cache.get_or_compute("kind", {"a": 1}, lambda: {"x": np.arange(3.0), "n": 2}, code=CODE)
    np.testing.assert_array_equal(out["x"], np.arange(3.0))
    assert out["n"] == 2


def test_corrupt_entry_in_a_read_only_cache_is_recomputed(tmp_path, monkeypatch):
    cache = ArtefactCache(tmp_path)
    path = cache.save("kind", {"a": 1}, {"x": torch.ones(2)}, code=CODE)
    (path / "data.pt").write_bytes(b"garbage")

    def no_move(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(ArtefactCache, "_move_aside", staticmethod(no_move))
    with pytest.warns(CacheWarning, match="could not be moved aside"):
        out = cache.get_or_compute("kind", {"a": 1}, lambda: {"x": torch.zeros(2)}, code=CODE)
    assert torch.equal(out["x"], torch.zeros(2))


def test_an_entry_replaced_while_it_is_read_is_not_moved_aside(tmp_path, monkeypatch):
    cache = ArtefactCache(tmp_path)
    path = cache.save("kind", {"a": 1}, {"x": torch.ones(2)}, code=CODE)
    real, calls = ArtefactCache._read_entry, []

    def flaky(p, key):
        calls.append(1)
        if len(calls) == 1:  # the writer's os.replace happened between stat and read
            raise FileNotFoundError(2, "No such file or directory", str(p / "provenance.json"))
        return real(p, key)

    monkeypatch.setattr(ArtefactCache, "_read_entry", staticmethod(flaky))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        out = cache.load("kind", {"a": 1}, code=CODE)
    assert torch.equal(out["x"], torch.ones(2)) and len(calls) == 2 and path.exists()


def test_orphaned_temporary_directories_are_cleaned(tmp_path):
    cache = ArtefactCache(tmp_path)
    cache.save("kind", {"a": 0}, {"x": 1}, code=CODE)
    old = tmp_path / "kind" / ".tmp-0123456789abcdef-deadbeef"
    fresh = tmp_path / "kind" / ".tmp-0123456789abcdef-feedface"
    for d in (old, fresh):
        d.mkdir()
        (d / "data.pt").write_bytes(b"half")
    os.utime(old, (time.time() - 2 * cache_mod.ORPHAN_AGE,) * 2)
    cache.save("kind", {"a": 1}, {"x": 2}, code=CODE)
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a writer at work


def test_batches_resume_and_survive_another_process_clearing_the_scratch_directory(cache):
    """Batches are saved as they finish and read back on the next call; when another process (the same artefact made
    by a second chapter at once) clears the scratch directory in the middle of a run, the run still returns every
    batch and saves the rest (the collision of two CI workers that this guards against)."""
    calls = []

    def compute(b):
        calls.append(b)
        if b == 1:  # the other process finished, saved the artefact and cleared the scratch directory
            cache.clear_scratch("batched", PARAMS, code=CODE)
        return {"b": torch.tensor(float(b))}

    out = cache.batches("batched", PARAMS, 3, compute, code=CODE)
    assert [float(d["b"]) for d in out] == [0.0, 1.0, 2.0] and calls == [0, 1, 2]
    scratch = cache.scratch_dir("batched", PARAMS, code=CODE)
    assert sorted(p.name for p in scratch.iterdir()) == ["batch_00001.pt", "batch_00002.pt"]
    again = cache.batches("batched", PARAMS, 3, lambda b: calls.append(b) or {"b": torch.tensor(float(b))}, code=CODE)
    assert [float(d["b"]) for d in again] == [0.0, 1.0, 2.0] and calls == [0, 1, 2, 0]  # only the cleared batch again
