"""The score-archive readers: CAMs (classes) and GCN/CRF probabilities (labels)."""
import numpy as np
import pytest

from wsgcn.infra.io import save_npz
from wsgcn.seg.scores import find_score_file, load_cams, load_probs
from wsgcn.seg.voc import NUM_CLASSES, NUM_OBJECT_CLASSES


def cam_arrays(k=2, size=(9, 13)):
    h, w = (size[0] - 1) // 4 + 1, (size[1] - 1) // 4 + 1
    return dict(keys=np.array([3, 14][:k], np.int64), cam=np.ones((k, h, w), np.float32),
                high_res=np.ones((k,) + size, np.float32))


def test_cams_read_as_classes(tmp_path):
    save_npz(tmp_path / "a.npz", **cam_arrays())
    cams = load_cams(tmp_path / "a.npz", NUM_OBJECT_CLASSES, image_size=(9, 13))
    assert set(cams) == {"classes", "cam", "high_res"} and cams["classes"].tolist() == [3, 14]
    with pytest.raises(ValueError, match="do not fit the 9x12 image"):
        load_cams(tmp_path / "a.npz", NUM_OBJECT_CLASSES, image_size=(9, 12))
    with pytest.raises(ValueError, match=r"keys \[3, 14\] are not distinct object classes \(0..9\)"):
        load_cams(tmp_path / "a.npz", 10)  # a data set of 10 object classes has no class 14


def test_probs_read_as_labels(tmp_path):
    save_npz(tmp_path / "a.npz", keys=np.array([0, 4]), prob=np.full((2, 3, 5), 0.5, np.float32))
    labels, prob = load_probs(tmp_path / "a.npz", NUM_CLASSES, image_size=(3, 5))
    assert labels.tolist() == [0, 4] and prob.shape == (2, 3, 5)
    save_npz(tmp_path / "b.npz", keys=np.array([0, 4]), prob=np.full((2, 3, 5), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        load_probs(tmp_path / "b.npz", NUM_CLASSES)
    with pytest.raises(ValueError, match=r"keys \[0, 4\] are not distinct labels \(0..3\)"):
        load_probs(tmp_path / "a.npz", 4)  # a data set of 4 classes has no label 4


def test_legacy_pickles_only_with_allow_pickle(tmp_path):
    cams = cam_arrays()
    np.save(tmp_path / "a.npy", cams, allow_pickle=True)
    np.save(tmp_path / "p.npy", {0: np.zeros((3, 5)), 4: np.ones((3, 5))}, allow_pickle=True)
    assert find_score_file(tmp_path, "a") == tmp_path / "a.npz"                  # no pickle: the npz name
    assert find_score_file(tmp_path, "a", allow_pickle=True) == tmp_path / "a.npy"
    with pytest.raises(ValueError, match="allow_pickle"):
        load_cams(tmp_path / "a.npz", NUM_OBJECT_CLASSES)  # only the .npy exists
    assert load_cams(tmp_path / "a.npy", NUM_OBJECT_CLASSES, allow_pickle=True)["classes"].tolist() == [3, 14]
    labels, prob = load_probs(tmp_path / "p.npy", NUM_CLASSES, allow_pickle=True)
    assert labels.tolist() == [0, 4] and (prob[1] == 1).all()
    with pytest.raises(ValueError, match="allow_pickle"):
        load_probs(tmp_path / "p.npy", NUM_CLASSES)
