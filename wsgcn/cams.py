"""What the steps compute from CAMs: label maps with a background score, and their
confusion with the ground truth.  The archives are read by :mod:`wsgcn.scores`."""
import numpy as np

from wsgcn.metrics import require_files
from wsgcn.scores import find_score_file, load_cams
from wsgcn.voc import NUM_CLASSES


def labels_with_background(classes):
    """VOC label of each plane of [background, CAMs of ``classes``]: (K+1,) int64, 0 then class + 1."""
    return np.concatenate([[0], np.asarray(classes, np.int64) + 1])


def cam_argmax(high_res, bg_score):
    """(H, W) plane index of the argmax over [constant background plane ``bg_score``, class maps]."""
    scores = np.concatenate([np.full((1,) + high_res.shape[1:], bg_score, np.float32), high_res])
    return scores.argmax(0)


def cam_label_map(high_res, classes, bg_score):
    """(H, W) uint8 VOC labels of the CAMs with background score ``bg_score``."""
    return labels_with_background(classes)[cam_argmax(high_res, bg_score)].astype(np.uint8)


def cam_confusion(cam_dir, voc, names, bg_score, allow_pickle=False):
    """21-class confusion matrix of the CAM label maps (:func:`cam_label_map`) against the truth."""
    return cam_confusions(cam_dir, voc, names, [bg_score], allow_pickle)[0]


def cam_confusions(cam_dir, voc, names, bg_scores, allow_pickle=False):
    """(T, 21, 21) confusion matrices of the CAM label maps at each of the T ``bg_scores``, the
    same as :func:`cam_confusion` at each score, but reading each CAM once.

    A pixel's label at score s is the argmax of its class maps where their peak is above s, and
    background where it is not (a tie goes to the background, as in :func:`cam_argmax`).  So a
    pixel is foreground exactly at the scores below its peak: counting the pixels by (how many
    of the sorted scores lie below the peak, truth, foreground label) gives every matrix by
    cumulative sums.  A missing ground truth is an error naming the images, before any is read.
    """
    require_files(voc.gt_dir, names, "ground-truth label maps")
    C = NUM_CLASSES
    scores = np.asarray(bg_scores, np.float32).reshape(-1)  # float32, as the plane of cam_argmax
    order = np.argsort(scores, kind="stable")
    T = len(scores)
    # [scores below the peak, truth, foreground label]; column C: a label outside 0..C-1, which
    # confusion_matrix ignores where it is predicted
    counts = np.zeros((T + 1) * C * (C + 1), np.int64)
    for name in names:
        gt = voc.load_gt(name)
        cams = load_cams(find_score_file(cam_dir, name, allow_pickle), allow_pickle, gt.shape)
        high_res = cams["high_res"]
        if len(high_res):
            peak = high_res.max(0)
            fg = labels_with_background(cams["classes"])[1 + high_res.argmax(0)]
            fg = np.where((fg >= 0) & (fg < C), fg, C)
        else:  # no class: background at every score
            peak, fg = np.full(gt.shape, -np.inf, np.float32), np.zeros(gt.shape, np.int64)
        below = np.searchsorted(scores[order], peak, side="left")
        valid = gt < C
        counts += np.bincount((below[valid] * C + gt[valid]) * (C + 1) + fg[valid],
                              minlength=len(counts))
    counts = counts.reshape(T + 1, C, C + 1)
    # at the j-th smallest score: foreground where more than j scores lie below the peak ...
    conf = np.cumsum(counts[::-1], 0)[::-1][1:, :, :C]
    # ... background (column 0) where at most j do
    conf[:, :, 0] += np.cumsum(counts.sum(2), 0)[:-1]
    out = np.empty_like(conf)
    out[order] = conf
    return out
