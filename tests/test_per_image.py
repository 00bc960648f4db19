"""Per-image bookkeeping: which images a re-run still has to do, and the failures file."""
import os
import pickle
import zipfile

import pytest
import torch
from PIL import UnidentifiedImageError

from wsgcn.infra.per_image import Failures, StepFailed, is_input_error, map_images, pending_images


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
    assert "ValueError: some/file.npz" in (tmp_path / "out/failures.log").read_text()  # the traceback kept
    Failures("step", tmp_path / "out").finish()
    assert not (tmp_path / "out/failures.txt").exists() and not (tmp_path / "out/failures.log").exists()


def read_or_fail(name):
    if name == "bad":
        raise ValueError(f"{name}.png: unreadable image")
    if name == "bug":
        return name.no_such_attribute  # a programming error, not a bad input
    if name == "torch_bug":  # what torch says of a bug, e.g. arrays of mismatched shapes
        return torch.zeros(3) + torch.zeros(4)
    if name == "huge":  # 4 EiB: no machine has it, torch's CPU allocator refuses
        return torch.empty(2 ** 62, dtype=torch.uint8)
    return name


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_bad_input_fails_its_image_with_its_traceback(tmp_path, num_workers):
    failures = Failures("step", tmp_path)
    done = list(map_images(read_or_fail, ["a", "bad", "c"], num_workers, quiet=True, failures=failures))
    assert done == ["a", "c"]
    with pytest.raises(StepFailed):
        failures.finish()
    assert (tmp_path / "failures.txt").read_text() == "bad\tbad.png: unreadable image\n"
    log = (tmp_path / "failures.log").read_text()
    assert "Traceback" in log and "in read_or_fail" in log


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_programming_error_stops_the_run(tmp_path, num_workers):
    failures = Failures("step", tmp_path)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        list(map_images(read_or_fail, ["a", "bug", "c"], num_workers, quiet=True, failures=failures))
    with pytest.raises(TypeError):
        with failures.guard("x"):
            len(3)
    assert failures.items == []


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_torch_runtime_error_stops_the_run_but_out_of_memory_fails_the_image(tmp_path, num_workers):
    failures = Failures("step", tmp_path)
    with pytest.raises(RuntimeError, match="must match the size"):
        list(map_images(read_or_fail, ["a", "torch_bug", "c"], num_workers, quiet=True, failures=failures))
    assert failures.items == []
    done = list(map_images(read_or_fail, ["a", "huge", "c"], num_workers, quiet=True, failures=failures))
    assert done == ["a", "c"]
    assert [name for name, _, _ in failures.items] == ["huge"] and "can't allocate memory" in failures.items[0][1]


def test_which_errors_are_bad_inputs():
    inputs = [OSError("x.png: unreadable"), UnidentifiedImageError("cannot identify image file 'x.jpg'"),
              EOFError(), zipfile.BadZipFile("File is not a zip file"), pickle.UnpicklingError("bad"),
              ValueError("x.npz: NaN"), KeyError("keys"), MemoryError(),
              torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
              RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4611686018427387904 bytes. Error code 12 (Cannot allocate memory)")]
    bugs = [RuntimeError("The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 0"),
            RuntimeError("CUDA error: device-side assert triggered"), TypeError("x"), AttributeError("x"),
            IndexError("index 25 is out of bounds"), ZeroDivisionError()]
    assert [is_input_error(e) for e in inputs] == [True] * len(inputs)
    assert [is_input_error(e) for e in bugs] == [False] * len(bugs)
    failures = Failures("step", "unused")
    with pytest.raises(RuntimeError, match="device-side assert"):
        with failures.guard("x"):
            raise bugs[1]
    with failures.guard("x"):
        raise inputs[-2]
    assert [name for name, _, _ in failures.items] == ["x"]
