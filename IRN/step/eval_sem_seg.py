"""Step 7: mIoU of the random-walk labels (docs/method.md §5), on the images of the infer list
that have them; the others are named and the step fails (see eval_cam.report_left_out)."""
import numpy as np

from IRN.step.eval_cam import report_left_out
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import INPUT_ERRORS
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.metrics import format_iou_table, label_map_confusion, score_images


def run(cfg):
    work, data = WorkDir(cfg.work_dir), cfg.data_set(labels=False)
    names, C = read_image_list(cfg.infer_list), data.num_classes
    prediction = lambda name: work.sem_seg / f"{name}.png"  # noqa: E731
    conf, coverage = score_images(
        names, lambda name: label_map_confusion(prediction(name), data.gt_path(name), C, data.image_path(name)),
        [("prediction", prediction), ("ground truth", data.gt_path)],
        np.zeros((C, C), np.int64), keep_going=INPUT_ERRORS)
    print(f"eval_sem_seg: {coverage.count()}, random-walk labels {work.sem_seg}")
    if coverage.scored:
        print(format_iou_table(conf, data.classes))
    report_left_out("eval_sem_seg", coverage)
