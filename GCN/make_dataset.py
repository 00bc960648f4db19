"""Partial pseudo labels for the GCN (docs/method.md §6).

    python GCN/make_dataset.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --train_list Data/VOC12/train.txt

Reads ``IRN4GCN/CAM/<name>.npz``; writes ``IRN4GCN/PARTIAL_PSEUDO_LABEL_DN/<name>.png`` (grid)
and ``IRN4GCN/PARTIAL_PSEUDO_LABEL_DN_UP/<name>.png`` (nearest-upsampled to the image).
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F

from GCN.config import PROFILES, GCNConfig
from GCN.inputs import grid_cams, grid_image
from GCN.partial_labels import partial_pseudo_labels
from wsgcn.infra.io import prepare_outputs, save_label_png
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.scripts import script_main
from wsgcn.seg.dataset import IGNORE_INDEX, read_image_list
from wsgcn.seg.scores import find_score_file


def upsample_nearest(labels, size):
    """(h, w) -> (H, W) nearest neighbour as torch's ``interpolate`` (source index floor(i * h / H))."""
    up = F.interpolate(torch.from_numpy(labels)[None, None].float(), size=tuple(size), mode="nearest")
    return up[0, 0].numpy().astype(np.uint8)


def make_partial_labels(cfg, data, work, name):
    """Writes one image's partial labels; returns (name, labelled fraction of the nodes)."""
    image = data.load_image(name)
    grid = strided_size(image.shape[:2], 4)
    cams, classes = grid_cams(find_score_file(work.cam, name, cfg.allow_pickle), data.num_object_classes,
                              cfg.allow_pickle, image.shape[:2])
    labels, _ = partial_pseudo_labels(grid_image(image, grid), cams, classes, cfg)
    save_label_png(work.partial_labels / f"{name}.png", labels)
    save_label_png(work.partial_labels_full / f"{name}.png", upsample_nearest(labels, image.shape[:2]))
    return name, float((labels != IGNORE_INDEX).mean())


def run(cfg):
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    prepare_outputs([work.partial_labels, work.partial_labels_full])
    failures = Failures("make_dataset", work.partial_labels)
    names = pending_images(read_image_list(cfg.train_list), lambda name: outputs(work, name),
                           lambda name: [find_score_file(work.cam, name, cfg.allow_pickle)], cfg.overwrite, failures)
    job = functools.partial(make_partial_labels, cfg, data, work)
    coverage = [c for _, c in map_images(job, names, cfg.num_workers, "make_dataset", cfg.quiet, failures)]
    if coverage:
        print(f"make_dataset: {len(coverage)} images, {100 * np.mean(coverage):.1f} % of the nodes labelled, "
              f"in {work.partial_labels}")
    failures.finish()


def outputs(work, name):
    return [work.partial_labels / f"{name}.png", work.partial_labels_full / f"{name}.png"]


def main(argv=None):
    return script_main(run, GCNConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
