"""Per-image bookkeeping: which images a re-run still has to do, and the failures file."""
import os

import pytest

from wsgcn.runtime import Failures, StepFailed, pending_images


def touch(path, mtime):
    path.write_text("x")
    os.utime(path, ns=(mtime, mtime))


def test_pending_images_skips_done_images_unless_stale_failed_or_overwritten(tmp_path, capsys):
    for name, out_time in (("a", 2), ("b", 2), ("c", 0)):
        touch(tmp_path / f"{name}.in", 10 ** 9)
        touch(tmp_path / f"{name}.out", out_time * 10 ** 9)
    names = ["a", "b", "c", "d"]  # c's output is older than its input; d has none
    outputs = lambda n: [tmp_path / f"{n}.out"]  # noqa: E731
    inputs = lambda n: [tmp_path / f"{n}.in", tmp_path / "missing.in"]  # noqa: E731
    assert pending_images(names, outputs, inputs) == ["c", "d"]
    assert "2 of 4 images already done" in capsys.readouterr().err
    assert pending_images(names, outputs) == ["d"]  # without inputs: existence only
    assert pending_images(names, outputs, inputs, overwrite=True) == names
    (tmp_path / "failures.txt").write_text("b\tunreadable image\n")
    assert pending_images(names, outputs, inputs, failures=Failures("step", tmp_path)) == ["b", "c", "d"]


def test_failures_file_is_written_then_removed_by_a_clean_run(tmp_path):
    failures = Failures("step", tmp_path / "out")
    with failures.guard("x"):
        raise ValueError("some/file.npz: scores hold NaN or Inf")
    with pytest.raises(StepFailed, match="1 image"):
        failures.finish()
    assert (tmp_path / "out/failures.txt").read_text() == "x\tsome/file.npz: scores hold NaN or Inf\n"
    Failures("step", tmp_path / "out").finish()
    assert not (tmp_path / "out/failures.txt").exists()
