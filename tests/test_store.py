"""The repository's store of trained networks against the current code and recipes (issue: the book on a budget).

Computing the keys trains nothing: a store that lacks a network the quick-scale book needs fails here, naming the
chapter, the network and `make models`, so that CI never falls back to a cold retraining unnoticed.  One network is
retrained from its recipe and compared with the store bit for bit.
"""
import json
from pathlib import Path

import pytest
import torch

from lib.infra.cache import ArtefactCache
from lib.infra.store import NetworkStore
from lib.recipes.book_networks import book_networks
from lib.recipes.pipelines.trained_networks import machine, trained


#: the repository's store (whatever LIB_STORE_DIR says: this test is about the committed store)
REPOSITORY_STORE = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture(scope="module")
def store():
    return NetworkStore(REPOSITORY_STORE)


@pytest.fixture(scope="module")
def networks():
    return book_networks("quick")


def _entry(store, net):
    return store.find(net.recipe.kind, net.recipe.key_params(), code=net.recipe.code)


def test_the_store_holds_every_network_of_the_quick_scale_book(store, networks):
    missing = [f"{net.chapter}: {net.name} ({net.recipe.kind})" for net in networks if _entry(store, net) is None]
    assert not missing, (f"the store {store.root} lacks {len(missing)} trained network(s) that the current code and "
                         "recipes need; run `make models` and commit models/:\n  " + "\n  ".join(missing))


def test_every_stored_network_is_intact_and_needed(store, networks):
    needed = set()
    for net in networks:
        found = store.load(net.recipe.kind, net.recipe.key_params(), code=net.recipe.code)  # checks the sha256
        if found is not None:
            data, record = found
            assert "sampling" in data and data["losses"].numel() == record["extra"]["steps"], (net.chapter, net.name)
            needed.add(_entry(store, net))
    extra = [str(p) for p in store.entries("quick") if p not in needed]
    assert not extra, "store entries that no recipe needs (`make models` removes them): " + ", ".join(extra)


def test_the_store_fits_its_budget(store):
    assert store.size("quick") <= 25 * 2**20, f"the store holds {store.size('quick') / 2**20:.1f} MiB, budget 25 MiB"


def _cheapest(store, networks):
    """The stored network whose training took the least wall time, among those trained on this machine kind."""
    best = None
    for net in networks:
        path = _entry(store, net)
        if path is None:
            continue
        record = json.loads((path / "provenance.json").read_text())
        if best is None or record["wall_time"] < best[1]["wall_time"]:
            best = (net, record)
    return best


def test_retraining_the_cheapest_network_reproduces_the_store_bit_for_bit(store, networks, tmp_path, monkeypatch):
    """Training is deterministic on one CPU thread: the same recipe on the same kind of machine (CPU model and torch
    version) gives the same weights and losses bit for bit.  On another kind the floating-point results may differ in
    the last bits and grow over the steps, so the test is skipped there, saying why."""
    found = _cheapest(store, networks)
    if found is None:
        pytest.fail("the store is empty: run `make models`")
    net, record = found
    here, there = machine(), record["extra"]["machine"]
    if (here["cpu"], torch.__version__) != (there["cpu"], record["versions"]["torch"]):
        pytest.skip(f"the stored network was trained on {there['cpu']} with torch {record['versions']['torch']}, this "
                    f"is {here['cpu']} with torch {torch.__version__}: bitwise equality is not expected")
    monkeypatch.setenv("LIB_STORE", "off")
    monkeypatch.setenv("LIB_CACHE_DIR", str(tmp_path))
    torch.set_num_threads(there["torch_threads"])
    fresh = trained(net.recipe, ArtefactCache(tmp_path))
    assert fresh.source == "trained"
    data, _ = store.load(net.recipe.kind, net.recipe.key_params(), code=net.recipe.code)
    assert torch.equal(fresh.losses, data["losses"]), f"{net.chapter}: {net.name}: the loss curves differ"
    stored = data["sampling"]
    for name, value in fresh.sampling_model.state_dict().items():
        assert torch.equal(value, stored[name]), f"{net.chapter}: {net.name}: {name} differs"
