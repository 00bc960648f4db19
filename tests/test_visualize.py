import csv
import math

import numpy as np
import pytest
from PIL import Image

from GCN import visualize
from wsgcn.infra.io import load_label_png, save_label_png, save_npz
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.plots import LEGEND_ROW_PX, PANEL_GAP_PX, TITLE_PX, colour_labels, panel_row_size
from wsgcn.seg.cams import cam_label_map
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.metrics import class_iou, confusion_matrix, mean_iou
from wsgcn.seg.voc import CLASS_NAMES, VOC12

PANEL = 96  # panel width in pixels in these tests (small, so that drawing is fast)


def fake_stage_outputs(voc, work, name, rng):
    """Writes every stage's output of one image, made from its ground truth; returns {folder: labels}."""
    gt = voc.load_gt(name)
    size = gt.shape
    objects = np.unique(gt[(gt > 0) & (gt < 21)])
    keys = objects - 1
    high_res = np.stack([0.9 * np.roll(gt == c, 3, axis=1) for c in objects]).astype(np.float32)  # (K, H, W)
    h, w = strided_size(size, 4)
    save_npz(work.cam / f"{name}.npz", keys=keys.astype(np.int64), cam=high_res[:, ::4, ::4][:, :h, :w],
             high_res=high_res)
    clean = np.where(gt == 255, 0, gt).astype(np.uint8)
    noisy = clean.copy()
    noisy[rng.random(size) < 0.2] = 0
    partial = np.where(rng.random(size) < 0.5, clean, 255).astype(np.uint8)
    labels = {"ir_label": gt, "sem_seg": noisy, "partial_labels_full": partial, "gcn_label": np.roll(clean, 2, 0),
              "crf_label": clean}
    for folder, label_map in labels.items():
        save_label_png(getattr(work, folder) / f"{name}.png", label_map)
    return labels


@pytest.fixture
def work_dir(demo_root, tmp_path):
    """A work dir with every stage's outputs for the first 3 demo images; (argv, work, voc, names)."""
    voc = VOC12(demo_root / "VOC2012")
    names = read_image_list(demo_root / "train.txt")[:3]
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    work = WorkDir(tmp_path / "work")
    rng = np.random.default_rng(0)
    for name in names:
        fake_stage_outputs(voc, work, name, rng)
    argv = ["--work_dir", str(work.root), "--voc12_root", str(voc.root), "--list", str(tmp_path / "list.txt"),
            "--panel_px", str(PANEL), "--quiet", "True"]
    return argv, work, voc, names


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_colour_labels_shows_ignore_white():
    rgb = colour_labels(np.array([[0, 1, 15, 255]], np.uint8))
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0], [[0, 0, 0], [128, 0, 0], [192, 128, 128], [255, 255, 255]])


def test_panel_row_size():
    # 8 panels of 200 px; the picture area 192 px wide keeps a 137 x 153 image's aspect: 172 px high.
    assert panel_row_size((137, 153), 8, 3) == (1600, TITLE_PX + 172 + 2 * PANEL_GAP_PX + LEGEND_ROW_PX)
    assert panel_row_size((137, 153), 8, 9)[1] == TITLE_PX + 172 + 2 * PANEL_GAP_PX + 2 * LEGEND_ROW_PX


def test_one_picture_per_image_of_the_expected_size(work_dir):
    argv, work, voc, names = work_dir
    assert visualize.main(argv + ["--num_images", "2"]) == 0
    out = work.root / "visualize"
    assert sorted(p.name for p in out.glob("demo_*.png")) == [f"{n}.png" for n in names[:2]]
    for name in names[:2]:
        gt = voc.load_gt(name)
        shown = np.unique(np.concatenate([gt.ravel()] + [load_label_png(getattr(work, f) / f"{name}.png").ravel()
                                                         for _, f in visualize.LABEL_PANELS]))
        inner_h = round((PANEL - 2 * PANEL_GAP_PX) * gt.shape[0] / gt.shape[1])
        expected = (8 * PANEL, TITLE_PX + inner_h + 2 * PANEL_GAP_PX + LEGEND_ROW_PX * math.ceil(len(shown) / 8))
        with Image.open(out / f"{name}.png") as img:
            assert img.format == "PNG" and img.size == expected


def test_a_missing_stage_is_a_grey_panel(work_dir):
    argv, work, voc, names = work_dir
    (work.crf_label / f"{names[0]}.png").unlink()
    (work.cam / f"{names[0]}.npz").unlink()
    panels, _ = visualize.image_panels(visualize.VisualizeConfig(), voc, work, names[0])
    titles = [title for title, _ in panels]
    assert len(panels) == 3 + len(visualize.LABEL_PANELS) == 8  # image, ground truth, CAM, the label maps
    assert titles[2] == f"{visualize.CAM_TITLE} (missing)" and titles[-1] == "GCN + CRF (missing)"
    assert panels[2][1] is None and panels[-1][1] is None and panels[-2][1] is not None
    assert visualize.main(argv + ["--names", names[0]]) == 0
    with Image.open(work.root / "visualize" / f"{names[0]}.png") as img:
        picture = np.asarray(img.convert("RGB"))
    middle = TITLE_PX + PANEL_GAP_PX + 10
    np.testing.assert_array_equal(picture[middle, 7 * PANEL + PANEL // 2], [204, 204, 204])  # grey GCN + CRF
    assert not (picture[middle:middle + 20, 6 * PANEL + 10:7 * PANEL - 10] == 204).all()  # GCN is drawn
    # The class IoU leaves out the stages not made for every image (CAM, GCN + CRF).
    header = read_csv(work.root / "visualize" / "class_iou.csv")[0]
    assert header == ["class", "random walk (IRNet)", "GCN"]


def test_class_iou_csv_equals_the_metric(work_dir):
    argv, work, voc, names = work_dir
    out = work.root / "elsewhere"
    assert visualize.main(argv + ["--num_images", "0", "--out", str(out)]) == 0
    assert not list(out.glob("demo_*.png")) and (out / "class_iou.png").stat().st_size > 0
    rows = read_csv(out / "class_iou.csv")
    assert rows[0] == ["class", "CAM", "random walk (IRNet)", "GCN", "GCN + CRF"]
    assert [r[0] for r in rows[1:]] == CLASS_NAMES + ["mIoU"]
    folders = {"random walk (IRNet)": "sem_seg", "GCN": "gcn_label", "GCN + CRF": "crf_label"}
    for column, stage in enumerate(rows[0][1:], 1):
        conf = np.zeros((21, 21), np.int64)
        for name in names:
            gt = voc.load_gt(name)
            if stage == "CAM":
                cams = np.load(work.cam / f"{name}.npz")
                pred = cam_label_map(cams["high_res"], cams["keys"], 0.15)
            else:
                pred = load_label_png(getattr(work, folders[stage]) / f"{name}.png")
            conf += confusion_matrix(gt, pred, voc.num_classes)
        expected = 100 * np.append(class_iou(conf), mean_iou(conf))
        written = np.array([float(r[column]) if r[column] else np.nan for r in rows[1:]])
        np.testing.assert_allclose(written, expected, atol=0.005)
        assert np.isfinite(expected[-1]) and 0 < expected[-1] <= 100
    # CRF = the truth: IoU 100 on every class present; GCN (shifted 2 rows) is lower.
    assert rows[-1][4] == "100.00" and float(rows[-1][3]) < 100


def test_bad_name_is_one_clear_error(work_dir, capsys):
    argv, work, voc, names = work_dir
    assert visualize.main(argv + ["--names", names[0], "no_such_image"]) == 2  # bad data: nothing drawn
    err = capsys.readouterr().err
    assert err.startswith("visualize.py: error:") and str(voc.image_path("no_such_image")) in err
    assert "Traceback" not in err and not (work.root / "visualize").exists()  # nothing drawn before the check


def test_a_label_map_of_another_size_is_an_error_naming_it(work_dir, capsys):
    argv, work, voc, names = work_dir
    save_label_png(work.sem_seg / f"{names[1]}.png", np.zeros((5, 5), np.uint8))
    assert visualize.main(argv + ["--names", names[1]]) == 2
    err = capsys.readouterr().err
    assert f"{work.sem_seg / names[1]}.png: labels are 5x5" in err and len(err.strip().splitlines()) == 1


def test_defaults_mirror_the_stages():
    from GCN.config import GCNConfig
    from IRN.config import IRNConfig
    assert visualize.VisualizeConfig().list == GCNConfig().train_list == IRNConfig().infer_list
    assert (visualize.VisualizeConfig().cam_eval_thres,) == IRNConfig().cam_eval_thres
    assert visualize.VisualizeConfig().num_images == 8
