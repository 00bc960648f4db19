"""Broken inputs: a per-image step that meets a bad file for one image logs one line
``<step>: <image>: <reason>`` naming the file, goes on with the other images, lists the image
in its output folder's failures.txt and exits 1; a bad list or a wrong checkpoint stops the run
with status 2 before any output is written; a failed attempt never replaces an earlier output;
pickled files are read only with --allow_pickle.

Every case plants its defect in a copy of the demo data set / work dir under ``tmp_path``.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from GCN import CRF, make_dataset
from GCN import train as gcn_train
from IRN import run_sample
from IRN.net.resnet50_cam import load_cam_net
from IRN.step import make_cam
from wsgcn.infra.checkpoint import load_checkpoint
from wsgcn.infra.io import load_label_png, load_npz, save_label_png, save_npz
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_cams, load_probs
from wsgcn.seg.voc import NUM_CLASSES, NUM_OBJECT_CLASSES

# ---------------------------------------------------------------- helpers


def copy_demo(demo_root, tmp_path):
    """A private copy of the demo data set (images, annotations, label table, lists)."""
    return Path(shutil.copytree(demo_root, tmp_path / "demo"))


def copy_irn_outputs(work, tmp_path):
    """A private work dir holding a copy of the IRN run's per-image outputs (not the weights)."""
    other = tmp_path / "work"
    shutil.copytree(work / "IRN4GCN", other / "IRN4GCN")
    return other


def write_list(path, names):
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def irn_argv(irn_run, demo, work, image_list, steps, *extra):
    """run_sample's argv on ``demo``/``work`` for ``image_list`` (train and infer list), running
    only ``steps``; the weights are the IRN run's, read where they are."""
    _, irn_work, _ = irn_run
    argv = ["--profile", "demo", "--voc12_root", str(demo / "VOC2012"), "--train_list", str(image_list),
            "--infer_list", str(image_list), "--cls_labels", str(demo / "cls_labels.txt"), "--work_dir", str(work),
            "--cam_weights_name", str(irn_work / "sess/res50_cam.pth"),
            "--irn_weights_name", str(irn_work / "sess/res50_irn.pth"),
            "--cam_scales", "1.0", "0.5", "--irn_crop_size", "96", "--num_workers", "0", "--quiet", "True"]
    for flag, _ in run_sample.STEPS:
        argv += [f"--{flag}", str(flag[: -len("_pass")] in steps)]
    return argv + list(extra)


def gcn_argv(demo, work, image_list, *extra):
    return ["--work_dir", str(work), "--voc12_root", str(demo / "VOC2012"), "--train_list", str(image_list),
            "--cls_labels", str(demo / "cls_labels.txt"), "--max_epoch", "5", "--num_workers", "0",
            "--quiet", "True", *extra]


def replace_arg(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def exit_status(main, argv):
    """Run a script's main in this process; its exit status (0 when it returns)."""
    try:
        main(argv)
    except SystemExit as stop:
        return stop.code
    return 0


def lines_naming(text, name):
    return [line for line in text.splitlines() if name in line]


def read_failures(folder):
    """failures.txt as {name: reason}; every line must be ``name<TAB>reason``."""
    rows = {}
    for line in (folder / "failures.txt").read_text().splitlines():
        name, reason = line.split("\t")
        rows[name] = reason
    return rows


def assert_one_failure(err, folder, step, name, *in_reason):
    """One stderr line ``<step>: <name>: <reason>``, with ``in_reason`` in it; failures.txt in
    ``folder`` lists ``name`` only, with the same reason."""
    assert "Traceback" not in err
    lines = lines_naming(err, name)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{step}: {name}: "), lines[0]
    reason = lines[0][len(f"{step}: {name}: "):]
    for part in in_reason:
        assert str(part) in reason, reason
    assert read_failures(folder) == {name: reason}


def tree(folder):
    """Every file under ``folder`` with its bytes: to tell whether a run wrote anything."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class CreatesFile:
    """Unpickling this object creates ``marker`` (a stand-in for any code a pickle may run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def demo(demo_root, tmp_path):
    return copy_demo(demo_root, tmp_path)


@pytest.fixture
def train_names(demo_root):
    """Three training images: IR labels exist for them in the IRN run."""
    return read_image_list(demo_root / "train.txt")[:3]


@pytest.fixture
def val_names(demo_root):
    """Three images of the infer list: boundary maps and features exist for them in the IRN run."""
    return read_image_list(demo_root / "val.txt")[:3]


@pytest.fixture(scope="module")
def gcn_work(irn_run, demo_root, tmp_path_factory):
    """A work dir with the GCN stage run (5 epochs) on three images of the infer list.  Read
    only: tests copy it."""
    _, work, _ = irn_run
    base = tmp_path_factory.mktemp("gcn_failures")
    other = copy_irn_outputs(work, base)
    image_list = write_list(base / "three.txt", read_image_list(demo_root / "val.txt")[:3])
    argv = gcn_argv(demo_root, other, image_list)
    for step in (make_dataset, gcn_train, CRF):
        step.main(argv)
    return other


@pytest.fixture
def gcn_copy(gcn_work, tmp_path):
    return Path(shutil.copytree(gcn_work, tmp_path / "work"))


# ---------------------------------------------------------------- make_cam


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_jpeg_fails_that_image_only_and_keeps_its_old_cam(irn_run, demo, tmp_path, train_names, capsys,
                                                                   damage):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    cam_dir = work / "IRN4GCN/CAM"
    good, bad = [train_names[0], train_names[2]], train_names[1]
    for name in good:  # their new CAMs must be written
        (cam_dir / f"{name}.npz").unlink()
    old_cam = (cam_dir / f"{bad}.npz").read_bytes()
    jpeg = demo / "VOC2012/JPEGImages" / f"{bad}.jpg"
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a jpeg at all" * 50)
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"},
                    "--overwrite", "True")

    assert exit_status(run_sample.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, cam_dir, "make_cam", bad, jpeg)
    for name in good:
        assert set(load_npz(cam_dir / f"{name}.npz")) == {"keys", "cam", "high_res"}
    assert (cam_dir / f"{bad}.npz").read_bytes() == old_cam  # the failed attempt replaced nothing


def test_cam_weights_holding_nan_stop_make_cam_before_any_image(irn_run, demo, tmp_path, train_names, capsys):
    """Weights a diverged training wrote are refused when loaded: one line naming the file, exit 2."""
    _, irn_work, _ = irn_run
    state = torch.load(irn_work / "sess/res50_cam.pth", weights_only=True)
    state["classifier.weight"][0, 0] = float("nan")
    weights = tmp_path / "res50_cam.pth"
    torch.save(state, weights)
    work = tmp_path / "work"
    argv = replace_arg(irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"}),
                       "--cam_weights_name", str(weights))

    assert exit_status(run_sample.main, argv) == 2
    err = capsys.readouterr().err
    assert f"{weights}: 1 tensor(s) hold NaN or Inf (e.g. classifier.weight): the training that wrote it diverged" \
        in err and "Traceback" not in err
    assert not list((work / "IRN4GCN/CAM").glob("*.npz"))


def test_non_finite_cams_fail_their_image_only(irn_run, demo, tmp_path, train_names, capsys, monkeypatch):
    bad = train_names[1]
    real, calls = make_cam.compute_cams, []

    def nan_for_the_second_image(*args, **kwargs):  # images go in list order (--num_workers 0): train_names[1]
        cam, high_res = real(*args, **kwargs)
        calls.append(1)
        return (cam * float("nan"), high_res) if len(calls) == 2 else (cam, high_res)

    monkeypatch.setattr(make_cam, "compute_cams", nan_for_the_second_image)
    work = tmp_path / "work"
    cam_dir = work / "IRN4GCN/CAM"
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})

    assert exit_status(run_sample.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, cam_dir, "make_cam", bad, "the CAM network's outputs hold NaN or Inf",
                       "res50_cam.pth")
    assert sorted(p.name for p in cam_dir.glob("*.npz")) == sorted(f"{n}.npz" for n in train_names if n != bad)


def test_missing_image_fails_then_a_rerun_after_the_fix_removes_failures_txt(irn_run, demo, tmp_path, train_names,
                                                                               capsys):
    work = tmp_path / "work"
    cam_dir = work / "IRN4GCN/CAM"
    bad = train_names[1]
    jpeg = demo / "VOC2012/JPEGImages" / f"{bad}.jpg"
    kept = jpeg.read_bytes()
    jpeg.unlink()
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})

    assert exit_status(run_sample.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, cam_dir, "make_cam", bad, "not found", jpeg)
    assert sorted(p.name for p in cam_dir.glob("*.npz")) == sorted(f"{n}.npz" for n in train_names if n != bad)

    jpeg.write_bytes(kept)  # fixed: the re-run does the missing image only and succeeds
    assert exit_status(run_sample.main, argv) == 0
    err = capsys.readouterr().err
    assert "2 of 3 images already done" in err and not lines_naming(err, bad)
    assert not (cam_dir / "failures.txt").exists()
    assert sorted(p.name for p in cam_dir.glob("*.npz")) == sorted(f"{n}.npz" for n in train_names)


def test_missing_annotation_fails_when_labels_come_from_the_xml(irn_run, demo, tmp_path, train_names, capsys):
    work = tmp_path / "work"
    cam_dir = work / "IRN4GCN/CAM"
    bad = train_names[0]
    xml = demo / "VOC2012/Annotations" / f"{bad}.xml"
    xml.unlink()
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})
    argv = replace_arg(argv, "--cls_labels", "")  # '' = the XML annotations

    assert exit_status(run_sample.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, cam_dir, "make_cam", bad, "not found", xml)
    for name in train_names[1:]:
        assert (cam_dir / f"{name}.npz").is_file()
    assert not (cam_dir / f"{bad}.npz").exists()


@pytest.mark.parametrize("edit", ["no_class", "no_line"])
def test_image_label_without_an_object_class_fails_in_make_cam(irn_run, demo, tmp_path, train_names, capsys, edit):
    work = tmp_path / "work"
    cam_dir = work / "IRN4GCN/CAM"
    bad = train_names[2]
    table = demo / "cls_labels.txt"
    lines = table.read_text().splitlines()
    assert sum(line.split()[0] == bad for line in lines) == 1
    edited = [(bad if edit == "no_class" else None) if line.split()[0] == bad else line for line in lines]
    table.write_text("".join(f"{line}\n" for line in edited if line is not None))
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})

    assert exit_status(run_sample.main, argv) == 1
    expected = f"image {bad!r} has no object class" if edit == "no_class" else f"no labels for image {bad!r}"
    assert_one_failure(capsys.readouterr().err, cam_dir, "make_cam", bad)
    assert read_failures(cam_dir)[bad] == f"{table}: {expected}"
    for name in train_names[:2]:
        assert (cam_dir / f"{name}.npz").is_file()
    assert not (cam_dir / f"{bad}.npz").exists()


# ---------------------------------------------------------------- damaged CAMs


def damage_cam(path, defect):
    """Rewrite a CAM archive with maps of the wrong size, or with a NaN / Inf."""
    cams = load_npz(path)
    if defect == "wrong_size":
        cams["cam"], cams["high_res"] = cams["cam"][:, :-1], cams["high_res"][:, :-2, :-1]
    else:
        cams["high_res"][0, 3, 3] = np.nan if defect == "nan" else np.inf
    save_npz(path, **cams)


@pytest.mark.parametrize("defect", ["wrong_size", "nan", "inf"])
def test_damaged_cam_fails_in_cam_to_ir_label_and_keeps_its_old_ir_label(irn_run, demo, tmp_path, train_names,
                                                                         capsys, defect):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    ir_dir = work / "IRN4GCN/IR_LABEL"
    good, bad = train_names[1:], train_names[0]
    for name in good:
        (ir_dir / f"{name}.png").unlink()
    old_label = (ir_dir / f"{bad}.png").read_bytes()
    cam_file = work / "IRN4GCN/CAM" / f"{bad}.npz"
    damage_cam(cam_file, defect)
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"cam_to_ir_label"},
                    "--overwrite", "True")

    assert exit_status(run_sample.main, argv) == 1
    expected = "do not fit" if defect == "wrong_size" else "NaN or Inf"
    assert_one_failure(capsys.readouterr().err, ir_dir, "cam_to_ir_label", bad, cam_file, expected)
    for name in good:
        assert (ir_dir / f"{name}.png").is_file()
    assert (ir_dir / f"{bad}.png").read_bytes() == old_label


@pytest.mark.parametrize("defect, workers", [("wrong_size", "0"), ("nan", "0"), ("nan", "1")])
def test_damaged_cam_fails_in_make_dataset(irn_run, demo, tmp_path, val_names, capsys, defect, workers):
    """Also with a worker process, where the image fails away from the main process."""
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    out_dir = work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN"
    bad = val_names[1]
    cam_file = work / "IRN4GCN/CAM" / f"{bad}.npz"
    damage_cam(cam_file, defect)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--num_workers", workers)

    assert exit_status(make_dataset.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, out_dir, "make_dataset", bad, cam_file)
    for name in val_names:
        for folder in (out_dir, work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN_UP"):
            assert (folder / f"{name}.png").is_file() == (name != bad)


def test_damaged_cam_fails_in_make_sem_seg_and_keeps_its_old_outputs(irn_run, demo, tmp_path, val_names, capsys):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    folders = [work / "IRN4GCN" / f for f in ("BOUNDARY", "AFF_FEATURE", "SEM_SEG")]
    good, bad = val_names[:2], val_names[2]
    for folder in folders:
        for path in folder.glob("demo_*"):
            if path.stem in good:
                path.unlink()
    old = {path: path.read_bytes() for folder in folders for path in folder.glob(f"{bad}.*")}
    assert len(old) == 3
    cam_file = work / "IRN4GCN/CAM" / f"{bad}.npz"
    damage_cam(cam_file, "nan")
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", val_names), {"make_sem_seg"},
                    "--overwrite", "True")

    assert exit_status(run_sample.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, work / "IRN4GCN/SEM_SEG", "make_sem_seg_labels", bad, cam_file,
                       "NaN or Inf")
    for folder in folders:
        assert {p.stem for p in folder.glob("demo_*")} >= set(good)
    assert {path: path.read_bytes() for path in old} == old


def test_later_steps_still_run_after_a_failed_step_and_the_exit_status_is_1(irn_run, demo, tmp_path, train_names,
                                                                           capsys):
    work = tmp_path / "work"
    bad = train_names[1]
    (demo / "VOC2012/JPEGImages" / f"{bad}.jpg").write_bytes(b"garbage")
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names),
                    {"make_cam", "cam_to_ir_label"})

    assert exit_status(run_sample.main, argv) == 1
    err = capsys.readouterr().err
    assert [line.split(":")[0] for line in lines_naming(err, bad)] == ["make_cam", "cam_to_ir_label"]
    assert "some images failed in make_cam, cam_to_ir_label" in err
    for folder in ("CAM", "IR_LABEL"):
        assert list(read_failures(work / "IRN4GCN" / folder)) == [bad]
        assert sorted(p.stem for p in (work / "IRN4GCN" / folder).glob("demo_*")) == sorted(set(train_names) - {bad})


# ---------------------------------------------------------------- GCN and CRF


def test_nan_boundary_fails_in_gcn_train_and_keeps_its_old_outputs(demo, gcn_copy, tmp_path, val_names, capsys):
    work = gcn_copy
    label_dir, logit_dir = work / "GCN4DeepLab/Label", work / "GCN4DeepLab/Logit"
    bad = val_names[2]
    old = {d: (d / f"{bad}.{ext}").read_bytes() for d, ext in ((label_dir, "png"), (logit_dir, "npz"))}
    for name in val_names[:2]:
        (label_dir / f"{name}.png").unlink()
    boundary_file = work / "IRN4GCN/BOUNDARY" / f"{bad}.npz"
    boundary = load_npz(boundary_file)["boundary"]
    boundary[1, 1] = np.nan
    save_npz(boundary_file, boundary=boundary)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--overwrite", "True")

    assert exit_status(gcn_train.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, label_dir, "GCN", bad, boundary_file, "NaN or Inf")
    assert "AFF_FEATURE" not in read_failures(label_dir)[bad]  # the damaged file only
    for name in val_names[:2]:
        assert (label_dir / f"{name}.png").is_file()
    assert {d: (d / f"{bad}.{ext}").read_bytes() for d, ext in ((label_dir, "png"), (logit_dir, "npz"))} == old


@pytest.mark.parametrize("defect", ["features_channels", "boundary_size", "partial_size"])
def test_gcn_input_of_the_wrong_shape_fails_in_gcn_train_naming_the_file(demo, gcn_copy, tmp_path, val_names, capsys,
                                                                         defect):
    """Checked where the file is read: it never reaches torch as a shape mismatch (a bug, exit 3)."""
    work = gcn_copy
    label_dir = work / "GCN4DeepLab/Label"
    bad = val_names[1]
    if defect == "partial_size":
        damaged = work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN" / f"{bad}.png"
        save_label_png(damaged, load_label_png(damaged)[:-1])
    else:
        key, folder = ("features", "AFF_FEATURE") if defect == "features_channels" else ("boundary", "BOUNDARY")
        damaged = work / "IRN4GCN" / folder / f"{bad}.npz"
        array = load_npz(damaged)[key]
        save_npz(damaged, **{key: array[:150] if defect == "features_channels" else array[:, :-1]})
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--overwrite", "True")

    assert exit_status(gcn_train.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, label_dir, "GCN", bad, damaged, "do not fit" if defect ==
                       "partial_size" else "has shape")


def test_a_graph_typo_stops_gcn_train_before_any_work(demo, gcn_copy, tmp_path, val_names, capsys):
    """It failed every image in the data-loading workers and exited 1."""
    work = gcn_copy
    before = tree(work)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--overwrite", "True",
                    "--graph", "lowmen")
    assert exit_status(gcn_train.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"{Path(sys.argv[0]).name}: error: argument --graph: 'lowmen' is not one of dense, "
                                f"lowmem"]
    assert tree(work) == before


@pytest.mark.parametrize("defect", ["wrong_size", "nan"])
def test_damaged_logit_fails_in_crf_and_a_fixed_rerun_succeeds(demo, gcn_copy, tmp_path, val_names, capsys, defect):
    work = gcn_copy
    crf_label, crf_logit = work / "GCN4DeepLab/CRF_Label", work / "GCN4DeepLab/CRF_Logit"
    bad = val_names[0]
    old = {d: (d / f"{bad}.{ext}").read_bytes() for d, ext in ((crf_label, "png"), (crf_logit, "npz"))}
    for name in val_names[1:]:
        (crf_label / f"{name}.png").unlink()
    logit_file = work / "GCN4DeepLab/Logit" / f"{bad}.npz"
    original = logit_file.read_bytes()
    scores = load_npz(logit_file)
    if defect == "wrong_size":
        scores["prob"] = scores["prob"][:, 1:, :]
    else:
        scores["prob"][-1, 0, 0] = np.nan
    save_npz(logit_file, **scores)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--overwrite", "True")

    assert exit_status(CRF.main, argv) == 1
    expected = "do not fit" if defect == "wrong_size" else "NaN or Inf"
    assert_one_failure(capsys.readouterr().err, crf_label, "CRF", bad, logit_file, expected)
    for name in val_names[1:]:
        assert (crf_label / f"{name}.png").is_file() and (crf_logit / f"{name}.npz").is_file()
    assert {d: (d / f"{bad}.{ext}").read_bytes() for d, ext in ((crf_label, "png"), (crf_logit, "npz"))} == old

    logit_file.write_bytes(original)
    # without --overwrite: the others are skipped, and the image in failures.txt is redone
    # although an older output of it exists
    assert exit_status(CRF.main, argv[:-2]) == 0
    err = capsys.readouterr().err
    assert f"{len(val_names) - 1} of {len(val_names)} images already done" in err
    assert not (crf_label / "failures.txt").exists()
    assert not lines_naming(err, bad)


# ---------------------------------------------------------------- the readers


def write_archive(path, defect):
    """A score or CAM file with ``defect``; returns the reader call that must refuse it."""
    good = dict(keys=np.array([3, 14]), cam=np.ones((2, 3, 4), np.float32), high_res=np.ones((2, 9, 13), np.float32))
    if defect in ("not_a_zip", "truncated", "bad_crc"):
        save_npz(path, **good)
        data = path.read_bytes()
        path.write_bytes({"not_a_zip": b"PK\x03\x04 not a zip at all", "truncated": data[: len(data) // 2],
                          "bad_crc": data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]}[defect])
    elif defect == "bare_npy":
        with open(path, "wb") as f:
            np.save(f, good["cam"])
    elif defect == "keys_not_numbers":
        save_npz(path, **dict(good, keys=np.array(["cat", "dog"])))
    elif defect == "key_out_of_range":
        save_npz(path, **dict(good, keys=np.array([3, 25])))
    elif defect == "key_twice":
        save_npz(path, **dict(good, keys=np.array([3, 3])))
    elif defect == "prob_label_out_of_range":
        save_npz(path, keys=np.array([0, 300]), prob=np.ones((2, 9, 13), np.float32))
        return lambda: load_probs(path, NUM_CLASSES)
    elif defect == "legacy_garbage":
        path = path.with_suffix(".npy")
        path.write_bytes(b"\x93NUMPY garbage")
        return lambda: load_probs(path, NUM_CLASSES, allow_pickle=True)
    elif defect == "legacy_maps_of_two_sizes":
        path = path.with_suffix(".npy")
        np.save(path, {0: np.zeros((9, 13)), 4: np.zeros((9, 12))}, allow_pickle=True)
        return lambda: load_probs(path, NUM_CLASSES, allow_pickle=True)
    return lambda: load_cams(path, NUM_OBJECT_CLASSES)


@pytest.mark.parametrize("defect", ["not_a_zip", "truncated", "bad_crc", "bare_npy", "keys_not_numbers",
                                    "key_out_of_range", "key_twice", "prob_label_out_of_range", "legacy_garbage",
                                    "legacy_maps_of_two_sizes"])
def test_a_damaged_archive_is_a_bad_input_naming_the_file(tmp_path, defect):
    """A ValueError naming the file, which fails its image alone (never a zip, pickle or numpy
    error without the name, nor an IndexError later)."""
    read = write_archive(tmp_path / "x.npz", defect)
    with pytest.raises(ValueError, match=str(tmp_path / "x.np")):
        read()


@pytest.mark.parametrize("arrays", [dict(keys=np.array([14]), high_res=np.float32(1.0)),
                                    dict(keys=np.array([14]), high_res=np.ones((1, 9, 13)), cam=np.ones((3, 4))),
                                    dict(keys=np.array(["dog"]), high_res=np.ones((1, 9, 13)))],
                         ids=["scalar_maps", "2d_cam", "keys_not_numbers"])
def test_an_imported_cam_file_of_the_wrong_form_fails_naming_the_file(tmp_path, arrays):
    from IRN.import_cams import ImportCamsConfig, read_cam_file

    save_npz(tmp_path / "x.npz", **arrays)
    with pytest.raises(ValueError, match=str(tmp_path / "x.npz")):
        read_cam_file(tmp_path / "x.npz", ImportCamsConfig(keys_include_background=True))


# ---------------------------------------------------------------- errors before any work


@pytest.mark.parametrize("content", ["", "\n  \n", "demo_000000\ndemo_000001 a b\n"],
                         ids=["empty", "blank", "malformed"])
def test_bad_list_stops_run_sample_before_any_output(irn_run, demo, tmp_path, capsys, content):
    work = tmp_path / "work"
    bad_list = tmp_path / "list.txt"
    bad_list.write_text(content)
    argv = irn_argv(irn_run, demo, work, bad_list, {"make_cam", "cam_to_ir_label"})

    assert exit_status(run_sample.main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("run_sample.py: error: ")
    assert str(bad_list) in err and ("empty" in err if content.strip() == "" else ":2:" in err)
    assert not work.exists()


@pytest.mark.parametrize("step", [make_dataset, gcn_train, CRF], ids=["make_dataset", "train", "CRF"])
@pytest.mark.parametrize("content", ["", "demo_000008 a b\n"], ids=["empty", "malformed"])
def test_bad_list_stops_a_gcn_script_before_any_output(irn_run, demo, tmp_path, capsys, step, content):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    before = tree(work)
    bad_list = tmp_path / "list.txt"
    bad_list.write_text(content)

    assert exit_status(step.main, gcn_argv(demo, work, bad_list)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error: " in err and str(bad_list) in err
    assert tree(work) == before


@pytest.mark.parametrize("planted", ["irnet_weights", "linear_layer"])
def test_wrong_architecture_cam_weights_stop_make_cam_before_any_cam(irn_run, demo, tmp_path, train_names, capsys,
                                                                       planted):
    _, irn_work, _ = irn_run
    work = tmp_path / "work"
    weights = work / "sess/res50_cam.pth"
    weights.parent.mkdir(parents=True)
    if planted == "irnet_weights":
        shutil.copyfile(irn_work / "sess/res50_irn.pth", weights)
    else:
        torch.save(torch.nn.Linear(4, 3).state_dict(), weights)
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})
    argv = replace_arg(argv, "--cam_weights_name", "sess/res50_cam.pth")

    assert exit_status(run_sample.main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("run_sample.py: error: ") and str(weights) in err and "does not fit CAMNet" in err
    assert not (work / "IRN4GCN").exists()


def test_wrong_architecture_irn_weights_stop_the_run_before_any_step(irn_run, demo, tmp_path, val_names, capsys):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    weights = work / "sess/res50_irn.pth"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(irn_work / "sess/res50_cam.pth", weights)
    before = tree(work)
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", val_names), {"make_cam", "make_sem_seg"},
                    "--overwrite", "True")
    argv = replace_arg(argv, "--irn_weights_name", "sess/res50_irn.pth")

    assert exit_status(run_sample.main, argv) == 2  # make_cam, the earlier step, did not run either
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(weights) in err and "does not fit IRNet" in err
    assert tree(work) == before


# ---------------------------------------------------------------- no pickle without --allow_pickle


def test_the_planted_pickles_do_run_code_when_unpickled(tmp_path):
    """The control for the tests below: loading these files with pickle creates the marker."""
    npy_marker, pth_marker = tmp_path / "npy_ran", tmp_path / "pth_ran"
    np.save(tmp_path / "evil.npy", CreatesFile(npy_marker), allow_pickle=True)
    torch.save(CreatesFile(pth_marker), tmp_path / "evil.pth")
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert npy_marker.exists() and pth_marker.exists()


def test_pickled_cam_npy_is_refused_without_allow_pickle(irn_run, demo, tmp_path, val_names, capsys):
    _, irn_work, _ = irn_run
    work = copy_irn_outputs(irn_work, tmp_path)
    marker = tmp_path / "code_ran"
    bad = val_names[1]
    cam_dir = work / "IRN4GCN/CAM"
    (cam_dir / f"{bad}.npz").unlink()
    np.save(cam_dir / f"{bad}.npy", CreatesFile(marker), allow_pickle=True)  # an IRNet-style legacy CAM file

    with pytest.raises(ValueError, match="allow_pickle"):
        load_cams(cam_dir / f"{bad}.npy", NUM_OBJECT_CLASSES)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names))
    assert exit_status(make_dataset.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN", "make_dataset", bad,
                       "--allow_pickle", cam_dir / f"{bad}.npy")
    assert not marker.exists()


def test_pickled_logit_npy_is_refused_without_allow_pickle(demo, gcn_copy, tmp_path, val_names, capsys):
    work = gcn_copy
    marker = tmp_path / "code_ran"
    bad = val_names[2]
    logit_dir, crf_label = work / "GCN4DeepLab/Logit", work / "GCN4DeepLab/CRF_Label"
    (logit_dir / f"{bad}.npz").unlink()
    np.save(logit_dir / f"{bad}.npy", CreatesFile(marker), allow_pickle=True)  # a WSGCN-style Logit file

    with pytest.raises(ValueError, match="allow_pickle"):
        load_probs(logit_dir / f"{bad}.npy", NUM_CLASSES)
    argv = gcn_argv(demo, work, write_list(tmp_path / "list.txt", val_names), "--overwrite", "True")
    assert exit_status(CRF.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, crf_label, "CRF", bad, "--allow_pickle", logit_dir / f"{bad}.npy")
    assert not marker.exists()


def test_pickled_checkpoint_is_refused_by_the_loader_and_by_run_sample(irn_run, demo, tmp_path, train_names, capsys):
    marker = tmp_path / "code_ran"
    work = tmp_path / "work"
    weights = work / "sess/res50_cam.pth"
    weights.parent.mkdir(parents=True)
    torch.save(CreatesFile(marker), weights)

    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(torch.nn.Linear(4, 3), weights)
    with pytest.raises(ValueError, match=str(weights)):
        load_cam_net(weights)
    argv = irn_argv(irn_run, demo, work, write_list(tmp_path / "list.txt", train_names), {"make_cam"})
    argv = replace_arg(argv, "--cam_weights_name", "sess/res50_cam.pth")
    assert exit_status(run_sample.main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(weights) in err
    assert not marker.exists()
    assert not (work / "IRN4GCN").exists()


def test_train_sh_without_the_data_set_stops_with_one_line(tmp_path):
    """A fresh checkout without VOC: one line naming where it looked and what to set, status 2,
    and no later stage starts."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, VOC12_ROOT=str(tmp_path / "VOC2012"), WORK_DIR=str(tmp_path / "work"),
               PYTHON=sys.executable, DEVICE="cpu")
    out = subprocess.run(["bash", str(root / "train.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"run_sample.py: error: no voc12 data set at {tmp_path / 'VOC2012'}: {tmp_path / 'VOC2012/JPEGImages'} is "
        f"missing (set --data_root, or DATA_ROOT for train.sh)"]
    assert "GCN stage" not in out.stdout


def test_a_list_of_another_data_set_is_refused_before_any_step(demo, tmp_path, capsys):
    other = str(write_list(tmp_path / "other.txt", ["2007_000032", "2007_000039"]))
    argv = ["--profile", "demo", "--voc12_root", str(demo / "VOC2012"), "--train_list", other,
            "--infer_list", other, "--cls_labels", str(demo / "cls_labels.txt"), "--work_dir", str(tmp_path / "w")]
    assert exit_status(run_sample.main, argv) == 2
    err = capsys.readouterr().err
    assert "none of the 2 images of" in err and "--voc12_root" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()


def test_a_crash_ends_with_status_3_and_its_traceback(monkeypatch, capsys):
    """A bug or an out-of-memory is not a bad input: exit status 3 (train.sh stops), traceback shown."""
    from wsgcn.infra.scripts import script_main

    def run(cfg):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    from GCN.config import PROFILES, GCNConfig

    assert exit_status(lambda argv: script_main(run, GCNConfig, PROFILES, argv), ["--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "OutOfMemoryError" in err and "crashed (exit status 3)" in err


def torch_shape_mismatch():
    return torch.zeros(3) + torch.zeros(4)


def cuda_out_of_memory():
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def cpu_out_of_memory():
    return torch.empty(2 ** 62, dtype=torch.uint8)  # 4 EiB: torch's CPU allocator raises a RuntimeError


@pytest.mark.parametrize("error, status", [(torch_shape_mismatch, 3), (cuda_out_of_memory, 1),
                                           (cpu_out_of_memory, 1)])
def test_a_torch_error_of_one_image_is_a_bug_unless_out_of_memory(tmp_path, capsys, error, status):
    """torch's RuntimeError is a bug (the readers refuse the bad files that would cause one): the
    run stops with its traceback and exit status 3.  Out of memory fails that image alone."""
    from GCN.config import PROFILES, GCNConfig
    from wsgcn.infra.per_image import Failures, map_images
    from wsgcn.infra.scripts import script_main

    def process(name):
        return error() if name == "b" else name

    def run(cfg):
        failures = Failures("step", tmp_path / "out")
        assert list(map_images(process, ["a", "b", "c"], cfg.num_workers, quiet=True, failures=failures)) == ["a", "c"]
        failures.finish()

    argv = ["--device", "cpu", "--num_workers", "0"]
    assert exit_status(lambda argv: script_main(run, GCNConfig, PROFILES, argv), argv) == status
    err = capsys.readouterr().err
    if status == 3:
        assert "Traceback" in err and "must match the size" in err and "crashed (exit status 3)" in err
        assert not (tmp_path / "out/failures.txt").exists()
    else:
        assert "Traceback" not in err and len(lines_naming(err, "step: b: ")) == 1
        assert list(read_failures(tmp_path / "out")) == ["b"]


@pytest.mark.parametrize("env, message", [({"NPROC": "gpu", "CUDA_VISIBLE_DEVICES": ""}, "no GPU is visible"),
                                          ({"NPROC": "two"}, "NPROC=two: use a number")])
def test_train_sh_refuses_a_bad_process_count(tmp_path, env, message):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["bash", str(root / "train.sh")], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHON=sys.executable, WORK_DIR=str(tmp_path), **env))
    assert out.returncode == 2 and message in out.stderr and "IRN stage" not in out.stdout


def test_train_sh_stops_when_a_stage_left_no_outputs(tmp_path):
    """Under torchrun a crashed process ends in status 1, which train.sh lets pass (some images
    failed): the missing outputs of the stage then stop the run with status 3."""
    root = Path(__file__).resolve().parents[1]
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/bash\nexit 1\n")  # every step 'fails some images' and writes nothing
    fake_python.chmod(0o755)
    out = subprocess.run(["bash", str(root / "train.sh")], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHON=str(fake_python), WORK_DIR=str(tmp_path / "work")))
    assert out.returncode == 3
    assert "the IRN stage's output is missing" in out.stderr and "GCN stage" not in out.stdout
