"""lib.infra.profile: scale, device and thread selection."""
import pytest
import torch

from lib.infra import profile


def test_defaults(monkeypatch):
    for name in ("LIB_SCALE", "LIB_DEVICE", "LIB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    prof = profile.current()
    assert prof.scale == "quick" and not prof.is_paper
    assert prof.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert prof.pick(quick=1, paper=2) == 1
    if prof.device == "cpu":
        assert prof.threads == 1


def test_environment(monkeypatch):
    monkeypatch.setenv("LIB_SCALE", "Paper")
    monkeypatch.setenv("LIB_DEVICE", "cpu")
    monkeypatch.setenv("LIB_THREADS", "2")
    prof = profile.current()
    assert (prof.scale, prof.device, prof.threads) == ("paper", "cpu", 2)
    assert prof.pick(quick=1, paper=2) == 2
    assert profile.current(scale="quick", threads=3).threads == 3


def test_configure_torch_sets_and_leaves_threads():
    before = torch.get_num_threads()
    try:
        profile.Profile("quick", "cpu", threads=1).configure_torch()
        assert torch.get_num_threads() == 1
        torch.set_num_threads(before)
        profile.Profile("quick", "cpu", threads=None).configure_torch()
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs, match", [
    (dict(scale="huge", device="cpu"), "scale"),
    (dict(scale="quick", device="not-a-device"), "device"),
    (dict(scale="quick", device="cpu", threads=0), "threads"),
    (dict(scale="quick", device="cpu", threads=1.5), "threads"),
])
def test_bad_profiles(kwargs, match):
    with pytest.raises(ValueError, match=match):
        profile.Profile(**kwargs)


def test_bad_environment(monkeypatch):
    monkeypatch.setenv("LIB_THREADS", "many")
    with pytest.raises(ValueError, match="LIB_THREADS"):
        profile.current(device="cpu")
    monkeypatch.delenv("LIB_THREADS")
    monkeypatch.setenv("LIB_SCALE", "enormous")
    with pytest.raises(ValueError, match="scale"):
        profile.current(device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            profile.current(device="cuda")


def test_a_chapter_may_default_to_more_cpu_threads_but_lib_threads_wins(monkeypatch):
    monkeypatch.delenv("LIB_THREADS", raising=False)
    monkeypatch.setenv("LIB_DEVICE", "cpu")
    assert profile.current(cpu_threads=2).threads == 2
    assert profile.current().threads == 1
    monkeypatch.setenv("LIB_THREADS", "1")
    assert profile.current(cpu_threads=2).threads == 1
    monkeypatch.delenv("LIB_THREADS")
    with pytest.raises(ValueError, match="cpu_threads"):
        profile.current(cpu_threads=0)
