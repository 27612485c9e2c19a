"""Tests of lib.core: the one recorder of every sampler, the batch check, atomic writes."""
import pytest
import torch

from lib.core.checks import NonFiniteError, require_batch
from lib.core.files import atomic_save
from lib.core.recording import Recorder


def test_recorder_stacks_records_and_times():
    rec = Recorder(lambda x, t: {"m": x.mean(), "first": x[0], "t": torch.as_tensor(t)})
    for k in range(3):
        rec(torch.full((4,), float(k)), 0.5 * k)
    assert len(rec) == 3
    torch.testing.assert_close(rec.times(), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    out = rec.stacked()
    assert out["m"].tolist() == [0.0, 1.0, 2.0] and out["first"].shape == (3,)
    assert out["t"].tolist() == [0.0, 0.5, 1.0]  # the observer receives the record's time


def test_recorder_times_as_tensors_clone_and_silence():
    x = torch.zeros(2)
    rec = Recorder(lambda s, t: {"x": s}, clone=True)
    rec(x, torch.tensor([1.0, 2.0]))
    x += 5  # an in-place change after the record must not reach it
    rec(x, torch.tensor([3.0, 4.0]))
    assert rec.stacked()["x"].tolist() == [[0.0, 0.0], [5.0, 5.0]]
    assert rec.times().shape == (2, 2)
    silent = Recorder(None)
    silent(x, 0.0)
    assert len(silent) == 0 and silent.stacked() == {} and silent.times().shape == (0,)
    with pytest.raises(ValueError, match="dict"):
        Recorder(lambda s, t: s)(x, 0.0)
    with pytest.raises(ValueError, match="callable"):
        Recorder(3)


def test_require_batch():
    x = torch.zeros(3, 2)
    assert require_batch(x, "x") is x
    for bad in (torch.zeros(3, dtype=torch.long), torch.tensor(1.0), [1.0]):
        with pytest.raises(ValueError, match=r"x must be a floating tensor of shape \(B, \.\.\.\)"):
            require_batch(bad, "x")
    with pytest.raises(ValueError, match="at least one sample"):
        require_batch(torch.zeros(0, 2), "x", non_empty=True)
    with pytest.raises(NonFiniteError, match="x contains non-finite"):
        require_batch(torch.tensor([1.0, float("nan")]), "x", finite=True)


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "a.pt"
    atomic_save({"x": torch.ones(2)}, path)
    atomic_save({"x": torch.zeros(2)}, path)
    assert torch.load(path, weights_only=True)["x"].tolist() == [0.0, 0.0]
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
