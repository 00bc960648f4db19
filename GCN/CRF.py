"""Dense-CRF refinement of the GCN's scores (docs/method.md §8).

    python GCN/CRF.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --train_list Data/VOC12/train.txt

Per image: the Logit planes (K, H, W), a softmax over them (as WSGCN does), unary = -log, a
dense CRF on the full-resolution image; writes ``GCN4DeepLab/CRF_Label/<name>.png`` and
``GCN4DeepLab/CRF_Logit/<name>.npz`` (``keys``, ``prob`` = the CRF marginals).
"""
import functools

import numpy as np

from GCN.config import PROFILES, GCNConfig
from wsgcn.infra.io import prepare_outputs, save_label_png, save_npz
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.scripts import script_main
from wsgcn.seg.crf import dense_crf, softmax_unary
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import find_score_file, load_probs


def refine(image, prob, params):
    """(K, H, W) scores -> CRF marginals (K, H, W) of their softmax over K."""
    return dense_crf(image, softmax_unary(prob), params)


def refine_image(cfg, data, work, name):
    image = data.load_image(name)
    logit = find_score_file(work.gcn_logit, name, cfg.allow_pickle)
    labels, prob = load_probs(logit, data.num_classes, cfg.allow_pickle, image.shape[:2])
    q = refine(image, prob, cfg.refine_crf)
    save_npz(work.crf_logit / f"{name}.npz", keys=labels, prob=q)
    save_label_png(work.crf_label / f"{name}.png", labels[q.argmax(0)].astype(np.uint8))
    return name


def run(cfg):
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    prepare_outputs([work.crf_logit, work.crf_label])
    job = functools.partial(refine_image, cfg, data, work)
    failures = Failures("CRF", work.crf_label)
    names = pending_images(read_image_list(cfg.train_list), lambda name: outputs(work, name),
                           lambda name: [find_score_file(work.gcn_logit, name, cfg.allow_pickle)], cfg.overwrite,
                           failures)
    done = sum(1 for _ in map_images(job, names, cfg.num_workers, "CRF", cfg.quiet, failures))
    print(f"CRF: {done} images, labels in {work.crf_label}")
    failures.finish()


def outputs(work, name):
    return [work.crf_logit / f"{name}.npz", work.crf_label / f"{name}.png"]


def main(argv=None):
    return script_main(run, GCNConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
