"""What the steps compute from CAMs: label maps with a background score, and their
confusion with the ground truth.  The archives are read by :mod:`wsgcn.seg.scores`."""
import numpy as np

from wsgcn.seg.dataset import IGNORE_INDEX
from wsgcn.seg.metrics import load_ground_truth, name_some, require_files, score_images
from wsgcn.seg.scores import find_score_file, load_cams


def labels_with_background(classes):
    """Label of each plane of [background, CAMs of ``classes``]: (K+1,) int64, 0 then class + 1."""
    return np.concatenate([[0], np.asarray(classes, np.int64) + 1])


def cam_argmax(high_res, bg_score):
    """(H, W) plane index of the argmax over [constant background plane ``bg_score``, class maps]."""
    scores = np.concatenate([np.full((1,) + high_res.shape[1:], bg_score, np.float32), high_res])
    return scores.argmax(0)


def cam_label_map(high_res, classes, bg_score):
    """(H, W) uint8 labels of the CAMs with background score ``bg_score``."""
    return labels_with_background(classes)[cam_argmax(high_res, bg_score)].astype(np.uint8)


def cam_confusion(cam_dir, data, names, bg_score, allow_pickle=False):
    """(C, C) confusion matrix of the CAM label maps (:func:`cam_label_map`) against the truth."""
    return cam_confusions(cam_dir, data, names, [bg_score], allow_pickle)[0]


def cam_confusions(cam_dir, data, names, bg_scores, allow_pickle=False):
    """(T, C, C) confusion matrices (C: the data set's classes) of the CAM label maps at each of
    the T ``bg_scores`` over
    every image of ``names`` (:func:`cam_scores`): a missing ground truth, then a missing CAM,
    is an error naming the images, before any is read; a broken file is an error."""
    require_files(data.gt_path, names, "ground-truth label maps")
    confs, coverage = cam_scores(cam_dir, data, names, bg_scores, allow_pickle)
    if not coverage.complete:
        _, missing = coverage.missing["CAM"]
        raise FileNotFoundError(f"{len(missing)} of {len(names)} CAMs missing in {cam_dir}: {name_some(missing)}")
    return confs


def cam_scores(cam_dir, data, names, bg_scores, allow_pickle=False, keep_going=()):
    """(T, C, C) confusion matrices of the CAM label maps at each of the T ``bg_scores``, the
    same as :func:`cam_confusion` at each score, but reading each CAM once; and the
    :class:`wsgcn.seg.metrics.Coverage` of the images scored.

    Images without a CAM or a ground truth are left out; a broken file (a ground truth of
    another size than its image, a value that is no class, a damaged CAM) is an error, or with
    ``keep_going`` (:func:`wsgcn.seg.metrics.score_images`) leaves its image out.

    A pixel's label at score s is the argmax of its class maps where their peak is above s, and
    background where it is not (a tie goes to the background, as in :func:`cam_argmax`).  So a
    pixel is foreground exactly at the scores below its peak: counting the pixels by (how many
    of the sorted scores lie below the peak, truth, foreground label) gives every matrix by
    cumulative sums.
    """
    C = data.num_classes
    scores = np.asarray(bg_scores, np.float32).reshape(-1)  # float32, as the plane of cam_argmax
    order = np.argsort(scores, kind="stable")
    T = len(scores)

    def count(name):
        """(T + 1, C, C) pixel counts of one image: [scores below the peak, truth, foreground label]."""
        gt = load_ground_truth(data.gt_path(name), C, data.image_path(name))
        cam_path = find_score_file(cam_dir, name, allow_pickle)
        cams = load_cams(cam_path, C - 1, allow_pickle, gt.shape)
        bad = cams["classes"][(cams["classes"] < 0) | (cams["classes"] >= C - 1)]
        if bad.size:
            raise ValueError(f"{cam_path}: class index {int(bad[0])} outside 0..{C - 2}")
        high_res = cams["high_res"]
        if len(high_res):
            peak = high_res.max(0)
            fg = labels_with_background(cams["classes"])[1 + high_res.argmax(0)]
        else:  # no class: background at every score
            peak, fg = np.full(gt.shape, -np.inf, np.float32), np.zeros(gt.shape, np.int64)
        below = np.searchsorted(scores[order], peak, side="left")
        valid = gt != IGNORE_INDEX
        return np.bincount((below[valid] * C + gt[valid]) * C + fg[valid],
                           minlength=(T + 1) * C * C).reshape(T + 1, C, C)

    required = [("CAM", lambda name: find_score_file(cam_dir, name, allow_pickle)), ("ground truth", data.gt_path)]
    counts, coverage = score_images(names, count, required, np.zeros((T + 1, C, C), np.int64), keep_going)
    # at the j-th smallest score: foreground where more than j scores lie below the peak ...
    conf = np.cumsum(counts[::-1], 0)[::-1][1:]
    # ... background (column 0) where at most j do
    conf[:, :, 0] += np.cumsum(counts.sum(2), 0)[:-1]
    out = np.empty_like(conf)
    out[order] = conf
    return out, coverage
