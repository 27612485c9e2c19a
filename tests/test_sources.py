"""Tests of lib.infra.sources: an artefact's key covers the code that computed it, its import closure in lib, and
nothing else (issue: the book on a budget)."""
import shutil
from pathlib import Path

import pytest

import lib
from lib.infra import sources
from lib.recipes.book_networks import book_networks
from lib.recipes.pipelines import flow_proposals, lattice_likelihood, lattice_sampling, lattice_training, phi4_ensembles

LIB_DIR = Path(lib.__file__).resolve().parent
#: the modules that compute every phi^4 artefact: HMC ensembles, trained networks, samples, likelihoods, proposals
PHI4_CODE = [phi4_ensembles.__name__, lattice_training.__name__, lattice_sampling.__name__,
             lattice_likelihood.__name__, flow_proposals.__name__]


@pytest.fixture(scope="module")
def networks():
    return book_networks("quick")


@pytest.fixture
def lib_copy(tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(LIB_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _fingerprints(codes, package_dir):
    return [sources.code_fingerprint(code, package_dir) for code in codes]


def _edit(copy: Path, module: str):
    path = copy.joinpath(*module.split(".")[1:]).with_suffix(".py")
    path.write_text(path.read_text() + "\n# an edit\n")


def test_import_closure_follows_the_imports_and_leaves_out_storage():
    closure = sources.import_closure("lib.recipes.pipelines.lattice_training")
    assert {"lib.diffusion.training", "lib.diffusion.lattice_nets", "lib.physics.hmc",
            "lib.recipes.pipelines.phi4_ensembles", "lib.recipes.pipelines.trained_networks"} <= set(closure)
    assert "lib.infra.cache" not in closure and "lib.infra.store" not in closure  # they store, they do not compute
    assert "lib.diffusion.solvers" not in closure and "lib.infra.report" not in closure
    assert "lib" not in closure and "lib.diffusion" not in closure  # a parent package only when imported itself
    assert "lib.stats" in sources.import_closure("lib.recipes.pipelines.flow_proposals")  # `from lib import stats`
    assert {"lib.stats.moments", "lib.stats.resampling"} <= set(sources.imports_of("lib.stats"))
    with pytest.raises(ValueError, match="not a module of lib"):
        sources.import_closure("lib.recipes.no_such_module")


def test_relative_imports_and_package_attributes(tmp_path):
    pkg = tmp_path / "lib"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from lib.a.b import f\n")
    (pkg / "a" / "b.py").write_text("def f():\n    from . import c\n    return c\n")
    (pkg / "a" / "c.py").write_text("x = 1\n")
    (pkg / "d.py").write_text("from lib.a import f\nimport numpy\n")
    assert sources.import_closure("lib.d", pkg) == ("lib.a", "lib.a.b", "lib.a.c", "lib.d")
    before = sources.code_fingerprint("lib.d", pkg)
    (pkg / "a" / "c.py").write_text("x = 2\n")
    assert sources.code_fingerprint("lib.d", pkg) != before


def test_every_network_computes_its_data_and_weights_within_its_code(networks):
    """The data and the network of a recipe come from modules inside the closure of its ``code``, so that the key
    covers them (a recipe handed data by a module outside its closure would not see that module change)."""
    for net in networks:
        closure = sources.import_closure(net.recipe.code)
        for part in (net.recipe.data, net.recipe.build):
            assert part.__module__ in closure, (net.chapter, net.name, part.__module__)


def test_editing_the_report_module_or_a_chapter_module_changes_no_network_key(networks, lib_copy):
    codes = [net.recipe.code for net in networks]
    before = _fingerprints(codes, lib_copy)
    _edit(lib_copy, "lib.infra.report")
    _edit(lib_copy, "lib.infra.cache")
    assert _fingerprints(codes, lib_copy) == before
    # a chapter's settings change only that chapter's keys
    _edit(lib_copy, "lib.recipes.deep_broken_phase")
    _edit(lib_copy, "lib.recipes.phi4_diffusion")
    assert _fingerprints(codes, lib_copy) == before


def test_editing_the_training_loop_changes_every_network_key(networks, lib_copy):
    codes = [net.recipe.code for net in networks]
    before = _fingerprints(codes, lib_copy)
    _edit(lib_copy, "lib.diffusion.training")
    after = _fingerprints(codes, lib_copy)
    assert all(a != b for a, b in zip(after, before))


def test_editing_the_complex_langevin_models_changes_no_phi4_key(networks, lib_copy):
    codes = PHI4_CODE + [net.recipe.code for net in networks if net.recipe.kind.startswith("phi4")]
    before = _fingerprints(codes, lib_copy)
    _edit(lib_copy, "lib.physics.cl_models")
    assert _fingerprints(codes, lib_copy) == before
    cl = [net.recipe.code for net in networks if net.recipe.kind == "cl-diffusion-score"]
    cl_before = _fingerprints(cl, LIB_DIR)
    assert cl and all(a != b for a, b in zip(_fingerprints(cl, lib_copy), cl_before))


def test_editing_the_sampler_changes_the_samples_but_not_the_networks(networks, lib_copy):
    nets = [net.recipe.code for net in networks if net.recipe.kind == "phi4-dm-weights"]
    before, samples = _fingerprints(nets, lib_copy), sources.code_fingerprint(lattice_sampling.__name__, lib_copy)
    _edit(lib_copy, "lib.diffusion.solvers")
    assert _fingerprints(nets, lib_copy) == before
    assert sources.code_fingerprint(lattice_sampling.__name__, lib_copy) != samples
