"""One GCN per image (SPEC §7): complete the partial pseudo labels.

    python GCN/train.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --train_list Data/VOC12/train.txt

Per image: the graph M from the boundary map, the 160-d node features, the partial labels;
a 2-layer GCN trained full-batch for ``max_epoch`` epochs, seeded from ``--seed`` and the image
name.  Writes ``GCN4DeepLab/Label/<name>.png`` and ``GCN4DeepLab/Logit/<name>.npz``
(``keys`` (K,) label indices, background first, ``prob`` (K, H, W) float32).
"""
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from GCN.config import PROFILES, GCNConfig  # noqa: E402
from GCN.dataset import load_gcn_inputs  # noqa: E402
from GCN.graph import build_graph  # noqa: E402
from GCN.layers import propagate  # noqa: E402
from GCN.laplacian import GridLaplacian  # noqa: E402
from GCN.losses import total_loss  # noqa: E402
from GCN.models import GCN  # noqa: E402
from wsgcn.cams import key_labels  # noqa: E402
from wsgcn.config import parse_config  # noqa: E402
from wsgcn.io import save_label_png, save_npz  # noqa: E402
from wsgcn.layout import WorkDir  # noqa: E402
from wsgcn.runtime import image_seed, one_line_warnings, progress, resolve_device  # noqa: E402
from wsgcn.voc import IGNORE_INDEX, NUM_CLASSES, VOC12, read_image_list  # noqa: E402


def train_gcn(inputs, cfg, device):
    """Train one image's GCN; returns its output log-probabilities (21, h, w) and the final losses."""
    h, w = inputs.partial_labels.shape
    labels = torch.from_numpy(inputs.partial_labels.astype(np.int64).reshape(-1)).to(device)
    features = torch.from_numpy(inputs.features.reshape(len(inputs.features), -1).T.copy()).to(device)
    graph = build_graph(torch.from_numpy(inputs.boundary).to(device), cfg)
    propagated = propagate(graph, features)  # M (X W1) = (M X) W1: the first layer's product, once
    laplacian = (GridLaplacian(inputs.grid_image, cfg.lap_rgb_scale, cfg.lap_xy_scale, device=device)
                 if cfg.use_lap else None)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(image_seed(cfg.seed, inputs.name))
        model = GCN(features.shape[1], cfg.num_hid_unit, NUM_CLASSES, cfg.drop_rate).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()
        for _ in range(cfg.max_epoch):
            optimizer.zero_grad(set_to_none=True)
            losses = total_loss(model(features, graph, x_propagated=propagated), labels, laplacian,
                                use_ent=cfg.use_ent, use_lap=cfg.use_lap, ent_weight=cfg.ent_weight,
                                lap_weight=cfg.lap_weight)
            losses["total"].backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            log_probs = model(features, graph, x_propagated=propagated)
    return log_probs.t().reshape(NUM_CLASSES, h, w), {k: v.item() for k, v in losses.items()}


def predictions(log_probs, size, keys, restrict=True):
    """Upsample (21, h, w) log-probabilities bilinearly (align_corners=True) to ``size``.

    Returns (labels (H, W) uint8, label keys (K,) background first, prob (K, H, W) float32).
    ``restrict``: the argmax only over background and the image's classes; otherwise over all 21.
    """
    up = F.interpolate(log_probs[None], size=tuple(size), mode="bilinear", align_corners=True)[0]
    label_keys = key_labels(keys)
    index = torch.as_tensor(label_keys, device=up.device)
    labels = index[up[index].argmax(0)] if restrict else up.argmax(0)
    return labels.cpu().numpy().astype(np.uint8), label_keys, up[index].exp().cpu().numpy().astype(np.float32)


def fallback_output(inputs):
    """An image with no labelled node: background everywhere (probability 1), with a warning."""
    size = inputs.image.shape[:2]
    label_keys = key_labels(inputs.keys)
    prob = np.zeros((len(label_keys),) + size, np.float32)
    prob[0] = 1.0
    return np.zeros(size, np.uint8), label_keys, prob


def run(cfg):
    device = resolve_device(cfg.device)
    voc, work = VOC12(cfg.voc12_root, cfg.cls_labels or None, cfg.allow_pickle), WorkDir(cfg.work_dir)
    names = read_image_list(cfg.train_list)
    start, coverage = time.time(), []
    for name in progress(names, "GCN", cfg.quiet):
        inputs = load_gcn_inputs(work, voc, name, cfg.allow_pickle)
        labelled = np.unique(inputs.partial_labels[inputs.partial_labels != IGNORE_INDEX])
        coverage.append(float((inputs.partial_labels != IGNORE_INDEX).mean()))
        if labelled.size == 0:
            warnings.warn(f"{name}: no node carries a partial label; writing background everywhere")
            labels, label_keys, prob = fallback_output(inputs)
        else:
            if labelled.size == 1:
                warnings.warn(f"{name}: the partial labels hold one class only ({int(labelled[0])})")
            log_probs, _ = train_gcn(inputs, cfg, device)
            labels, label_keys, prob = predictions(log_probs, inputs.image.shape[:2], inputs.keys,
                                                   cfg.restrict_to_image_classes)
        save_npz(work.gcn_logit / f"{name}.npz", keys=label_keys, prob=prob)
        save_label_png(work.gcn_label / f"{name}.png", labels)
    print(f"GCN: {len(names)} images in {time.time() - start:.0f} s, partial labels on "
          f"{100 * np.mean(coverage):.1f} % of the nodes, labels in {work.gcn_label}")


def main(argv=None):
    one_line_warnings()
    run(parse_config(GCNConfig, PROFILES, argv, description=__doc__))


if __name__ == "__main__":
    main()
