"""Step 7: mIoU of the random-walk labels (docs/method.md §5), on the images of the infer list
that have them; the others are named and the step fails (see eval_cam.report_left_out)."""
import numpy as np

from IRN.step.eval_cam import report_left_out
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import INPUT_ERRORS
from wsgcn.seg.metrics import format_iou_table, label_map_confusion, score_images
from wsgcn.seg.voc import NUM_CLASSES, VOC12, read_image_list


def run(cfg):
    work, voc = WorkDir(cfg.work_dir), VOC12(cfg.voc12_root)
    names = read_image_list(cfg.infer_list)
    prediction = lambda name: work.sem_seg / f"{name}.png"  # noqa: E731
    conf, coverage = score_images(
        names, lambda name: label_map_confusion(prediction(name), voc.gt_path(name), voc.image_path(name)),
        [("prediction", prediction), ("ground truth", voc.gt_path)],
        np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64), keep_going=INPUT_ERRORS)
    print(f"eval_sem_seg: {coverage.count()}, random-walk labels {work.sem_seg}")
    if coverage.scored:
        print(format_iou_table(conf))
    report_left_out("eval_sem_seg", coverage)
