"""Shared test configuration.

The statistical tests run many small elementwise operations on tensors of 10^4-10^5 elements.
torch splits those over its OpenMP threads; on a 2-core machine that is busy with anything else
the threads then spin at every barrier and the tests get 10-100 times slower.  One thread keeps
the whole suite at about a minute, loaded or not.
"""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_repository_store(tmp_path_factory, monkeypatch):
    """Unit tests train their own small networks: they never read the repository's store of trained networks (an
    empty store of their own instead) and ignore a LIB_STORE of the calling environment (CI's chapters stage sets
    ``require``).  ``tests/test_store.py`` reads the repository's store by its path."""
    monkeypatch.setenv("LIB_STORE_DIR", str(tmp_path_factory.mktemp("store")))
    monkeypatch.delenv("LIB_STORE", raising=False)


@pytest.fixture
def crash_at(monkeypatch):
    """``crash(owner, name, call, exc)``: make the function ``owner.name`` raise ``exc`` at its ``call``-th call (a
    simulated crash or interruption of a long run); returns a function that undoes it."""

    def crash(owner, name: str, call: int, exc: BaseException):
        real, calls = getattr(owner, name), []

        def crashing(*args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                raise exc
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, crashing)
        return lambda: monkeypatch.setattr(owner, name, real)

    return crash


@pytest.fixture
def crash_dsm_loss_at(crash_at):
    """``crash(call, exc)``: make the training loop's loss raise ``exc`` at its ``call``-th evaluation; returns a
    function that undoes it."""
    import lib.diffusion.training as train_mod

    return lambda call, exc: crash_at(train_mod, "dsm_loss", call, exc)
