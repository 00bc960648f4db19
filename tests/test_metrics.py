import csv

import numpy as np
import pytest

from wsgcn.io import save_label_png
from wsgcn.metrics import (class_iou, class_iou_table, confusion_matrix, evaluate_label_maps, format_iou_table,
                           mean_iou, pixel_accuracy, write_class_iou_csv, write_confusion_csv)

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
    iou = class_iou(confusion_matrix(gt, pred))
    assert np.isnan(iou[1]) and iou[7] == 0
    assert mean_iou(confusion_matrix(gt, pred)) == pytest.approx((1 + 0.5 + 0) / 3)


def test_out_of_range_predictions_ignored():
    conf = confusion_matrix(np.array([1, 1]), np.array([1, 200]), num_classes=3)
    assert conf.sum() == 1


def test_table_ends_with_miou():
    table = format_iou_table(confusion_matrix(GT, PRED))
    assert table.splitlines()[-1] == "mIoU: 44.44"
    assert "pixel acc." in table and "aeroplane" in table


def test_evaluate_label_maps(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    save_label_png(gt_dir / "a.png", np.array([[0, 0, 1, 1]] * 4, np.uint8))
    save_label_png(gt_dir / "b.png", np.array([[2, 2], [2, 0]], np.uint8))
    save_label_png(pred_dir / "a.png", np.array([[0, 1], [0, 1]], np.uint8))  # half size
    save_label_png(pred_dir / "b.png", np.array([[2, 2], [0, 0]], np.uint8))
    with pytest.raises(ValueError, match="a.png.*2x2.*4x4.*--upsample"):
        evaluate_label_maps(pred_dir, gt_dir, ["a", "b"])
    conf = evaluate_label_maps(pred_dir, gt_dir, ["a", "b"], upsample=True)
    assert conf[0, 0] == 8 + 1 and conf[1, 1] == 8 and conf[2, 2] == 2 and conf[2, 0] == 1
    assert conf.sum() == 20
    # A larger prediction is never upsampled.
    save_label_png(pred_dir / "b.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="b.png"):
        evaluate_label_maps(pred_dir, gt_dir, ["b"], upsample=True)
    with pytest.raises(FileNotFoundError, match="2 of 3 predictions missing.*c, d"):
        evaluate_label_maps(pred_dir, gt_dir, ["a", "c", "d"])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_confusion_csv(tmp_path):
    conf = confusion_matrix(GT, PRED, num_classes=3)
    write_confusion_csv(tmp_path / "c.csv", conf, ["bg", "a", "b"])
    assert read_csv(tmp_path / "c.csv") == [["gt\\pred", "bg", "a", "b"], ["bg", "1", "1", "0"],
                                            ["a", "0", "1", "1"], ["b", "0", "0", "1"]]
    with pytest.raises(ValueError, match="d.csv.*does not fit 21 classes"):
        write_confusion_csv(tmp_path / "d.csv", conf)
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
    write_class_iou_csv(tmp_path / "iou21.csv", [("A", confusion_matrix(GT, PRED))])
    written = read_csv(tmp_path / "iou21.csv")
    assert len(written) == 23 and written[4] == ["bird", ""] and written[-1] == ["mIoU", "44.44"]
