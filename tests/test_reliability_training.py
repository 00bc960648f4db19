"""Training steps and bad inputs (issue 18, case 3): train_cam, train_irn and DeepLab/train.py
screen their list before the first iteration (wsgcn/infra/screening.py).  A bad image is named on one
stderr line, listed in the step's logs/<step>/failures.txt and left out; the others are trained
on and the exit status is 1.  More than 5 % bad refuses the step before anything is trained
or written (exit status 2, one line).

The "goes on" cases use a 24-image demo set, where one bad image is 4.2 % of the list.
"""
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from test_failures import assert_one_failure, copy_demo, exit_status, read_failures, write_list

from DeepLab import train as deeplab_train
from IRN import run_sample
from wsgcn.demo_data import make_demo_dataset
from wsgcn.infra.io import load_label_png, save_label_png
from wsgcn.infra.per_image import Failures
from wsgcn.infra.screening import MAX_BAD_SHARE, image_size_of, screen_training_list
from wsgcn.seg.dataset import read_image_list

BAD = "demo_000005"  # the image each case spoils


@pytest.fixture(scope="module")
def big_demo(tmp_path_factory):
    """24 training images (one bad one is under 5 %) and 2 val images."""
    return make_demo_dataset(tmp_path_factory.mktemp("big_demo"), num_train=24, num_val=2, seed=1)


@pytest.fixture
def demo(big_demo, tmp_path):
    return copy_demo(big_demo, tmp_path)


def irn_step_argv(demo, work, step, *extra):
    """run_sample's argv running only ``step`` on ``demo`` at tiny sizes (1 epoch, batch 4)."""
    argv = ["--profile", "demo", "--voc12_root", str(demo / "VOC2012"), "--train_list", str(demo / "train.txt"),
            "--infer_list", str(demo / "val.txt"), "--cls_labels", str(demo / "cls_labels.txt"),
            "--work_dir", str(work), "--cam_crop_size", "64", "--cam_batch_size", "4", "--cam_num_epoches", "1",
            "--irn_crop_size", "96", "--irn_batch_size", "4", "--irn_num_epoches", "1",
            "--irn_backbone_weights", "none", "--num_workers", "0", "--quiet", "True"]
    for flag, _ in run_sample.STEPS:
        argv += [f"--{flag}", str(flag == f"{step}_pass")]
    return argv + list(extra)


def edit_table(demo, name, line):
    """Replace image ``name``'s line of cls_labels.txt by ``line`` (None: drop it)."""
    table = demo / "cls_labels.txt"
    lines = [(line if row.split()[0] == name else row) for row in table.read_text().splitlines()]
    table.write_text("".join(f"{row}\n" for row in lines if row is not None))


def run_train_cam(demo, tmp_path, capsys, *extra):
    """train_cam through run_sample: (exit status, stdout, stderr, work dir)."""
    work = tmp_path / "work"
    status = exit_status(run_sample.main, irn_step_argv(demo, work, "train_cam", *extra))
    out, err = capsys.readouterr()
    return status, out, err, work


def assert_trained_without(out, work, step, weights, images):
    """The step trained one epoch of batch 4 on the ``images`` - 1 good images, wrote its
    weights, and its failures.txt is beside its TensorBoard logs."""
    assert f"{step}: {(images - 1) // 4} steps in " in out, out
    assert (work / weights).is_file()
    assert list((work / "logs" / step).glob("events.out.tfevents.*"))


# ---------------------------------------------------------------- train_cam


def test_the_paper_recipe_from_a_random_init_stops_at_the_first_non_finite_loss(demo, tmp_path, capsys):
    """SGD at lr 0.1 on running batch-norm statistics, no ImageNet weights: the loss leaves the
    floats within a few steps; the run stops there, exit 2, one line with the cause, no weights."""
    status, out, err, work = run_train_cam(demo, tmp_path, capsys, "--cam_optimizer", "sgd", "--cam_frozen_bn",
                                           "True", "--backbone_weights", "none", "--cam_learning_rate", "0.1",
                                           "--cam_num_epoches", "3")
    assert status == 2, err
    line = [row for row in err.splitlines() if "training diverged" in row]
    assert len(line) == 1 and "Traceback" not in err, err
    assert line[0].startswith("run_sample.py: error: train_cam: the loss is ")
    assert "the paper's SGD recipe (lr 0.1, frozen batch norm) is made for ImageNet weights" in line[0]
    assert line[0].endswith("no weights written")
    assert not (work / "sess/res50_cam.pth").exists()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_zero_byte_image_is_left_out_of_train_cam_and_named(demo, tmp_path, capsys, workers):
    """With --num_workers 1 the screening runs in a data-loading worker, as the training does."""
    image = demo / "VOC2012/JPEGImages" / f"{BAD}.jpg"
    image.write_bytes(b"")
    status, out, err, work = run_train_cam(demo, tmp_path, capsys, "--num_workers", workers)
    assert status == 1, err
    assert_trained_without(out, work, "train_cam", "sess/res50_cam.pth", 24)  # 23 images: 5 steps, not 6
    assert_one_failure(err, work / "logs/train_cam", "train_cam", BAD, image, "unreadable image")


def test_an_image_missing_from_the_label_table_is_left_out_of_train_cam(demo, tmp_path, capsys):
    edit_table(demo, BAD, None)
    status, out, err, work = run_train_cam(demo, tmp_path, capsys)
    assert status == 1, err
    assert_trained_without(out, work, "train_cam", "sess/res50_cam.pth", 24)
    assert_one_failure(err, work / "logs/train_cam", "train_cam", BAD, demo / "cls_labels.txt",
                       f"no labels for image '{BAD}'")


def test_an_image_without_a_class_is_left_out_of_train_cam(demo, tmp_path, capsys):
    edit_table(demo, BAD, BAD)
    status, out, err, work = run_train_cam(demo, tmp_path, capsys)
    assert status == 1, err
    assert_trained_without(out, work, "train_cam", "sess/res50_cam.pth", 24)
    assert_one_failure(err, work / "logs/train_cam", "train_cam", BAD, f"image '{BAD}' has no object class")


def test_a_bad_validation_image_is_left_out_of_the_validation_loss(demo, tmp_path, capsys):
    """The validation list is screened too (train_cam would stop after its first epoch); an
    image shared with the training list is checked and named once."""
    val = read_image_list(demo / "train.txt")[:3] + read_image_list(demo / "val.txt")
    image = demo / "VOC2012/JPEGImages" / f"{BAD}.jpg"
    image.write_bytes(b"")
    status, out, err, work = run_train_cam(demo, tmp_path, capsys, "--val_list",
                                           str(write_list(tmp_path / "val.txt", [BAD] + val)))
    assert status == 1, err
    assert "epoch 1: validation loss " in out
    assert_one_failure(err, work / "logs/train_cam", "train_cam", BAD, image)


# ---------------------------------------------------------------- train_irn


def test_an_image_without_its_ir_label_is_left_out_of_train_irn(demo, tmp_path, capsys):
    """IR labels stand-ins: the ground truth (0..20, 255), which cam_to_ir_label's maps look like."""
    work = tmp_path / "work"
    shutil.copytree(demo / "VOC2012/SegmentationClassAug", work / "IRN4GCN/IR_LABEL")
    missing = work / "IRN4GCN/IR_LABEL" / f"{BAD}.png"
    missing.unlink()
    status = exit_status(run_sample.main, irn_step_argv(demo, work, "train_irn"))
    out, err = capsys.readouterr()
    assert status == 1, err
    assert_trained_without(out, work, "train_irn", "sess/res50_irn.pth", 24)
    assert_one_failure(err, work / "logs/train_irn", "train_irn", BAD, "IR label not found", missing)


def test_an_ir_label_of_the_wrong_size_is_left_out_of_train_irn(demo, tmp_path, capsys):
    work = tmp_path / "work"
    shutil.copytree(demo / "VOC2012/SegmentationClassAug", work / "IRN4GCN/IR_LABEL")
    label = work / "IRN4GCN/IR_LABEL" / f"{BAD}.png"
    save_label_png(label, load_label_png(label)[:-1])
    status = exit_status(run_sample.main, irn_step_argv(demo, work, "train_irn"))
    out, err = capsys.readouterr()
    assert status == 1, err
    assert_trained_without(out, work, "train_irn", "sess/res50_irn.pth", 24)
    assert_one_failure(err, work / "logs/train_irn", "train_irn", BAD, label, "label map is")


# ---------------------------------------------------------------- DeepLab


def deeplab_argv(demo, work, labels, *extra):
    """One iteration of DeepLab/train.py on the 24 images with the label maps in ``labels``."""
    return ["--profile", "demo", "--work_dir", str(work), "--voc12_root", str(demo / "VOC2012"),
            "--train_list", str(demo / "train.txt"), "--label_dir", str(labels), "--init", "none",
            "--crop_size", "32", "--train_scales", "0.25", "--batch_size", "2", "--iterations", "1",
            "--num_workers", "0", "--quiet", "True", *extra]


@pytest.fixture
def labels(demo, tmp_path):
    """A copy of the 24 images' ground truth, to spoil."""
    return shutil.copytree(demo / "VOC2012/SegmentationClassAug", tmp_path / "labels")


def test_a_label_map_of_the_wrong_size_is_left_out_of_deeplab_train(demo, tmp_path, capsys, labels):
    label = labels / f"{BAD}.png"
    h, w = load_label_png(label).shape
    save_label_png(label, np.zeros((h, w + 1), np.uint8))
    work = tmp_path / "work"
    assert exit_status(deeplab_train.main, deeplab_argv(demo, work, labels)) == 1
    out, err = capsys.readouterr()
    assert "deeplab train: 1 iterations in " in out and (work / "sess/deeplab.pth").is_file()
    assert_one_failure(err, work / "logs/deeplab", "deeplab train", BAD, label, f"label map is {h}x{w + 1}, "
                       f"the image is {h}x{w}")


def test_a_missing_label_map_is_left_out_of_deeplab_train(demo, tmp_path, capsys, labels):
    label = labels / f"{BAD}.png"
    label.unlink()
    work = tmp_path / "work"
    assert exit_status(deeplab_train.main, deeplab_argv(demo, work, labels, "--num_workers", "1")) == 1
    out, err = capsys.readouterr()
    assert (work / "sess/deeplab.pth").is_file()
    assert_one_failure(err, work / "logs/deeplab", "deeplab train", BAD, "label map not found", label)


def test_a_label_outside_the_classes_is_left_out_of_deeplab_train_and_a_clean_rerun_removes_failures_txt(
        demo, tmp_path, capsys, labels):
    label = labels / f"{BAD}.png"
    good = load_label_png(label)
    save_label_png(label, np.full_like(good, 30))
    work = tmp_path / "work"
    argv = deeplab_argv(demo, work, labels)
    assert exit_status(deeplab_train.main, argv) == 1
    assert_one_failure(capsys.readouterr().err, work / "logs/deeplab", "deeplab train", BAD,
                       "label 30 is neither a class")
    save_label_png(label, good)
    assert exit_status(deeplab_train.main, argv) == 0
    assert not (work / "logs/deeplab/failures.txt").exists()
    assert not (work / "logs/deeplab/failures.log").exists()


# ---------------------------------------------------------------- the 5 % rule


def test_more_than_5_percent_bad_images_refuse_training_before_any_iteration(demo, tmp_path, capsys):
    """2 bad of 24 (8.3 %): nothing is trained, no weights, no resume state, no TensorBoard
    log; one line gives the count, the share and the first names with their reasons, and
    failures.txt lists them all."""
    first, second = read_image_list(demo / "train.txt")[3], BAD
    (demo / "VOC2012/JPEGImages" / f"{first}.jpg").write_bytes(b"")
    edit_table(demo, second, None)
    status, out, err, work = run_train_cam(demo, tmp_path, capsys)
    assert status == 2, err
    assert "Traceback" not in err and "steps in" not in out
    refusal = [line for line in err.splitlines() if "unusable" in line]
    assert len(refusal) == 1, err
    assert refusal[0].startswith(f"run_sample.py: error: train_cam: 2 of 24 images (8.3 %) of {demo / 'train.txt'} "
                                 f"are unusable, more than 5 %: {first} (")
    assert f"), {second} ({demo / 'cls_labels.txt'}: no labels for image '{second}')" in refusal[0]
    assert refusal[0].endswith("fix them or remove them from the list")
    assert set(read_failures(work / "logs/train_cam")) == {first, second}
    assert not (work / "sess").exists() or not list((work / "sess").iterdir())  # no weights, no resume state
    assert not list(work.rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("bad_count, refused", [(1, False), (2, True)])
def test_the_5_percent_rule_at_its_edge(tmp_path, bad_count, refused):
    """1 bad of 20 is 5 %, not more: the 19 others go on; 2 of 20 refuse."""
    names = [f"img{i:02d}" for i in range(20)]
    bad = set(names[7:7 + bad_count])
    failures = Failures("step", tmp_path)
    if refused:
        with pytest.raises(ValueError, match=r"^step: 2 of 20 images \(10.0 %\) of L are unusable, more than 5 %"):
            screen_training_list(names, BadNames(bad), failures, list_path="L")
    else:
        assert bad_count <= MAX_BAD_SHARE * len(names)
        assert screen_training_list(names, BadNames(bad), failures, list_path="L") == [n for n in names if n not in bad]
        assert [name for name, _, _ in failures.items] == sorted(bad)


class BadNames:
    """A check that fails the given names with a reason naming the process that checked them."""

    def __init__(self, bad):
        self.bad = bad

    def __call__(self, name):
        if name in self.bad:
            raise ValueError(f"{name}.jpg: bad, checked in process {os.getpid()}")
        return name


def test_the_checks_run_in_the_data_loading_workers(tmp_path):
    failures = Failures("step", tmp_path)
    names = [f"img{i:02d}" for i in range(40)]
    assert screen_training_list(names, BadNames({"img03"}), failures, num_workers=1, quiet=True) == \
        names[:3] + names[4:]
    ((name, reason, _),) = failures.items
    assert name == "img03" and reason.startswith("img03.jpg: bad, checked in process ")
    assert int(reason.rsplit(" ", 1)[1]) != os.getpid()


def test_a_header_read_tells_an_image_from_an_empty_or_foreign_file(tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.jpg")
    assert image_size_of(tmp_path / "a.jpg") == (20, 30)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    for path in (tmp_path / "empty.jpg", tmp_path / "text.jpg"):
        with pytest.raises(ValueError, match=f"{path}: unreadable image"):
            image_size_of(path)
    with pytest.raises(FileNotFoundError, match=f"image not found: {tmp_path / 'none.jpg'}"):
        image_size_of(tmp_path / "none.jpg")


def test_images_an_earlier_step_failed_do_not_count_towards_the_5_percent_rule(tmp_path):
    """train_irn after cam_to_ir_label failed 3 of 8 images: they are left out and named, but
    the run goes on (they were reported by the earlier step); a new bad image still counts."""
    names = [f"img{i}" for i in range(8)]
    upstream = tmp_path / "IR_LABEL"
    upstream.mkdir()
    (upstream / "failures.txt").write_text("".join(f"{n}\tarchive not found\n" for n in names[:3]))
    failures = Failures("train_irn", tmp_path / "logs")
    checked = []

    def check(name):
        checked.append(name)
        return name

    good = screen_training_list(names, check, failures, list_path="list.txt", upstream=upstream)
    assert good == names[3:] and checked == names[3:]
    assert [name for name, _, _ in failures.items] == names[:3]
    assert all("failed in an earlier step" in reason for _, reason, _ in failures.items)

    def check_one_more_bad(name):
        if name == names[5]:
            raise ValueError(f"{name}: unreadable image")
        return name

    with pytest.raises(ValueError, match="1 of 8 images"):
        screen_training_list(names, check_one_more_bad, Failures("train_irn", tmp_path / "logs2"), list_path="l",
                             upstream=upstream)
