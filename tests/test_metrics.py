import csv
import json

import numpy as np
import pytest

from wsgcn.infra.io import save_label_png
from wsgcn.seg.metrics import (
    class_iou,
    class_iou_table,
    class_scores,
    confusion_matrix,
    evaluate_label_maps,
    format_iou_table,
    label_map_confusion,
    mean_iou,
    pixel_accuracy,
    score_images,
    write_class_iou_csv,
    write_confusion_csv,
    write_scores_json,
)
from wsgcn.seg.voc import CLASS_NAMES, NUM_CLASSES

GT = np.array([[0, 0, 1], [1, 255, 2]])
PRED = np.array([[0, 1, 1], [2, 0, 2]])


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(GT, PRED, num_classes=3)
    # Rows = truth, columns = prediction; the void pixel is skipped.
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_iou_by_hand():
    conf = confusion_matrix(GT, PRED, num_classes=3)
    np.testing.assert_allclose(class_iou(conf), [1 / 2, 1 / 3, 1 / 2])
    assert mean_iou(conf) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(conf) == pytest.approx(3 / 5)


def test_absent_classes_are_skipped_but_false_positives_count():
    # 21 classes; truth holds 0 and 5, prediction adds 7 (a false positive, IoU 0).
    gt = np.array([0, 0, 5, 5])
    pred = np.array([0, 0, 5, 7])
    iou = class_iou(confusion_matrix(gt, pred, NUM_CLASSES))
    assert np.isnan(iou[1]) and iou[7] == 0
    assert mean_iou(confusion_matrix(gt, pred, NUM_CLASSES)) == pytest.approx((1 + 0.5 + 0) / 3)


def test_a_255_prediction_is_background_and_other_values_outside_the_classes_are_refused():
    # IRNet's eval_sem_seg: every pixel with a valid truth counts, a 255 prediction as background.
    conf = confusion_matrix(np.array([1, 1, 0, 255]), np.array([1, 255, 255, 255]), num_classes=3)
    np.testing.assert_array_equal(conf, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"^p.png: prediction value 3, 200 is neither a class \(0..2\) nor 255"):
        confusion_matrix(np.array([1, 1, 1]), np.array([1, 200, 3]), num_classes=3, pred_source="p.png")
    with pytest.raises(ValueError, match=r"^g.png: ground-truth value 50 is neither a class \(0..2\) nor void"):
        confusion_matrix(np.array([1, 50]), np.array([1, 1]), num_classes=3, gt_source="g.png")
    with pytest.raises(ValueError, match=r"^prediction value 7 "):  # no file given: no prefix
        confusion_matrix(np.array([1]), np.array([7]), num_classes=3)


def test_table_ends_with_miou():
    table = format_iou_table(confusion_matrix(GT, PRED, NUM_CLASSES), CLASS_NAMES)
    assert table.splitlines()[-1] == "mIoU: 44.44"
    assert "pixel acc." in table and "aeroplane" in table


def test_evaluate_label_maps(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    save_label_png(gt_dir / "a.png", np.array([[0, 0, 1, 1]] * 4, np.uint8))
    save_label_png(gt_dir / "b.png", np.array([[2, 2], [2, 0]], np.uint8))
    save_label_png(pred_dir / "a.png", np.array([[0, 1], [0, 1]], np.uint8))  # half size
    save_label_png(pred_dir / "b.png", np.array([[2, 2], [0, 0]], np.uint8))
    with pytest.raises(ValueError, match="a.png.*2x2.*4x4.*--upsample"):
        evaluate_label_maps(pred_dir, gt_dir, ["a", "b"], NUM_CLASSES)
    conf = evaluate_label_maps(pred_dir, gt_dir, ["a", "b"], NUM_CLASSES, upsample=True)
    assert conf[0, 0] == 8 + 1 and conf[1, 1] == 8 and conf[2, 2] == 2 and conf[2, 0] == 1
    assert conf.sum() == 20
    # A larger prediction is never upsampled.
    save_label_png(pred_dir / "b.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="b.png"):
        evaluate_label_maps(pred_dir, gt_dir, ["b"], NUM_CLASSES, upsample=True)
    with pytest.raises(FileNotFoundError, match="2 of 3 predictions missing.*c, d"):
        evaluate_label_maps(pred_dir, gt_dir, ["a", "c", "d"], NUM_CLASSES)
    # A prediction without ground truth: one error naming the images, before any is read.
    save_label_png(pred_dir / "c.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match="1 of 2 ground-truth label maps missing in .*gt: c$"):
        evaluate_label_maps(pred_dir, gt_dir, ["a", "c"], NUM_CLASSES)
    # The ground truth as a function name -> path (a data set's gt_path): the same counts, the same errors.
    save_label_png(pred_dir / "b.png", np.array([[2, 2], [0, 0]], np.uint8))
    gt_path = lambda name: gt_dir / f"{name}.png"  # noqa: E731
    np.testing.assert_array_equal(evaluate_label_maps(pred_dir, gt_path, ["a", "b"], NUM_CLASSES, upsample=True), conf)
    with pytest.raises(FileNotFoundError, match="1 of 2 ground-truth label maps missing in .*gt: c$"):
        evaluate_label_maps(pred_dir, gt_path, ["a", "c"], NUM_CLASSES)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_confusion_csv(tmp_path):
    conf = confusion_matrix(GT, PRED, num_classes=3)
    write_confusion_csv(tmp_path / "c.csv", conf, ["bg", "a", "b"])
    assert read_csv(tmp_path / "c.csv") == [["gt\\pred", "bg", "a", "b"], ["bg", "1", "1", "0"],
                                            ["a", "0", "1", "1"], ["b", "0", "0", "1"]]
    with pytest.raises(ValueError, match="d.csv.*does not fit 21 classes"):
        write_confusion_csv(tmp_path / "d.csv", conf, CLASS_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]  # no temporary file left behind


def test_class_iou_table_and_csv(tmp_path):
    rows = [("A", confusion_matrix(GT, PRED, num_classes=3)), ("B", confusion_matrix(GT, GT, num_classes=3))]
    table = class_iou_table(rows)
    np.testing.assert_allclose(table, [[1 / 2, 1 / 3, 1 / 2, 4 / 9], [1, 1, 1, 1]])
    write_class_iou_csv(tmp_path / "iou.csv", rows, ["bg", "a", "b"])
    assert read_csv(tmp_path / "iou.csv") == [["class", "A", "B"], ["bg", "50.00", "100.00"],
                                              ["a", "33.33", "100.00"], ["b", "50.00", "100.00"],
                                              ["mIoU", "44.44", "100.00"]]
    # A class absent from truth and prediction is an empty cell, not 0.
    write_class_iou_csv(tmp_path / "iou21.csv", [("A", confusion_matrix(GT, PRED, NUM_CLASSES))], CLASS_NAMES)
    written = read_csv(tmp_path / "iou21.csv")
    assert len(written) == 23 and written[4] == ["bird", ""] and written[-1] == ["mIoU", "44.44"]


def test_protocol_scores_by_hand():
    conf = confusion_matrix(GT, PRED, num_classes=3)
    # conf = [[1, 1, 0],      rows = truth, columns = prediction
    #         [0, 1, 1],
    #         [0, 0, 1]]
    # class  TP  gt  pred  union  IoU  prec.  recall  FP = 1 - gt/union  FN = 1 - pred/union
    #   0     1   2    1     2    1/2   1/1    1/2     1 - 2/2 = 0        1 - 1/2 = 1/2
    #   1     1   2    2     3    1/3   1/2    1/2     1 - 2/3 = 1/3      1 - 2/3 = 1/3
    #   2     1   1    2     2    1/2   1/2    1/1     1 - 1/2 = 1/2      1 - 2/2 = 0
    s = class_scores(conf)
    np.testing.assert_allclose(s["iou"], [1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(s["precision"], [1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(s["recall"], [1 / 2, 1 / 2, 1])
    np.testing.assert_allclose(s["fp"], [0, 1 / 3, 1 / 2])
    np.testing.assert_allclose(s["fn"], [1 / 2, 1 / 3, 0])
    assert s["fp_background"] == 0 and s["fn_background"] == pytest.approx(1 / 2)
    assert s["fp_objects"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # object classes 1 and 2
    assert s["fn_objects"] == pytest.approx((1 / 3 + 0) / 2)
    assert s["miou"] == pytest.approx(4 / 9) and s["pixel_accuracy"] == pytest.approx(3 / 5)


def test_protocol_scores_skip_absent_classes():
    # 21 classes; truth holds 0 and 5, prediction adds 7.
    # class 5: TP 1, gt 2, pred 1, union 2: FP 0, FN 1/2, precision 1, recall 1/2
    # class 7: TP 0, gt 0, pred 1, union 1: FP 1, FN 0, precision 0, recall undefined
    s = class_scores(confusion_matrix(np.array([0, 0, 5, 5]), np.array([0, 0, 5, 7]), NUM_CLASSES))
    assert s["precision"][5] == 1 and s["recall"][5] == 0.5 and s["fp"][5] == 0 and s["fn"][5] == 0.5
    assert s["precision"][7] == 0 and np.isnan(s["recall"][7]) and s["fp"][7] == 1 and s["fn"][7] == 0
    assert all(np.isnan(s[key][1]) for key in ("iou", "precision", "recall", "fp", "fn"))
    assert s["fp_objects"] == pytest.approx(0.5) and s["fn_objects"] == pytest.approx(0.25)
    assert s["fp_background"] == 0 and s["fn_background"] == 0


def test_protocol_scores_are_the_papers_formulas():
    conf = np.random.default_rng(0).integers(0, 50, (21, 21))
    conf[3] = conf[:, 3] = 0  # a class absent from truth and prediction
    s = class_scores(conf)
    tp, gt, pred = np.diag(conf), conf.sum(1), conf.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(s["fp"], 1 - gt / union)
        np.testing.assert_allclose(s["fn"], 1 - pred / union)
        np.testing.assert_allclose(s["precision"], tp / pred)
        np.testing.assert_allclose(s["recall"], tp / gt)
    np.testing.assert_allclose((s["iou"] + s["fp"] + s["fn"])[union > 0], 1)
    assert s["fp_objects"] == pytest.approx(np.nanmean(s["fp"][1:]))
    assert s["miou"] == mean_iou(conf)
    empty = class_scores(np.zeros((21, 21), np.int64))
    assert np.isnan(empty["miou"]) and np.isnan(empty["fp_objects"]) and np.isnan(empty["pixel_accuracy"])


def test_protocol_table():
    conf = confusion_matrix(GT, PRED, num_classes=3)
    plain = format_iou_table(conf, ["bg", "a", "b"])
    assert plain.splitlines() == ["class              IoU", "bg               50.00", "a                33.33",
                                  "b                50.00", "pixel acc.       60.00", "mIoU: 44.44"]
    table = format_iou_table(conf, ["bg", "a", "b"], protocol=True).splitlines()
    assert table[0].split() == ["class", "IoU", "prec.", "recall", "FP", "FN"]
    assert table[1].split() == ["bg", "50.00", "100.00", "50.00", "0.00", "50.00"]
    assert table[2].split() == ["a", "33.33", "50.00", "50.00", "33.33", "33.33"]
    assert table[3].split() == ["b", "50.00", "50.00", "100.00", "50.00", "0.00"]
    assert table[4:] == ["pixel acc.       60.00", "FP background     0.00", "FN background    50.00",
                         "FP objects       41.67", "FN objects       16.67", "mIoU: 44.44"]
    # Undefined figures are dashes; the last line is still the mIoU.
    table = format_iou_table(confusion_matrix(GT, PRED, NUM_CLASSES), CLASS_NAMES, protocol=True).splitlines()
    assert table[4].split() == ["bird", "-", "-", "-", "-", "-"] and table[-1] == "mIoU: 44.44"


def test_scores_json(tmp_path):
    conf = confusion_matrix(GT, PRED, NUM_CLASSES)
    write_scores_json(tmp_path / "s.json", conf, 2, CLASS_NAMES, pred="P")
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["pred"] == "P" and record["images"] == 2
    assert record["miou"] == pytest.approx(4 / 9) and record["pixel_accuracy"] == pytest.approx(3 / 5)
    assert record["fp_background"] == 0 and record["fn_background"] == 0.5
    assert record["fp_objects"] == pytest.approx(5 / 12) and record["fn_objects"] == pytest.approx(1 / 6)
    assert [c["name"] for c in record["classes"]][:3] == ["background", "aeroplane", "bicycle"]
    assert record["classes"][1] == {"name": "aeroplane", "iou": pytest.approx(1 / 3), "precision": 0.5,
                                    "recall": 0.5, "fp": pytest.approx(1 / 3), "fn": pytest.approx(1 / 3)}
    assert record["classes"][3] == {"name": "bird", "iou": None, "precision": None, "recall": None,
                                    "fp": None, "fn": None}  # absent: null, as JSON has no NaN
    assert record["confusion"] == conf.tolist()
    with pytest.raises(ValueError, match="t.json.*does not fit 21 classes"):
        write_scores_json(tmp_path / "t.json", confusion_matrix(GT, PRED, num_classes=3), 1, CLASS_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # no temporary file left behind


def test_score_images_scores_what_exists_and_says_what_it_left_out(tmp_path):
    """score_images over a (prediction, ground truth) pair per image: a scored, b without
    prediction, c without ground truth, d with a broken prediction."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for name in "abd":
        save_label_png(gt_dir / f"{name}.png", np.array([[0, 1], [1, 1]], np.uint8))
    for name in "ac":
        save_label_png(pred_dir / f"{name}.png", np.array([[0, 1], [0, 255]], np.uint8))
    save_label_png(pred_dir / "d.png", np.array([[0, 1], [1, 30]], np.uint8))

    def count(name):
        return label_map_confusion(pred_dir / f"{name}.png", gt_dir / f"{name}.png", num_classes=3)

    required = [("prediction", lambda n: pred_dir / f"{n}.png"), ("ground truth", lambda n: gt_dir / f"{n}.png")]
    conf, coverage = score_images("abcd", count, required, np.zeros((3, 3), np.int64), keep_going=(ValueError,))
    np.testing.assert_array_equal(conf, [[1, 0, 0], [2, 1, 0], [0, 0, 0]])  # a only, 255 as background
    assert coverage.scored == ["a"] and not coverage.complete
    assert coverage.missing == {"prediction": (pred_dir, ["b"]), "ground truth": (gt_dir, ["c"])}
    assert coverage.failed == [("d", f"{pred_dir / 'd.png'}: prediction value 30 is neither a class (0..2) nor "
                                     f"255 (read as background)")]
    assert coverage.count() == "1 of 4 images (1 without prediction, 1 without ground truth, 1 failed, listed below)"
    assert coverage.listing("eval") == [f"eval: 1 of 4 images without prediction in {pred_dir}: b",
                                        f"eval: 1 of 4 images without ground truth in {gt_dir}: c",
                                        f"eval: d: {coverage.failed[0][1]}"]
    with pytest.raises(ValueError, match="d.png: prediction value 30"):  # without keep_going: the error
        score_images("abcd", count, required, np.zeros((3, 3), np.int64))
    conf, coverage = score_images("a", count, required, np.zeros((3, 3), np.int64))
    assert coverage.complete and coverage.count() == "1 images"
