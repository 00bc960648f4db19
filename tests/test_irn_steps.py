"""The IRN steps end to end on a few demo images (tiny settings), and their invariants."""
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from IRN.config import IRNConfig
from IRN.datasets import MultiScaleDataset
from IRN.net.resnet50_cam import CAMNet
from IRN.net.resnet50_irn import load_irnet
from IRN.step import make_sem_seg_labels
from IRN.step.cam_to_ir_label import combine_confident_maps
from IRN.step.make_cam import compute_cams
from IRN.step.make_sem_seg_labels import canvas_size
from wsgcn.infra.io import load_label_png, load_npz
from wsgcn.infra.layout import strided_size
from wsgcn.infra.training import resume_path
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_cams
from wsgcn.seg.voc import VOC12


def test_cam_files(irn_run, demo_root):
    cfg, work, voc = irn_run
    names = read_image_list(demo_root / "train.txt") + read_image_list(demo_root / "val.txt")
    for name in names:  # CAMs for the training list and the infer list
        image = voc.load_image(name)
        cams = load_cams(work / "IRN4GCN/CAM" / f"{name}.npz", voc.num_object_classes, image_size=image.shape[:2])
        assert cams["classes"].tolist() == np.flatnonzero(voc.class_labels(name)).tolist()
        assert cams["cam"].shape[1:] == strided_size(image.shape[:2], 4)
        for maps in (cams["cam"], cams["high_res"]):
            assert maps.dtype == np.float32 and maps.min() >= 0
            peaks = maps.reshape(len(maps), -1).max(1)  # 1 after normalisation, 0 for an all-zero map
            assert np.all((peaks == 0) | (np.abs(peaks - 1) < 1e-3)), peaks


def test_ir_labels(irn_run, demo_root):
    cfg, work, voc = irn_run
    for name in read_image_list(demo_root / "train.txt"):
        ir = load_label_png(work / "IRN4GCN/IR_LABEL" / f"{name}.png")
        assert ir.shape == voc.load_image(name).shape[:2]
        allowed = {0, 255} | set((np.flatnonzero(voc.class_labels(name)) + 1).tolist())
        assert set(np.unique(ir).tolist()) <= allowed


def test_gcn_inputs_and_random_walk_labels(irn_run, demo_root):
    cfg, work, voc = irn_run
    for name in read_image_list(demo_root / "val.txt"):
        h, w = voc.load_image(name).shape[:2]
        grid = strided_size((h, w), 4)
        boundary = load_npz(work / "IRN4GCN/BOUNDARY" / f"{name}.npz", required=("boundary",))["boundary"]
        features = load_npz(work / "IRN4GCN/AFF_FEATURE" / f"{name}.npz", required=("features",))["features"]
        assert boundary.shape == grid and boundary.dtype == np.float32
        assert 0 <= boundary.min() and boundary.max() <= 1
        assert features.shape == (160,) + grid and features.dtype == np.float16
        labels = load_label_png(work / "IRN4GCN/SEM_SEG" / f"{name}.png")
        assert labels.shape == (h, w)
        assert set(np.unique(labels).tolist()) <= {0} | set((np.flatnonzero(voc.class_labels(name)) + 1).tolist())


def test_irnet_checkpoint_has_mean_shift(irn_run):
    cfg, work, voc = irn_run
    net = load_irnet(work / cfg.irn_weights_name)
    shift = net.mean_shift.running_mean
    assert torch.isfinite(shift).all() and shift.abs().sum() > 0
    torch.testing.assert_close(net.fc_dp7[4].running_mean, shift)


def test_eval_steps_print_miou(irn_run, capsys):
    cfg, work, voc = irn_run
    from IRN.step import eval_cam, eval_sem_seg
    eval_cam.run(cfg)
    eval_sem_seg.run(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mIoU: ")]
    assert len(lines) == 2 and all(0 <= float(line.split()[1]) <= 100 for line in lines)


def test_cams_flip_equivariant(demo_root):
    """Flip averaging: the strided CAMs of the mirrored image are the mirrored CAMs (high_res is
    cropped on the right after upsampling, so only its left-aligned part could be compared)."""
    torch.manual_seed(0)
    model = CAMNet().eval()
    voc = VOC12(demo_root / "VOC2012")
    name = read_image_list(demo_root / "train.txt")[0]
    pack = MultiScaleDataset(voc, [name], scales=(1.0, 0.5))[0]
    keys = torch.tensor([0, 3])
    cam, high_res = compute_cams(model, pack["img"], pack["size"], keys)
    flipped = [p.flip(0) for p in pack["img"]]  # (image, flip) -> (flip, image) is the mirrored input
    cam_f, high_res_f = compute_cams(model, flipped, pack["size"], keys)
    torch.testing.assert_close(cam_f, cam.flip(-1), rtol=1e-4, atol=1e-5)
    assert cam.shape[1:] == strided_size(pack["size"], 4) and high_res.shape[1:] == tuple(pack["size"])


def test_vertical_flips_make_cams_equivariant_to_turning_upside_down(demo_root):
    """--cam_flips hv: the maps of the image turned upside down are those of the image, turned."""
    torch.manual_seed(0)
    model = CAMNet().eval()
    voc = VOC12(demo_root / "VOC2012")
    pack = MultiScaleDataset(voc, read_image_list(demo_root / "train.txt")[:1], scales=(1.0, 0.5))[0]
    keys = torch.tensor([0, 3])
    cam, _ = compute_cams(model, pack["img"], pack["size"], keys, vertical_flips=True)
    cam_v, _ = compute_cams(model, [p.flip(-2) for p in pack["img"]], pack["size"], keys, vertical_flips=True)
    torch.testing.assert_close(cam_v, cam.flip(-2), rtol=1e-4, atol=1e-5)
    plain, _ = compute_cams(model, pack["img"], pack["size"], keys)
    assert not torch.allclose(plain, cam, atol=1e-3)


class _EvidenceBelow(torch.nn.Module):
    """A CAM network whose evidence for the one class lies one 16-px cell below the object: the
    class map is the image's mean intensity per cell, moved down a cell."""

    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Conv2d(1, 1, 1, bias=False)
        torch.nn.init.ones_(self.classifier.weight)

    def features(self, x):
        cells = torch.nn.functional.avg_pool2d(x[:, :1], 16)
        return torch.nn.functional.pad(cells, (0, 0, 1, 0))[..., :-1, :]


def test_vertical_flips_centre_an_offset_cam_on_the_object():
    """A hand-made offset: the object fills cell row 1 of a 64 x 64 image; with IRNet's flips the
    CAM's mass is centred on row 2, one cell below; with the vertical flips on row 1."""
    image = torch.zeros(3, 64, 64)
    image[:, 16:32, 16:32] = 1.0
    pyramid = [torch.stack([image, image.flip(-1)])]
    rows = torch.arange(64, dtype=torch.float32)[:, None] + 0.5

    def centre_row(high_res):
        return float((high_res[0] * rows).sum() / high_res[0].sum())

    _, plain = compute_cams(_EvidenceBelow(), pyramid, (64, 64), torch.tensor([0]))
    _, both = compute_cams(_EvidenceBelow(), pyramid, (64, 64), torch.tensor([0]), vertical_flips=True)
    assert centre_row(plain) == pytest.approx(40.0, abs=0.5)    # the object's centre is row 24
    assert centre_row(both) == pytest.approx(24.0, abs=0.5)


def test_cam_power_raises_the_normalised_maps(demo_root):
    """--cam_power p: the max-normalised maps to the p-th power, so a background score t on
    them stands for t^(1/p) on IRNet's maps; zeros and the maximum (about 1) stay where they are."""
    torch.manual_seed(0)
    model = CAMNet().eval()
    voc = VOC12(demo_root / "VOC2012")
    pack = MultiScaleDataset(voc, read_image_list(demo_root / "train.txt")[:1], scales=(1.0,))[0]
    keys = torch.tensor([0, 3])
    cam, high_res = compute_cams(model, pack["img"], pack["size"], keys)
    cam5, high_res5 = compute_cams(model, pack["img"], pack["size"], keys, power=5.0)
    torch.testing.assert_close(cam5, cam ** 5)
    torch.testing.assert_close(high_res5, high_res ** 5)
    assert 0.999 < float(cam5.amax()) <= 1 and cam.amin() >= 0
    assert ((cam5 > 0.15) == (cam > 0.15 ** 0.2)).all()


def test_ir_label_rules():
    fg_conf = np.array([[3, 0, 0], [0, 7, 0]])
    bg_conf = np.array([[3, 0, 5], [0, 7, 0]])
    np.testing.assert_array_equal(combine_confident_maps(fg_conf, bg_conf), [[3, 0, 255], [0, 7, 0]])


def test_canvas_size():
    assert canvas_size((375, 500), 512) == (512, 512)
    assert canvas_size((600, 37), 512) == (608, 512)  # larger than the canvas: next multiple of 16
    assert canvas_size((130, 97), 128) == (144, 128)


def test_sem_seg_canvas_is_irnets_training_crop_in_every_profile():
    from IRN.config import PROFILES
    from wsgcn.infra.config import parse_config

    for profile in PROFILES:
        cfg = parse_config(IRNConfig, PROFILES, ["--profile", profile])
        assert cfg.sem_seg_canvas_size == cfg.irn_crop_size == (128 if profile == "demo" else 512), profile


def test_a_canvas_other_than_irnets_training_crop_is_warned_once(irn_run, capsys):
    """The fixture's IRNet trained on crops of 96; every image is done, so nothing is redone."""
    cfg, _, _ = irn_run
    for canvas, warned in ((128, True), (96, False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make_sem_seg_labels.run(dataclasses.replace(cfg, sem_seg_canvas_size=canvas))
        lines = [str(w.message) for w in caught if "--sem_seg_canvas_size" in str(w.message)]
        expected = [f"--sem_seg_canvas_size {canvas} is not IRNet's training crop (--irn_crop_size 96): the "
                    f"boundary maps are best on the canvas IRNet was trained on (docs/choices.md)"]
        assert lines == (expected if warned else []), lines


def test_boundary_and_features_run_on_the_zero_padded_canvas():
    """IRNet sees the image and its flip top-left on a zero canvas (GroupNorm's statistics
    include the padding); the outputs are cropped to the image's stride-4 grid, the flip's
    flipped back and averaged, the boundary through a sigmoid."""
    from IRN.net.resnet50_irn import IRNet
    from IRN.step.make_sem_seg_labels import boundary_and_features

    torch.manual_seed(0)
    model = IRNet().eval()
    image = torch.randn(1, 3, 37, 50)
    pair = torch.cat([image, image.flip(-1)])
    boundary, features = boundary_and_features(model, pair, canvas=96)
    canvas = torch.zeros(2, 3, 96, 96)
    canvas[:, :, :37, :50] = pair
    with torch.no_grad():
        edge, _, feats = model(canvas, with_features=True)
    edge, feats = edge[..., :10, :13], feats[..., :10, :13]
    torch.testing.assert_close(boundary, torch.sigmoid(edge[0, 0] / 2 + edge[1, 0].flip(-1) / 2))
    torch.testing.assert_close(features, feats[0] / 2 + feats[1].flip(-1) / 2)
    other, _ = boundary_and_features(model, pair, canvas=64)
    assert (other - boundary).abs().max() > 1e-4  # the canvas matters: it is a setting, not a detail


def test_random_walk_labels_match_dense_t256():
    """The sparse walk gives the labels of the original's dense T^256 formulation."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from IRN.step.make_sem_seg_labels import random_walk_labels
    from wsgcn.seg.affinity import dense_transition_power

    g = torch.Generator().manual_seed(0)
    h, w, size = 14, 17, (53, 66)
    boundary = torch.rand(h, w, generator=g) ** 4
    boundary[6, :] = 0.95  # a wall across the image
    cams = torch.rand(2, h, w, generator=g)
    keys = np.array([4, 11])
    cfg = SimpleNamespace(beta=10, exp_times=8, sem_seg_bg_thres=0.25)
    ours = random_walk_labels(cams, keys, boundary, size, cfg)

    t256 = dense_transition_power(boundary.double(), beta=10, exp_times=8)
    rw = ((cams.double() * (1 - boundary.double())).reshape(2, -1) @ t256).reshape(2, 1, h, w)
    rw = F.interpolate(rw, scale_factor=4, mode="bilinear", align_corners=False)[:, 0, :size[0], :size[1]]
    rw = torch.cat([torch.full((1,) + size, 0.25, dtype=rw.dtype), rw / rw.max()])
    reference = np.array([0, 5, 12])[rw.argmax(0).numpy()]
    assert ours.shape == size and (ours == reference).mean() >= 0.995
    assert len(np.unique(reference)) > 1  # a case where the labels are not trivially uniform


def test_boundary_and_features_on_an_image_larger_than_the_canvas():
    from IRN.net.resnet50_irn import IRNet
    from IRN.step.make_sem_seg_labels import boundary_and_features

    torch.manual_seed(0)
    pair = torch.randn(1, 3, 530, 37)
    pair = torch.cat([pair, pair.flip(-1)])
    boundary, features = boundary_and_features(IRNet().eval(), pair, canvas=512)
    assert boundary.shape == (133, 10) and features.shape == (160, 133, 10)
    assert 0 <= boundary.min() and boundary.max() <= 1


def test_summary_report(irn_run, demo_root, capsys):
    from wsgcn import report

    cfg, work, voc = irn_run
    assert report.main(["--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
                        "--list", str(demo_root / "val.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["labels", "mIoU", "pix.acc", "FP", "FN"]
    assert lines[2].startswith("CAM ") and lines[3].startswith("random walk (IRNet) ")
    assert report.main(["--work_dir", str(work / "empty"), "--voc12_root", str(demo_root / "VOC2012"),
                        "--list", str(demo_root / "val.txt")]) == 1


def test_training_steps_log_losses_and_learning_rate(irn_run):
    from conftest import read_scalars

    cfg, work, _ = irn_run
    cam = read_scalars(work / "logs" / "train_cam")
    assert len(cam["train_cam/total"]) == len(cam["train_cam/lr"]) == 2  # 8 images, batch 4, 1 epoch
    lrs = [value for _, value in cam["train_cam/lr"]]
    assert lrs[0] == pytest.approx(cfg.cam_learning_rate) and lrs[1] < lrs[0]  # the polynomial schedule
    # The classifier's rate is the backbone's times --cam_head_lr_mult (IRNet's 10; the demo profile's 3).
    state = torch.load(resume_path(work / cfg.cam_weights_name), map_location="cpu", weights_only=False)
    backbone, head = state["optimizer"]["param_groups"]
    assert IRNConfig().cam_head_lr_mult == 10.0 and cfg.cam_head_lr_mult == 3.0
    assert head["initial_lr"] == pytest.approx(cfg.cam_head_lr_mult * backbone["initial_lr"])
    irn = read_scalars(work / "logs" / "train_irn")
    assert {"train_irn/total", "train_irn/pos_aff", "train_irn/lr"} <= set(irn)
