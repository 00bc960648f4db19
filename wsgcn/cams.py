"""What the steps compute from CAMs: label maps with a background score, and their
confusion with the ground truth.  The archives are read by :mod:`wsgcn.scores`."""
import numpy as np

from wsgcn.metrics import confusion_matrix
from wsgcn.scores import find_score_file, load_cams


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
    conf = 0
    for name in names:
        gt = voc.load_gt(name)
        cams = load_cams(find_score_file(cam_dir, name, allow_pickle), allow_pickle, gt.shape)
        conf = conf + confusion_matrix(gt, cam_label_map(cams["high_res"], cams["classes"], bg_score))
    return np.asarray(conf)
