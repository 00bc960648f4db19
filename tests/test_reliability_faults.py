"""Faults of the machine and of a killed run, and stale outputs (issue 18, cases 4, 6, 8, 9).

- The environment is not an input error: an output folder that cannot be written, an output
  path that is a file, a full disk stop the run with one line naming the path (exit 2), never
  as image failures; a corrupt resume state and a bad weights file are one line naming the file.
- The label table is an input of the steps that read it: editing it redoes their images.
- A step that starts removes the temporaries a killed run of it left.
- A one-pixel-wide image gets its CAM; two runs never write the same TensorBoard file.
"""
import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_scalars
from test_failures import copy_demo, copy_irn_outputs, exit_status, gcn_argv, irn_argv, write_list

from GCN import CRF
from GCN import train as gcn_train
from IRN import import_cams, run_sample
from wsgcn.infra import io as wsgcn_io
from wsgcn.infra.checkpoint import load_error_summary, read_state_dict
from wsgcn.infra.io import EnvironmentFault, prepare_outputs, save_torch
from wsgcn.infra.tensorboard import ScalarLog
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_cams
from wsgcn.seg.voc import NUM_OBJECT_CLASSES

# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture
def demo(demo_root, tmp_path):
    return copy_demo(demo_root, tmp_path)


@pytest.fixture(scope="module")
def gcn_work(irn_run, demo_root, tmp_path_factory):
    """A work dir with the GCN scores of two images of the infer list (read only: tests copy it)."""
    _, work, _ = irn_run
    base = tmp_path_factory.mktemp("gcn_faults")
    other = copy_irn_outputs(work, base)
    image_list = write_list(base / "two.txt", read_image_list(demo_root / "val.txt")[:2])
    from GCN import make_dataset
    for step in (make_dataset, gcn_train):
        assert exit_status(step.main, gcn_argv(demo_root, other, image_list, "--max_epoch", "2")) == 0
    return other, image_list


@pytest.fixture
def gcn_copy(gcn_work, tmp_path):
    work, image_list = gcn_work
    return Path(shutil.copytree(work, tmp_path / "work")), image_list


def one_error_line(err, *parts):
    """stderr holds no traceback and exactly one line naming every one of ``parts``."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if all(str(part) in line for part in parts)]
    assert len(lines) == 1, err
    return lines[0]


def no_temporaries(folder):
    return [p for p in Path(folder).rglob("*") if ".part" in p.name]


@contextlib.contextmanager
def read_only(folder):
    """``folder`` unwritable for this process: chmod for a normal user; root writes through any
    mode, so for root a read-only bind mount (skipped where mounting is not allowed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                                     capture_output=True).returncode != 0:
        if mounted:
            subprocess.run(["umount", str(folder)])
        pytest.skip("root, and no read-only bind mount allowed here")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def small_disk(size_kb):
    """A tmpfs of ``size_kb`` KB (skipped where mounting is not allowed)."""
    folder = Path(tempfile.mkdtemp(prefix="small_disk."))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        folder.rmdir()
        pytest.skip("no tmpfs mount allowed here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # lazy: a file may still be open
        folder.rmdir()


def fill(folder, leave_kb):
    """Fill the disk of ``folder`` until about ``leave_kb`` KB are free."""
    free = shutil.disk_usage(folder).free
    (Path(folder) / "filler").write_bytes(b"\0" * max(0, free - leave_kb * 1024))


# ---------------------------------------------------------------- 4. the environment


def test_a_read_only_output_folder_stops_the_crf_before_any_work(demo, gcn_copy, capsys):
    work, image_list = gcn_copy
    out = work / "GCN4DeepLab/CRF_Label"
    with read_only(out):
        assert exit_status(CRF.main, gcn_argv(demo, work, image_list)) == 2
        err = capsys.readouterr().err
    one_error_line(err, out)
    assert not list((work / "GCN4DeepLab").glob("CRF_Logit/*.npz")), "no CRF may be computed"
    assert not (out / "failures.txt").exists() and "failures" not in err


def test_an_output_path_that_is_a_file_stops_the_step_with_one_line(demo, gcn_copy, capsys):
    work, image_list = gcn_copy
    (work / "GCN4DeepLab/CRF_Label").write_text("not a folder")
    assert exit_status(CRF.main, gcn_argv(demo, work, image_list)) == 2
    line = one_error_line(capsys.readouterr().err, work / "GCN4DeepLab/CRF_Label")
    assert "is a file, not a folder" in line
    assert not (work / "GCN4DeepLab/CRF_Logit").exists() or not list((work / "GCN4DeepLab/CRF_Logit").iterdir())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR])
@pytest.mark.parametrize("workers", [0, 1])
def test_a_full_disk_mid_run_stops_the_step_at_once_naming_the_file(demo, gcn_copy, capsys, monkeypatch, code,
                                                                      workers):
    """The disk fills (or the folder turns unwritable) after the check at the start: the first
    write that fails stops the run, as one line naming the file, not as an image failure."""
    work, image_list = gcn_copy

    def savez(file, **arrays):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(np, "savez", savez)  # the workers are forked: they inherit it
    argv = gcn_argv(demo, work, image_list, "--num_workers", str(workers))
    assert exit_status(CRF.main, argv) == 2
    err = capsys.readouterr().err
    first = read_image_list(image_list)[0]
    line = one_error_line(err, work / "GCN4DeepLab/CRF_Logit" / f"{first}.npz")
    assert wsgcn_io.ENVIRONMENT_ERRNOS[code] in line
    assert not (work / "GCN4DeepLab/CRF_Label/failures.txt").exists()
    assert not no_temporaries(work)


def test_a_really_full_disk_is_found_before_any_work_and_mid_run(demo, gcn_copy, capsys):
    work, image_list = gcn_copy
    with small_disk(4096) as disk:
        out = disk / "out"
        out.mkdir()
        fill(disk, 2)
        with pytest.raises(EnvironmentFault, match="no space left"):
            prepare_outputs([out])
        (disk / "filler").unlink()
        shutil.copytree(work / "GCN4DeepLab/Logit", out / "GCN4DeepLab/Logit")
        fill(disk, 64)  # room for the check, not for the CRF scores of an image (about 270 KB each)
        argv = gcn_argv(demo, out, image_list)
        assert exit_status(CRF.main, argv) == 2
        line = one_error_line(capsys.readouterr().err, "no space left")
        assert str(out / "GCN4DeepLab") in line
        assert not no_temporaries(out)


def test_torch_save_and_tensorboard_on_a_full_disk_name_the_path_instead_of_hanging(tmp_path):
    with small_disk(256) as disk:
        fill(disk, 8)
        with pytest.raises(EnvironmentFault, match=f"{disk / 'w.pth'}: no space left"):
            save_torch(disk / "w.pth", {"w": torch.zeros(100_000)})
        assert not no_temporaries(disk)
        began = time.monotonic()
        with pytest.raises(EnvironmentFault, match="no space left"):
            log = ScalarLog(disk / "logs")
            for step in range(50_000):
                log.add_scalar("loss", 1.0, step)
            log.close()
        assert time.monotonic() - began < 60


def test_a_corrupt_resume_state_is_one_line_naming_the_file(irn_run, demo, tmp_path, capsys):
    work = tmp_path / "work"
    (work / "sess").mkdir(parents=True)
    state = work / "sess/cam.resume.pth"
    state.write_bytes(b"PK\x03\x04 not a zip at all")
    names = read_image_list(demo / "train.txt")[:4]
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", names), {"train_cam"},
                    "--cam_weights_name", "sess/cam.pth", "--resume", "True", "--cam_crop_size", "64",
                    "--cam_batch_size", "4", "--cam_num_epoches", "1")
    assert exit_status(run_sample.main, argv) == 2
    line = one_error_line(capsys.readouterr().err, state)
    assert "--resume False" in line and "weights_only" not in line


@pytest.mark.parametrize("content", [b"", b"\0garbage" * 8, "pickle"])
def test_bad_backbone_weights_are_one_line_naming_the_file(irn_run, demo, tmp_path, capsys, content):
    weights = tmp_path / "resnet50.pth"
    if content == "pickle":
        torch.save({"conv1.weight": torch.zeros(1), "extra": CustomObject()}, weights)
    else:
        weights.write_bytes(content)
    names = read_image_list(demo / "train.txt")[:4]
    argv = irn_argv(irn_run, demo, tmp_path / "work", write_list(tmp_path / "list.txt", names), {"train_cam"},
                    "--cam_weights_name", "sess/cam.pth", "--backbone_weights", str(weights),
                    "--cam_crop_size", "64", "--cam_batch_size", "4", "--cam_num_epoches", "1")
    assert exit_status(run_sample.main, argv) == 2
    line = one_error_line(capsys.readouterr().err, weights)
    assert "weights_only" not in line and "Re-running" not in line


class CustomObject:
    pass


def test_torchs_advice_to_load_unsafely_never_reaches_the_user(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"w": torch.zeros(1), "x": CustomObject()}, path)
    with pytest.raises(ValueError) as refused:
        read_state_dict(path)
    assert "weights_only" not in str(refused.value) and str(path) in str(refused.value)
    # a wording the pattern does not know: the sentences naming weights_only are dropped
    error = RuntimeError("Weights only load failed. Re-running `torch.load` with `weights_only` set to False "
                         "will likely succeed. Unsupported thing 42.")
    assert load_error_summary(error) == "Weights only load failed. Unsupported thing 42."


# ---------------------------------------------------------------- 6. the label table is an input


def test_changing_an_images_classes_in_the_label_table_redoes_its_cam(irn_run, demo, tmp_path, capsys):
    names = read_image_list(demo / "train.txt")[:3]
    work = tmp_path / "work"
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", names), {"make_cam"})
    assert exit_status(run_sample.main, argv) == 0
    table = demo / "cls_labels.txt"
    lines = table.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[0] == names[0])
    old_classes = [int(c) for c in lines[row].split()[1:]]
    new_class = next(c for c in range(20) if c not in old_classes)
    lines[row] = f"{names[0]} {new_class}"
    time.sleep(0.01)
    table.write_text("\n".join(lines) + "\n")

    assert exit_status(run_sample.main, argv) == 0
    assert "already done" not in capsys.readouterr().err
    assert load_cams(work / "IRN4GCN/CAM" / f"{names[0]}.npz", NUM_OBJECT_CLASSES)["classes"].tolist() == [new_class]


# ---------------------------------------------------------------- 8. debris of a killed run


def test_a_step_removes_the_temporaries_a_killed_run_left(irn_run, demo, tmp_path):
    names = read_image_list(demo / "train.txt")[:2]
    work = tmp_path / "work"
    cam_dir = work / "IRN4GCN/CAM"
    cam_dir.mkdir(parents=True)
    debris = [cam_dir / f".{names[0]}.k3j2h1x0.part.npz", cam_dir / ".other.abcdefgh.part.npz"]
    for path in debris:
        path.write_bytes(b"half a file")
    keep = cam_dir / "notes.txt"
    keep.write_text("a user's file")
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", names), {"make_cam"})
    assert exit_status(run_sample.main, argv) == 0
    assert not any(path.exists() for path in debris)
    assert keep.exists()


def test_a_training_step_removes_only_its_own_temporaries_in_sess(tmp_path):
    sess = tmp_path / "sess"
    sess.mkdir()
    mine = [sess / ".deeplab.resume.x1y2z3w4.part.pth", sess / ".deeplab.a1b2c3d4.part.pth"]
    others = [sess / ".res50_cam.q1w2e3r4.part.pth"]
    for path in mine + others:
        path.write_bytes(b"half")
    prepare_outputs(files=[sess / "deeplab.pth", sess / "deeplab.resume.pth"])
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)


def test_import_cams_ignores_the_hidden_temporaries_in_its_source_folder(irn_run, demo, tmp_path, capsys):
    _, irn_work, _ = irn_run
    names = read_image_list(demo / "val.txt")[:2]
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        shutil.copy(irn_work / "IRN4GCN/CAM" / f"{name}.npz", src / f"{name}.npz")
    (src / f".{names[0]}.k3j2h1x0.part.npy").write_bytes(b"half an export")
    argv = ["--src", str(src), "--voc12_root", str(demo / "VOC2012"), "--cls_labels", str(demo / "cls_labels.txt"),
            "--work_dir", str(tmp_path / "work"), "--list", str(write_list(tmp_path / "list.txt", names)),
            "--num_workers", "0", "--quiet", "True"]
    assert exit_status(import_cams.main, argv) == 0, capsys.readouterr().err
    assert sorted(p.stem for p in (tmp_path / "work/IRN4GCN/CAM").glob("*.npz")) == sorted(names)


# ---------------------------------------------------------------- 9. smaller


@pytest.mark.parametrize("size", [(40, 1), (1, 40), (1, 1)])
def test_a_one_pixel_wide_image_gets_its_cam(irn_run, demo, tmp_path, size):
    from PIL import Image

    name = read_image_list(demo / "train.txt")[0]
    image_path = demo / "VOC2012/JPEGImages" / f"{name}.jpg"
    with Image.open(image_path) as image:
        image.convert("RGB").crop((0, 0, size[1], size[0])).save(image_path)
    work = tmp_path / "work"
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", [name]), {"make_cam"})
    assert exit_status(run_sample.main, argv) == 0
    cams = load_cams(work / "IRN4GCN/CAM" / f"{name}.npz", NUM_OBJECT_CLASSES, image_size=size)
    assert cams["high_res"].shape[1:] == size and np.isfinite(cams["high_res"]).all()


def test_two_gcn_runs_write_their_own_tensorboard_files(demo, gcn_copy, monkeypatch):
    work, image_list = gcn_copy
    shutil.rmtree(work / "logs", ignore_errors=True)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)  # both runs start "in the same second"
    argv = gcn_argv(demo, work, image_list, "--max_epoch", "1", "--overwrite", "True")
    for _ in range(2):
        assert exit_status(gcn_train.main, argv) == 0
    files = sorted((work / "logs").rglob("events.out.tfevents.*"))
    assert len(files) == 2
    count = len(read_image_list(image_list))
    assert len(read_scalars(work / "logs")["gcn/label_coverage"]) == 2 * count


def test_scalar_log_writes_what_tensorboard_reads(tmp_path):
    log = ScalarLog(tmp_path)
    for step in range(3):
        log.add_scalar("a/loss", 0.5 * step, step)
    log.close()
    assert read_scalars(tmp_path) == {"a/loss": [(0, 0.0), (1, 0.5), (2, 1.0)]}
