"""Step 4: inter-pixel relation labels from the CAMs (docs/method.md §3).

Two CRF-refined CAM label maps, with background scores ``conf_fg_thres`` (high: only
confident foreground survives) and ``conf_bg_thres`` (low: only confident background
survives), combine into foreground / background / 255 (unsure) labels.
"""
import functools

import numpy as np

from wsgcn.infra.io import prepare_outputs, save_label_png
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.seg.cams import cam_argmax, labels_with_background
from wsgcn.seg.crf import CRFParams, crf_label_map
from wsgcn.seg.dataset import IGNORE_INDEX, read_image_list
from wsgcn.seg.scores import find_score_file, load_cams

IR_LABEL_CRF = CRFParams(gauss_sxy=3, gauss_compat=3, bilateral_sxy=50, bilateral_srgb=5, bilateral_compat=10,
                         iterations=10)


def confident_labels(image, high_res, classes, bg_score):
    """CRF-refined argmax of [background plane ``bg_score``, CAMs]: (H, W) VOC indices."""
    labels = labels_with_background(classes)
    return labels[crf_label_map(image, cam_argmax(high_res, bg_score), len(labels), IR_LABEL_CRF, gt_prob=0.7)]


def combine_confident_maps(fg_conf, bg_conf):
    """Foreground where the confident-foreground map says so, background where both maps say
    background, 255 elsewhere."""
    ir_label = fg_conf.astype(np.uint8).copy()
    ir_label[fg_conf == 0] = IGNORE_INDEX
    ir_label[(fg_conf == 0) & (bg_conf == 0)] = 0
    return ir_label


def make_ir_label(cfg, data, work, name):
    image = data.load_image(name)
    cams = load_cams(find_score_file(work.cam, name, cfg.allow_pickle), data.num_object_classes, cfg.allow_pickle,
                     image.shape[:2])
    fg_conf = confident_labels(image, cams["high_res"], cams["classes"], cfg.conf_fg_thres)
    bg_conf = confident_labels(image, cams["high_res"], cams["classes"], cfg.conf_bg_thres)
    save_label_png(work.ir_label / f"{name}.png", combine_confident_maps(fg_conf, bg_conf))
    return name


def output_places(cfg):
    """(folders, files) the step writes: checked before any work (wsgcn.infra.io.prepare_outputs)."""
    return [WorkDir(cfg.work_dir).ir_label], []


def run(cfg):
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    prepare_outputs(*output_places(cfg))
    job = functools.partial(make_ir_label, cfg, data, work)
    failures = Failures("cam_to_ir_label", work.ir_label)
    names = pending_images(read_image_list(cfg.train_list), lambda name: [work.ir_label / f"{name}.png"],
                           lambda name: [find_score_file(work.cam, name, cfg.allow_pickle)], cfg.overwrite, failures)
    for _ in map_images(job, names, cfg.num_workers, "cam_to_ir_label", cfg.quiet, failures):
        pass
    failures.finish()
