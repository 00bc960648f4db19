"""Issue 18, "a wrong number is never printed": scores count pixels as IRNet's eval_sem_seg does,
lists are read without guessing, an evaluation inside a run scores the images it has and names
the others, and eval.py checks where it writes before it evaluates.

The numbers are worked out by hand on 4 x 4 label maps."""
import numpy as np
import pytest
from PIL import Image
from test_eval_cam import save_cams
from test_failures import copy_demo, exit_status, irn_argv, write_list

import eval as eval_script
from IRN import run_sample
from IRN.config import PROFILES, IRNConfig
from IRN.step import eval_cam, eval_sem_seg
from wsgcn import report
from wsgcn.infra.config import parse_config
from wsgcn.infra.io import save_label_png
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import StepFailed
from wsgcn.seg.cams import cam_confusion
from wsgcn.seg.dataset import load_cls_label_table, read_image_list
from wsgcn.seg.metrics import evaluate_label_maps, format_iou_table
from wsgcn.seg.voc import NUM_OBJECT_CLASSES, VOC12

PERSON = 15  # VOC label; object-class index 14

# A person band across a background field: rows 0 and 3 background, rows 1 and 2 person.
GT = np.array([[0, 0, 0, 0], [PERSON] * 4, [PERSON] * 4, [0, 0, 0, 0]], np.uint8)


def tiny_voc(tmp_path, gts, image_sizes=None):
    """A VOC folder holding ``gts`` {name: ground truth}, each with a black JPEG of its size (or
    of ``image_sizes[name]``), and a list naming them; returns (VOC12, list path)."""
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for name, gt in gts.items():
        save_label_png(root / "SegmentationClassAug" / f"{name}.png", gt)
        h, w = (image_sizes or {}).get(name, gt.shape)
        Image.new("RGB", (w, h)).save(root / "JPEGImages" / f"{name}.jpg")
    return VOC12(root), write_list(tmp_path / "list.txt", list(gts))


def run_eval(capsys, voc, pred_dir, image_list, *extra):
    """eval.py in this process: (exit status, stdout, stderr)."""
    status = eval_script.main(["--pred", str(pred_dir), "--data_root", str(voc.root), "--list", str(image_list),
                               *map(str, extra)])  # --gt '': the data set's ground truth
    out = capsys.readouterr()
    return status, out.out, out.err


def step_config(voc, work, image_list, *extra):
    return parse_config(IRNConfig, PROFILES, ["--voc12_root", str(voc.root), "--work_dir", str(work),
                                              "--infer_list", str(image_list), *extra])


# ---------------------------------------------------------------- 1. IRNet's counting


def test_eval_counts_a_255_prediction_as_background(tmp_path, capsys):
    voc, image_list = tiny_voc(tmp_path, {"x": GT})
    work = WorkDir(tmp_path / "work")
    half = GT.copy()
    half[:, :2] = 255  # left half unlabelled, right half perfect
    save_label_png(work.sem_seg / "x.png", half)
    # The left half counts as background: its 4 background pixels are right, its 4 person pixels
    # missed.  background: TP 8, truth 8, predicted 12 -> IoU 8/12; person: TP 4, truth 8,
    # predicted 4 -> IoU 4/8, FP 0, FN 4/8; pixel accuracy 12/16.  Today's code: mIoU 100.00.
    miou = f"mIoU: {100 * (8 / 12 + 4 / 8) / 2:.2f}"
    assert miou == "mIoU: 58.33"
    status, out, err = run_eval(capsys, voc, work.sem_seg, image_list)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == miou and lines[-2].split() == ["pixel", "acc.", "75.00"]
    assert lines[2].split() == ["background", "66.67"] and lines[17].split() == ["person", "50.00"]
    # The run's step and the train.sh table count the same way.
    eval_sem_seg.run(step_config(voc, work.root, image_list))
    assert capsys.readouterr().out.strip().splitlines()[-1] == miou
    assert report.main(["--work_dir", str(work.root), "--voc12_root", str(voc.root), "--list", str(image_list)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[2].split() == ["random", "walk", "(IRNet)", "58.33", "75.00", "0.00", "50.00"] and len(rows) == 3
    # All 255: all background.  background IoU 8/16, person 0/8 (today's code: nan).
    save_label_png(work.sem_seg / "x.png", np.full((4, 4), 255, np.uint8))
    status, out, _ = run_eval(capsys, voc, work.sem_seg, image_list)
    assert status == 0 and out.strip().splitlines()[-1] == "mIoU: 25.00"


def test_eval_refuses_a_prediction_value_outside_the_classes(tmp_path, capsys):
    voc, image_list = tiny_voc(tmp_path, {"x": GT})
    pred = np.where(GT == 0, 100, GT).astype(np.uint8)  # background written as 100: today mIoU 100.00
    save_label_png(tmp_path / "pred" / "x.png", pred)
    status, out, err = run_eval(capsys, voc, tmp_path / "pred", image_list)
    assert status == 1 and out == ""
    assert err == (f"eval.py: error: {tmp_path / 'pred' / 'x.png'}: prediction value 100 is neither a class "
                   f"(0..20) nor 255 (read as background)\n")


def test_eval_refuses_a_ground_truth_value_outside_the_classes(tmp_path, capsys):
    gt = GT.copy()
    gt[0, 0] = 50  # today: silently left out
    voc, image_list = tiny_voc(tmp_path, {"x": gt})
    save_label_png(tmp_path / "pred" / "x.png", GT)
    status, out, err = run_eval(capsys, voc, tmp_path / "pred", image_list)
    assert status == 1 and out == ""
    assert err == (f"eval.py: error: {voc.gt_path('x')}: ground-truth value 50 is neither a class (0..20) "
                   f"nor void (255)\n")


# ---------------------------------------------------------------- 2, 3. reading lists


def test_a_list_naming_an_image_twice_is_refused_with_both_line_numbers(tmp_path, capsys):
    image_list = tmp_path / "train.txt"
    image_list.write_text("a\nb\n\n/JPEGImages/c.jpg /SegmentationClassAug/c.png\nd\ne\n"
                          "/JPEGImages/b.jpg /SegmentationClassAug/b.png\nb\n")
    with pytest.raises(ValueError) as error:
        read_image_list(image_list)
    assert str(error.value) == f"{image_list}:2 and {image_list}:7 both name b"
    # eval.py says it in one line, before reading any label map.
    status = eval_script.main(["--pred", str(tmp_path), "--gt", str(tmp_path), "--list", str(image_list)])
    out, err = capsys.readouterr()
    assert status == 1 and out == "" and err == f"eval.py: error: {image_list}:2 and {image_list}:7 both name b\n"


def test_label_table_naming_an_image_twice_with_other_classes_is_refused(tmp_path):
    table = tmp_path / "cls_labels.txt"
    table.write_text("a 0 3\nb 14\nc 7\na 3 0\n")  # a twice with the same classes: accepted
    labels = load_cls_label_table(table, NUM_OBJECT_CLASSES)
    assert sorted(labels) == ["a", "b", "c"] and np.flatnonzero(labels["a"]).tolist() == [0, 3]
    table.write_text("a 0 3\nb 14\n\na 3\n")
    with pytest.raises(ValueError) as error:
        load_cls_label_table(table, NUM_OBJECT_CLASSES)
    assert str(error.value) == f"{table}:1 and {table}:4 give image a different classes"


def test_a_name_with_a_dot_keeps_its_dot(tmp_path, capsys):
    image_list = tmp_path / "list.txt"
    image_list.write_text("a.b\nc.JPG\n/JPEGImages/x.y.jpg /SegmentationClassAug/x.y.png\nd.jpeg\ne.v2.PNG\nf.\n")
    assert read_image_list(image_list) == ["a.b", "c", "x.y", "d", "e.v2", "f."]
    # eval.py finds a.b's files (today it looked for a.png).
    voc, image_list = tiny_voc(tmp_path, {"a.b": GT})
    save_label_png(tmp_path / "pred" / "a.b.png", GT)
    status, out, err = run_eval(capsys, voc, tmp_path / "pred", image_list)
    assert status == 0 and out.startswith("1 images, ") and out.strip().endswith("mIoU: 100.00"), err


# ---------------------------------------------------------------- 4. evaluation inside a run


def test_run_sample_goes_on_after_make_cam_failed_some_images_and_eval_scores_the_rest(irn_run, demo_root, tmp_path,
                                                                                      capsys):
    demo = copy_demo(demo_root, tmp_path)
    names = read_image_list(demo_root / "val.txt")[:3]
    bad, good = names[1], [names[0], names[2]]
    (demo / "VOC2012/JPEGImages" / f"{bad}.jpg").write_bytes(b"not a jpeg at all" * 50)
    work = WorkDir(tmp_path / "work")
    argv = irn_argv(irn_run, demo, work.root, write_list(tmp_path / "list.txt", names),
                    {"make_cam", "eval_cam", "make_sem_seg", "eval_sem_seg"})

    assert exit_status(run_sample.main, argv) == 1  # today: 2, eval_cam stopped the run
    out = capsys.readouterr()
    voc = VOC12(demo / "VOC2012")
    cam_table = format_iou_table(cam_confusion(work.cam, voc, good, 0.15), voc.classes)
    sem_seg_table = format_iou_table(evaluate_label_maps(work.sem_seg, voc.gt_path, good, voc.num_classes), voc.classes)
    assert f"eval_cam: 2 of 3 images (1 without CAM, listed below), background score 0.15\n{cam_table}\n" in out.out
    assert (f"eval_sem_seg: 2 of 3 images (1 without prediction, listed below), random-walk labels {work.sem_seg}\n"
            f"{sem_seg_table}\n") in out.out
    err = out.err.splitlines()
    assert f"eval_cam: 1 of 3 images without CAM in {work.cam}: {bad}" in err
    assert "eval_cam: scored 2 of 3 images; 1 without CAM (listed above)" in err
    assert f"eval_sem_seg: 1 of 3 images without prediction in {work.sem_seg}: {bad}" in err
    assert ("run_sample.py: some images failed in make_cam, eval_cam, make_sem_seg_labels, eval_sem_seg "
            "(see their failures.txt)") in err
    assert "Traceback" not in out.err


def test_eval_cam_blames_a_ground_truth_of_another_size(tmp_path, capsys):
    gt_b = GT[:, :3].copy()  # 4 x 3, its image 4 x 4
    voc, image_list = tiny_voc(tmp_path, {"a": GT, "b": gt_b}, image_sizes={"b": (4, 4)})
    work = WorkDir(tmp_path / "work")
    person_cam = np.where(GT == PERSON, 0.5, 0.1)[None]  # right at background score 0.25
    for name in ("a", "b"):
        save_cams(work.root, name, [PERSON - 1], person_cam)  # made from the 4 x 4 images: right
        save_label_png(work.sem_seg / f"{name}.png", GT)
    cfg = step_config(voc, work.root, image_list, "--cam_eval_thres", "0.25")
    blame = f"{voc.gt_path('b')}: the ground truth is 4x3 but its image {voc.image_path('b')} is 4x4"

    with pytest.raises(StepFailed, match="scored 1 of 2 images; 1 failed"):
        eval_cam.run(cfg)
    out = capsys.readouterr()
    table = format_iou_table(cam_confusion(work.cam, voc, ["a"], 0.25), voc.classes)
    assert table.endswith("mIoU: 100.00")
    assert out.out == f"eval_cam: 1 of 2 images (1 failed, listed below), background score 0.25\n{table}\n"
    assert out.err == f"eval_cam: b: {blame}\n"  # not the CAM, which fits its image

    with pytest.raises(StepFailed, match="scored 1 of 2 images; 1 failed"):
        eval_sem_seg.run(cfg)
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == f"eval_sem_seg: 1 of 2 images (1 failed, listed below), random-walk labels " \
                                      f"{work.sem_seg}"
    assert out.out.strip().endswith("mIoU: 100.00") and out.err == f"eval_sem_seg: b: {blame}\n"


def test_report_scores_a_stage_on_the_images_it_has_and_says_so(tmp_path, capsys):
    voc, image_list = tiny_voc(tmp_path, {"a": GT, "b": GT, "c": GT})
    work = WorkDir(tmp_path / "work")
    half = GT.copy()
    half[:, :2] = 255
    argv = ["--work_dir", str(work.root), "--voc12_root", str(voc.root), "--list", str(image_list)]
    for name in ("a", "b", "c"):
        save_label_png(work.sem_seg / f"{name}.png", GT)
    save_label_png(work.gcn_label / "a.png", GT)
    save_label_png(work.gcn_label / "c.png", half)
    assert report.main(argv) == 0  # today: no GCN row at all
    lines = capsys.readouterr().out.strip().splitlines()
    # GCN on a and c: background TP 16, truth 16, predicted 20 -> 16/20; person TP 12, truth 16,
    # predicted 12 -> 12/16, FN 4/16; pixel accuracy 28/32.
    assert lines[3].split() == ["GCN", f"{100 * (16 / 20 + 12 / 16) / 2:.2f}", "87.50", "0.00", "25.00"]
    assert lines[4:] == ["GCN: 2 of 3 images (1 without labels: b)"]
    assert lines[2].split()[-4:] == ["100.00", "100.00", "0.00", "0.00"]  # the random walk: all three
    save_label_png(work.gcn_label / "b.png", GT)  # all there: no line under the table
    assert report.main(argv) == 0 and len(capsys.readouterr().out.strip().splitlines()) == 4


# ---------------------------------------------------------------- 5. eval.py's output paths


@pytest.mark.parametrize("flag", ["--json", "--confusion_csv", "--confusion_png"])
def test_eval_json_to_a_folder_is_refused_before_evaluating(tmp_path, capsys, flag):
    voc, image_list = tiny_voc(tmp_path, {"x": GT})
    (tmp_path / "pred").mkdir()  # no prediction: evaluating would fail with status 1
    (tmp_path / "out").mkdir()
    status, out, err = run_eval(capsys, voc, tmp_path / "pred", image_list, flag, tmp_path / "out")
    assert (status, out) == (2, "") and err == f"eval.py: error: {flag} {tmp_path / 'out'} is a folder\n"
    (tmp_path / "file").write_text("")
    status, out, err = run_eval(capsys, voc, tmp_path / "pred", image_list, flag, tmp_path / "file/sub/scores")
    assert (status, out) == (2, "")
    assert err == f"eval.py: error: {flag} {tmp_path / 'file/sub/scores'} cannot be written: {tmp_path / 'file'} " \
                  f"is not a folder\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_run_sample_goes_on_through_train_irn_and_the_gcn_inputs_after_make_cam_failed_an_image(
        irn_run, demo_root, tmp_path, capsys):
    """The whole IRN stage after a bad image: cam_to_ir_label fails it again, train_irn leaves it
    out (an earlier step's failure: no 5 % refusal), make_sem_seg fails it, and the others get
    every output; exit 1."""
    demo = copy_demo(demo_root, tmp_path)
    names = read_image_list(demo_root / "train.txt")[:3]
    bad, good = names[1], [names[0], names[2]]
    (demo / "VOC2012/JPEGImages" / f"{bad}.jpg").write_bytes(b"")
    work = WorkDir(tmp_path / "work")
    argv = irn_argv(irn_run, demo, work.root, write_list(tmp_path / "list.txt", names),
                    {"make_cam", "eval_cam", "cam_to_ir_label", "train_irn", "make_sem_seg", "eval_sem_seg"},
                    "--irn_batch_size", "2", "--irn_num_epoches", "1")
    argv[argv.index("--irn_weights_name") + 1] = "sess/irn.pth"  # not the shared run's weights

    assert exit_status(run_sample.main, argv) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    for step in ("make_cam", "eval_cam", "cam_to_ir_label", "train_irn", "make_sem_seg_labels", "eval_sem_seg"):
        assert f"[{step}] done in" in out.out
    assert (work.root / "sess/irn.pth").is_file()
    assert f"train_irn: {bad}: failed in an earlier step" in out.err
    for folder in (work.cam, work.ir_label, work.sem_seg, work.boundary, work.features):
        assert sorted(p.stem for p in folder.glob("demo_*")) == good
