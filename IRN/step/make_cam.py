"""Step 2: multi-scale, flip-averaged class activation maps (docs/method.md §2).

Each scale's maps are those of the image plus those of its horizontal flip, flipped back (IRNet's);
``--cam_flips hv`` adds the two turned upside down (the demo profile's, for a network trained from
scratch).

Writes ``IRN4GCN/CAM/<name>.npz``: ``keys`` (K,) int64 object-class indices of the image's
labels, ``cam`` (K, h, w) on the stride-4 grid and ``high_res`` (K, H, W), float32, each class
map divided by its maximum (+1e-5), then raised to ``--cam_power`` (1, IRNet's maps, unless a
profile says otherwise).
"""
import numpy as np
import torch
import torch.nn.functional as F

from IRN.datasets import MultiScaleDataset
from IRN.net.resnet50_cam import load_cam_net
from wsgcn.infra.io import prepare_outputs, save_npz
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.runtime import resolve_device
from wsgcn.seg.dataset import read_image_list


@torch.no_grad()
def compute_cams(model, pyramid, size, classes, power=1.0, vertical_flips=False):
    """CAMs of one image.

    pyramid: list over scales of (2, 3, h_s, w_s) tensors (the image and its horizontal flip).
    size: (H, W).  classes: (K,) object-class indices.  vertical_flips: also add the maps of the
    pyramid turned upside down (4 views per scale instead of IRNet's 2).
    Returns (cam (K, h, w), high_res (K, H, W)) float32 tensors, max-normalised per class and
    raised to ``power`` (1: IRNet's CAMs).
    """
    weight = model.classifier.weight[classes]
    grid = strided_size(size, 4)
    up = tuple(s * 16 for s in strided_size(size, 16))

    def flip_averaged(pair):
        maps = F.relu(F.conv2d(model.features(pair), weight))
        return maps[0] + maps[1].flip(-1)   # the flip's map, flipped back, added to the image's

    cam, high_res = 0, 0
    for pair in pyramid:
        maps = flip_averaged(pair)
        if vertical_flips:
            # A network trained from scratch may put a class's evidence beside the object rather
            # than on it; the horizontal flip cancels sideways offsets, this one vertical ones.
            maps = maps + flip_averaged(pair.flip(-2)).flip(-2)
        cam = cam + F.interpolate(maps[None], grid, mode="bilinear", align_corners=False)[0]
        high_res = high_res + F.interpolate(maps[None], up, mode="bilinear", align_corners=False)[0]
    high_res = high_res[:, : size[0], : size[1]]
    cam = cam / (cam.amax((1, 2), keepdim=True) + 1e-5)
    high_res = high_res / (high_res.amax((1, 2), keepdim=True) + 1e-5)
    if power != 1:
        cam, high_res = cam ** power, high_res ** power
    return cam, high_res


def cam_image_names(cfg):
    """Every image a later step needs a CAM for: the training list, then the rest of the infer list."""
    names = read_image_list(cfg.train_list)
    seen = set(names)
    return names + [n for n in read_image_list(cfg.infer_list) if n not in seen]


def output_places(cfg):
    """(folders, files) the step writes: checked before any work (wsgcn.infra.io.prepare_outputs)."""
    return [WorkDir(cfg.work_dir).cam], []


def run(cfg):
    device = resolve_device(cfg.device)
    work = WorkDir(cfg.work_dir)
    data = cfg.data_set()
    model = load_cam_net(work / cfg.cam_weights_name, num_classes=data.num_object_classes).to(device).eval()
    prepare_outputs(*output_places(cfg))
    failures = Failures("make_cam", work.cam)
    names = pending_images(cam_image_names(cfg), lambda name: [work.cam / f"{name}.npz"],
                           lambda name: [work / cfg.cam_weights_name, data.labels_path(name)], cfg.overwrite, failures)
    dataset = MultiScaleDataset(data, names, cfg.cam_scales)
    for pack in map_images(dataset.pack, names, cfg.num_workers, "make_cam", cfg.quiet, failures):
        with failures.guard(pack["name"]):
            classes = torch.nonzero(pack["label"])[:, 0]
            pyramid = [p.to(device, non_blocking=True) for p in pack["img"]]
            cam, high_res = compute_cams(model, pyramid, pack["size"], classes.to(device), cfg.cam_power,
                                          vertical_flips=cfg.cam_flips == "hv")
            if not (torch.isfinite(cam).all() and torch.isfinite(high_res).all()):
                raise ValueError(f"{pack['name']}: the CAM network's outputs hold NaN or Inf "
                                 f"({work / cfg.cam_weights_name})")
            save_npz(work.cam / f"{pack['name']}.npz", keys=classes.numpy().astype(np.int64),
                     cam=cam.cpu().numpy().astype(np.float32), high_res=high_res.cpu().numpy().astype(np.float32))
    failures.finish()
