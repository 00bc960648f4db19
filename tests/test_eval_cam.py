"""eval_cam's background-score sweep and the Stage I table, on hand-made CAM archives and a
tiny VOC folder (no network, no pipeline run)."""
import argparse
from dataclasses import replace

import numpy as np
import pytest

from IRN.config import PROFILES, IRNConfig
from IRN.step import eval_cam
from wsgcn import report
from wsgcn.infra.config import float_values, parse_config
from wsgcn.infra.io import save_label_png, save_npz
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.infra.per_image import StepFailed
from wsgcn.seg.cams import cam_confusion, cam_confusions, cam_label_map
from wsgcn.seg.metrics import confusion_matrix, format_iou_table
from wsgcn.seg.voc import VOC12

PERSON, DOG = 14, 11  # object-class indices; VOC labels 15 and 12


def save_cams(work, name, classes, high_res):
    """A CAM archive as make_cam writes it: keys (K,) int64, cam (K, h, w), high_res (K, H, W)."""
    high_res = np.asarray(high_res, np.float32).reshape(len(classes), *np.shape(high_res)[-2:])
    h, w = strided_size(high_res.shape[1:], 4)
    save_npz(WorkDir(work).cam / f"{name}.npz", keys=np.asarray(classes, np.int64),
             cam=high_res[:, ::4, ::4][:, :h, :w].copy(), high_res=high_res)


def designed_case(tmp_path):
    """Two 4 x 8 images whose CAMs are right exactly for background scores in [0.12, 0.5) (a) and
    [0.22, 0.27) (b): of the grid 0.05, 0.10, ..., 0.60, only 0.25 labels both right.
    Returns (work dir, VOC12, names)."""
    root, work = tmp_path / "VOC2012", tmp_path / "work"
    (root / "JPEGImages").mkdir(parents=True)
    gt_a = np.zeros((4, 8), np.uint8)
    gt_a[:, 4:] = PERSON + 1
    gt_a[0, 0] = 255  # void: never counted
    cam_a = np.where(gt_a == PERSON + 1, 0.5, 0.12)
    gt_b = np.zeros((4, 8), np.uint8)
    gt_b[2:, :] = DOG + 1
    gt_b[:2, 6:] = PERSON + 1
    cam_b = np.stack([np.where(gt_b == PERSON + 1, 0.27, 0.0),      # person
                      np.where(gt_b == DOG + 1, 0.27, 0.22)])       # dog
    for name, gt in (("a", gt_a), ("b", gt_b)):
        save_label_png(root / "SegmentationClassAug" / f"{name}.png", gt)
    save_cams(work, "a", [PERSON], cam_a[None])
    save_cams(work, "b", [PERSON, DOG], cam_b)
    (tmp_path / "list.txt").write_text("a\nb\n")
    return work, VOC12(root), ["a", "b"]


def test_float_values_ranges():
    grid = float_values("0.05:0.60:0.05")
    assert len(grid) == 12 and grid[0] == 0.05 and grid[-1] == 0.6 and grid[2] == 0.15  # no 0.15000000000000002
    assert float_values("0.1:0.3:0.1") == (0.1, 0.2, 0.3)       # stop on the grid: included
    assert float_values("0.1:0.35:0.1") == (0.1, 0.2, 0.3)      # off the grid: not
    assert float_values("0.2:0.2:0.05") == (0.2,) and float_values("0.15") == (0.15,)
    for bad, message in (("abc", "expected a number or a range"), ("0.1:0.2", "start:stop:step"),
                         ("0.1,0.2", "separated by spaces"), ("0.1:0.5:0", "step > 0"),
                         ("0.5:0.1:0.1", "start <= stop"), ("nan", "finite"), ("0:1:1e-9", "more than")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            float_values(bad)


def test_cam_eval_thres_flag(capsys):
    parse = lambda *flags: parse_config(IRNConfig, PROFILES, list(flags)).cam_eval_thres  # noqa: E731
    assert parse() == (0.15,) and parse("--cam_eval_thres", "0.15") == (0.15,)
    assert parse("--cam_eval_thres", "0.1", "0.3") == (0.1, 0.3)
    assert parse("--cam_eval_thres", "0.05", "0.2:0.3:0.05") == (0.05, 0.2, 0.25, 0.3)
    with pytest.raises(SystemExit):
        parse("--cam_eval_thres", "0.5:0.1:0.1")
    assert "argument --cam_eval_thres: range '0.5:0.1:0.1': need step > 0 and start <= stop" in capsys.readouterr().err


def test_sweep_equals_one_evaluation_per_score(tmp_path):
    """cam_confusions against cam_label_map score by score, on random CAMs holding some of the
    scores exactly (ties go to the background), a void pixel, an image without classes."""
    rng = np.random.default_rng(0)
    root, work = tmp_path / "VOC2012", tmp_path / "work"
    (root / "JPEGImages").mkdir(parents=True)
    scores = [0.3, 0.05, 0.2, 0.25, 0.6]  # unsorted on purpose
    names = ["p", "q", "r"]
    for name, classes in zip(names, ([PERSON, DOG, 0], [7], [])):
        gt = rng.choice([0, 1, 8, 12, 15, 255], size=(9, 11)).astype(np.uint8)
        high_res = rng.choice([0.0, 0.05, 0.2, 0.25, 0.3, 0.31, 0.7], size=(len(classes), 9, 11))
        save_label_png(root / "SegmentationClassAug" / f"{name}.png", gt)
        save_cams(work, name, classes, high_res)
    voc = VOC12(root)
    confs = cam_confusions(WorkDir(work).cam, voc, names, scores)
    assert confs.shape == (5, 21, 21)
    for score, conf in zip(scores, confs):
        expected = sum(confusion_matrix(voc.load_gt(n), cam_label_map(
            np.load(WorkDir(work).cam / f"{n}.npz")["high_res"], np.load(WorkDir(work).cam / f"{n}.npz")["keys"],
            score), voc.num_classes) for n in names)
        np.testing.assert_array_equal(conf, expected, err_msg=f"score {score}")
        np.testing.assert_array_equal(cam_confusion(WorkDir(work).cam, voc, names, score), expected)


def test_sweep_finds_the_designed_best_score(tmp_path, capsys):
    work, voc, names = designed_case(tmp_path)
    confs = cam_confusions(WorkDir(work).cam, voc, names, float_values("0.05:0.60:0.05"))
    perfect = [bool((np.diag(c).sum() == c.sum())) for c in confs]
    assert perfect == [False] * 4 + [True] + [False] * 7  # 0.25 only
    cfg = parse_config(IRNConfig, PROFILES, ["--work_dir", str(work), "--voc12_root", str(voc.root),
                                             "--infer_list", str(tmp_path / "list.txt"),
                                             "--cam_eval_thres", "0.05:0.60:0.05"])
    eval_cam.run(cfg)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("eval_cam: 2 images, 12 background scores from 0.05 to 0.60")
    assert lines[1].split() == ["bg", "score", "mIoU", "pix.acc", "FP", "FN"]
    assert [line.split()[0] for line in lines[2:14]] == [f"{0.05 * i:.2f}" for i in range(1, 13)]
    assert lines[6].split() == ["0.25", "100.00", "100.00", "0.00", "0.00"]
    assert lines[-1] == "best: 0.25 (mIoU 100.00, chosen on the ground truth)"
    # One score: today's output, the per-class table ending with the mIoU.
    eval_cam.run(replace(cfg, cam_eval_thres=0.25))
    out = capsys.readouterr().out
    assert out == f"eval_cam: 2 images, background score 0.25\n{format_iou_table(confs[4], voc.classes)}\n"
    assert out.strip().splitlines()[-1] == "mIoU: 100.00"


def test_stage1_table_on_any_list_with_ground_truth(tmp_path, capsys):
    work, voc, names = designed_case(tmp_path)
    (tmp_path / "train.txt").write_text("a\n")
    argv = ["--work_dir", str(work), "--voc12_root", str(voc.root), "--cam_eval_thres", "0.25"]
    for list_path, count in ((tmp_path / "train.txt", 1), (tmp_path / "list.txt", 2)):  # train, train_aug
        assert report.main(argv + ["--list", str(list_path)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0] == f"Stage I on {count} images ({list_path}):"
        assert lines[2].split() == ["CAM", "100.00", "100.00", "0.00", "0.00"]  # mIoU, pix.acc, FP, FN
    # The first of several scores (IRN/config.py's sweep) makes the CAM row.
    assert report.stage_rows(WorkDir(work), voc, names, (0.25, 0.6))[0][1].trace() == 63
    # An image without ground truth: one clear error, exit status 1.
    (tmp_path / "test.txt").write_text("a\nc\nd\n")
    assert report.main(argv + ["--list", str(tmp_path / "test.txt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("report: error: 2 of 3 ground-truth label maps missing in ")
    assert err.strip().endswith(": c, d")
    assert "Traceback" not in err


def test_sweep_scores_the_images_with_a_cam_and_names_the_others(tmp_path, capsys):
    work, voc, names = designed_case(tmp_path)
    (WorkDir(work).cam / "b.npz").unlink()  # make_cam failed b
    cfg = parse_config(IRNConfig, PROFILES, ["--work_dir", str(work), "--voc12_root", str(voc.root),
                                             "--infer_list", str(tmp_path / "list.txt"),
                                             "--cam_eval_thres", "0.05:0.60:0.05"])
    with pytest.raises(StepFailed, match="eval_cam: scored 1 of 2 images; 1 without CAM"):
        eval_cam.run(cfg)
    out = capsys.readouterr()
    thresholds = float_values("0.05:0.60:0.05")
    # a alone is right for the scores in [0.12, 0.5): 0.15 is the lowest of them
    sweep = eval_cam.format_sweep(thresholds, cam_confusions(WorkDir(work).cam, voc, ["a"], thresholds))
    assert sweep.endswith("best: 0.15 (mIoU 100.00, chosen on the ground truth)")
    assert out.out == (f"eval_cam: 1 of 2 images (1 without CAM, listed below), 12 background scores from 0.05 to "
                       f"0.60; FP and FN are the object classes' means\n{sweep}\n")
    assert out.err == f"eval_cam: 1 of 2 images without CAM in {WorkDir(work).cam}: b\n"
    # The strict reader names the missing CAM.
    with pytest.raises(FileNotFoundError, match=r"1 of 2 CAMs missing in .*CAM: b$"):
        cam_confusions(WorkDir(work).cam, voc, names, thresholds)
