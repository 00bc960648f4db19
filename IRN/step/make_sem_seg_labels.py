"""Step 6: class-boundary map, GCN node features and random-walk labels (docs/method.md §5).

Per image writes ``IRN4GCN/BOUNDARY/<name>.npz`` (``boundary`` (h, w) float32),
``IRN4GCN/AFF_FEATURE/<name>.npz`` (``features`` (160, h, w) float16: half precision keeps a
VOC image's GCN inputs under 4 MB) and ``IRN4GCN/SEM_SEG/<name>.png``.  The random walk
applies T^(2^exp_times) to the CAMs by sparse products; T^256 itself is never formed.
"""
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from IRN.datasets import MultiScaleDataset
from IRN.net.resnet50_irn import load_irnet
from wsgcn.infra import distributed
from wsgcn.infra.io import prepare_outputs, save_label_png, save_npz
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.runtime import resolve_device
from wsgcn.seg.affinity import random_walk
from wsgcn.seg.cams import labels_with_background
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import find_score_file, load_cams

INFER_RADIUS = 5


def canvas_size(size, canvas):
    """The zero-padded canvas IRNet runs on: a ``canvas`` square as the original (512), or, for
    a larger image, its size rounded up to a multiple of 16 (the original would fail on it)."""
    return tuple(max(canvas, -(-s // 16) * 16) for s in size)


@torch.no_grad()
def boundary_and_features(model, pair, canvas):
    """pair: (2, 3, H, W) image and its flip.  Returns the boundary map (h, w) = sigmoid of the
    flip-averaged logit, and the flip-averaged node features (160, h, w)."""
    size = pair.shape[2:]
    grid = strided_size(size, 4)
    padded_size = canvas_size(size, canvas)
    # GroupNorm's statistics include the zero padding, so the canvas changes the outputs.
    padded = F.pad(pair, [0, padded_size[1] - size[1], 0, padded_size[0] - size[0]])
    edge, _, features = model(padded, with_features=True)
    edge, features = edge[..., : grid[0], : grid[1]], features[..., : grid[0], : grid[1]]
    boundary = torch.sigmoid(edge[0, 0] / 2 + edge[1, 0].flip(-1) / 2)
    return boundary, features[0] / 2 + features[1].flip(-1) / 2


def random_walk_labels(cams, classes, boundary, size, cfg):
    """IRNet's semantic labels: CAMs (K, h, w) walked on the boundary map's graph, upsampled x4,
    cropped to ``size``, divided by their maximum, background plane ``sem_seg_bg_thres``."""
    rw = random_walk(cams, boundary, beta=cfg.beta, exp_times=cfg.exp_times, radius=INFER_RADIUS)
    rw = F.interpolate(rw[:, None], scale_factor=4, mode="bilinear", align_corners=False)[:, 0, : size[0], : size[1]]
    rw = rw / rw.max()
    rw = F.pad(rw, (0, 0, 0, 0, 1, 0), value=cfg.sem_seg_bg_thres)
    labels = torch.as_tensor(labels_with_background(classes), device=rw.device)
    return labels[rw.argmax(0)].cpu().numpy().astype(np.uint8)


def output_places(cfg):
    """(folders, files) the step writes: checked before any work (wsgcn.infra.io.prepare_outputs)."""
    work = WorkDir(cfg.work_dir)
    return [work.boundary, work.features, work.sem_seg], []


def warn_canvas_mismatch(cfg):
    """One line when the canvas is not the crop IRNet was trained on: its GroupNorm statistics
    then see another share of padding than in training (docs/choices.md)."""
    if cfg.sem_seg_canvas_size != cfg.irn_crop_size and distributed.is_main():
        warnings.warn(f"--sem_seg_canvas_size {cfg.sem_seg_canvas_size} is not IRNet's training crop "
                      f"(--irn_crop_size {cfg.irn_crop_size}): the boundary maps are best on the canvas IRNet "
                      f"was trained on (docs/choices.md)")


def run(cfg):
    warn_canvas_mismatch(cfg)
    device = resolve_device(cfg.device)
    work = WorkDir(cfg.work_dir)
    data = cfg.data_set()
    model = load_irnet(work / cfg.irn_weights_name).to(device).eval()
    prepare_outputs(*output_places(cfg))
    failures = Failures("make_sem_seg_labels", work.sem_seg)

    def inputs(name):
        return [work / cfg.irn_weights_name, find_score_file(work.cam, name, cfg.allow_pickle)]

    names = pending_images(read_image_list(cfg.infer_list), lambda name: outputs(work, name), inputs, cfg.overwrite,
                           failures)
    dataset = MultiScaleDataset(data, names, scales=(1.0,))
    for pack in map_images(dataset.pack, names, cfg.num_workers, "make_sem_seg_labels", cfg.quiet, failures):
        name, size = pack["name"], pack["size"]
        with failures.guard(name):
            cam_file = find_score_file(work.cam, name, cfg.allow_pickle)
            cams = load_cams(cam_file, data.num_object_classes, cfg.allow_pickle, size)
            boundary, features = boundary_and_features(model, pack["img"][0].to(device), cfg.sem_seg_canvas_size)
            labels = random_walk_labels(torch.from_numpy(cams["cam"]).to(device), cams["classes"], boundary, size, cfg)
            save_npz(work.boundary / f"{name}.npz", boundary=boundary.cpu().numpy().astype(np.float32))
            save_npz(work.features / f"{name}.npz", features=features.cpu().numpy().astype(np.float16))
            save_label_png(work.sem_seg / f"{name}.png", labels)
    failures.finish()


def outputs(work, name):
    """The files the step writes for an image (the last one written last)."""
    return [work.boundary / f"{name}.npz", work.features / f"{name}.npz", work.sem_seg / f"{name}.png"]
