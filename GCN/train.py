"""One GCN per image (SPEC §7): complete the partial pseudo labels.

    python GCN/train.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --train_list Data/VOC12/train.txt

Per image: the graph M from the boundary map, the 160-d node features, the partial labels;
a 2-layer GCN trained full-batch for ``max_epoch`` epochs, seeded from ``--seed`` and the image
name.  ``--batch_images`` images train together (one set of launches on a GPU), each with its
own model and the result it would get alone.  Writes ``GCN4DeepLab/Label/<name>.png`` and ``GCN4DeepLab/Logit/<name>.npz``
(``keys`` (K,) label indices, background first, ``prob`` (K, H, W) float32).
"""
import functools
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tensorboardX import SummaryWriter  # noqa: E402

from GCN.config import PROFILES, GCNConfig  # noqa: E402
from GCN.dataset import load_gcn_inputs  # noqa: E402
from GCN.graph import build_graph, graph_parts, grid_index  # noqa: E402
from GCN.layers import propagate  # noqa: E402
from GCN.laplacian import GridLaplacian  # noqa: E402
from GCN.losses import PADDING, total_loss  # noqa: E402
from GCN.models import GCN  # noqa: E402
from wsgcn import distributed  # noqa: E402
from wsgcn.cams import key_labels  # noqa: E402
from wsgcn.io import save_label_png, save_npz  # noqa: E402
from wsgcn.layout import WorkDir  # noqa: E402
from wsgcn.runtime import Failures, failure_reason, image_seed, map_images, pending_images, resolve_device  # noqa: E402
from wsgcn.scripts import script_main  # noqa: E402
from wsgcn.voc import IGNORE_INDEX, NUM_CLASSES, VOC12, read_image_list  # noqa: E402


def train_gcn(batch, cfg, device, parts=None):
    """Train the GCNs of a batch of images (a list of :class:`GCNInputs`) together, each its own
    model seeded from ``cfg.seed`` and its name, on its own graph, labels and loss: one image's
    result does not depend on the others in its batch.  ``parts``: the images' graph parts
    (``GCN.graph.graph_parts``) when already computed.

    The images' (h_b, w_b) grids share one (H, W) grid (top-left corners, ``graph.grid_index``)
    so that every step is one batched product.  Returns, per image, its output log-probabilities
    (21, h_b, w_b) and its final losses.
    """
    grid = tuple(max(x.partial_labels.shape[k] for x in batch) for k in (0, 1))
    index = [torch.as_tensor(grid_index(x.partial_labels.shape, grid), device=device) for x in batch]
    nfeat = len(batch[0].features)
    features = torch.zeros(len(batch), grid[0] * grid[1], nfeat, device=device)
    labels = torch.full((len(batch), grid[0] * grid[1]), PADDING, dtype=torch.long, device=device)
    for b, x in enumerate(batch):
        features[b, index[b]] = torch.from_numpy(x.features.reshape(nfeat, -1).T).to(device)
        labels[b, index[b]] = torch.from_numpy(x.partial_labels.astype(np.int64).reshape(-1)).to(device)
    graph = build_graph([torch.from_numpy(x.boundary).to(device) for x in batch], cfg, grid, parts)
    propagated = propagate(graph, features)  # M (X W1) = (M X) W1: the first layer's product, once
    laplacian = (GridLaplacian([x.grid_image for x in batch], cfg.lap_rgb_scale, cfg.lap_xy_scale, device=device,
                               grid=grid) if cfg.use_lap else None)
    models = []
    for x in batch:
        with torch.random.fork_rng(devices=[]):  # models are made on the CPU, so alike on every device
            torch.manual_seed(image_seed(cfg.seed, x.name))
            models.append(GCN(nfeat, cfg.num_hid_unit, NUM_CLASSES, cfg.drop_rate))
    model = GCN.stack(models).to(device)
    dropout_generators = [torch.Generator(device).manual_seed(image_seed(cfg.seed + 1, x.name)) for x in batch]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for _ in range(cfg.max_epoch):
        keep = torch.zeros(len(batch), grid[0] * grid[1], cfg.num_hid_unit, dtype=torch.bool, device=device)
        for b, generator in enumerate(dropout_generators):
            keep[b, index[b]] = torch.rand(len(index[b]), cfg.num_hid_unit, generator=generator,
                                           device=device) >= cfg.drop_rate
        optimizer.zero_grad(set_to_none=True)
        losses = total_loss(model(features, graph, propagated, keep), labels, laplacian, use_ent=cfg.use_ent,
                            use_lap=cfg.use_lap, ent_weight=cfg.ent_weight, lap_weight=cfg.lap_weight)
        losses["total"].sum().backward()  # image b's parameters get image b's gradient only
        optimizer.step()
    model.eval()
    with torch.no_grad():
        log_probs = model(features, graph, x_propagated=propagated)
    losses = {k: v.detach().cpu().tolist() for k, v in losses.items()}
    return [(log_probs[b, index[b]].t().reshape(NUM_CLASSES, *x.partial_labels.shape),
             {k: v[b] for k, v in losses.items()}) for b, x in enumerate(batch)]


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


def prepare(name, work, voc, cfg):
    """One image's inputs and, for the lowmem graph, its graph parts: the CPU work of an image,
    done in data-loading workers while the device trains."""
    inputs = load_gcn_inputs(work, voc, name, cfg.allow_pickle)
    parts = graph_parts(inputs.boundary, cfg) if cfg.graph == "lowmem" and labelled_classes(inputs).size else None
    return inputs, parts


def labelled_classes(inputs):
    """The classes that carry a partial label in the image, (k,) sorted."""
    return np.unique(inputs.partial_labels[inputs.partial_labels != IGNORE_INDEX])


def batch_size(cfg, device):
    """``cfg.batch_images``, or 32 images per batch on CUDA with the lowmem graph and 1 otherwise."""
    if cfg.batch_images:
        return cfg.batch_images
    return 32 if device.type == "cuda" and cfg.graph == "lowmem" else 1


def run(cfg):
    device = resolve_device(cfg.device)
    voc, work = VOC12(cfg.voc12_root, cfg.cls_labels or None, cfg.allow_pickle), WorkDir(cfg.work_dir)
    failures = Failures("GCN", work.gcn_label)
    names = pending_images(read_image_list(cfg.train_list), lambda name: outputs(work, name),
                           lambda name: input_files(work, name), cfg.overwrite, failures)
    writer = SummaryWriter(str(work.logs / ("gcn" if distributed.world_size() == 1 else f"gcn_rank{distributed.rank()}")))
    start, batch, done = time.time(), [], 0

    def write(inputs, labels, label_keys, prob):
        nonlocal done
        save_npz(work.gcn_logit / f"{inputs.name}.npz", keys=label_keys, prob=prob)
        save_label_png(work.gcn_label / f"{inputs.name}.png", labels)
        done += 1

    def train_batch():
        try:
            results = train_gcn([x for x, _ in batch], cfg, device, [p for _, p in batch] if batch[0][1] else None)
        except Exception as error:  # e.g. out of memory: the batch's images fail, the run goes on
            for inputs, _ in batch:
                failures.add(inputs.name, failure_reason(error))
            results = []
        for (inputs, _), (log_probs, losses) in zip(batch, results):
            with failures.guard(inputs.name):
                write(inputs, *predictions(log_probs, inputs.image.shape[:2], inputs.keys,
                                           cfg.restrict_to_image_classes))
                log_image(writer, done, inputs, losses)
        batch.clear()

    job = functools.partial(prepare, work=work, voc=voc, cfg=cfg)
    for inputs, parts in map_images(job, names, cfg.num_workers, "GCN", cfg.quiet, failures):
        labelled = labelled_classes(inputs)
        if labelled.size == 0:
            warnings.warn(f"{inputs.name}: no node carries a partial label; writing background everywhere")
            write(inputs, *fallback_output(inputs))
            log_image(writer, done, inputs, {})
            continue
        if labelled.size == 1:
            warnings.warn(f"{inputs.name}: the partial labels hold one class only ({int(labelled[0])})")
        batch.append((inputs, parts))
        if len(batch) == batch_size(cfg, device):
            train_batch()
    if batch:
        train_batch()
    writer.close()
    print(f"GCN: {done} images in {time.time() - start:.0f} s, labels in {work.gcn_label}")
    failures.finish()


def log_image(writer, index, inputs, losses):
    """TensorBoard: an image's final losses and the fraction of its nodes with a partial label,
    against the image's index in this run."""
    writer.add_scalar("gcn/label_coverage", float((inputs.partial_labels != IGNORE_INDEX).mean()), index)
    for key, value in losses.items():
        writer.add_scalar(f"gcn/final_{key}", value, index)


def input_files(work, name):
    return [work.partial_labels / f"{name}.png", work.boundary / f"{name}.npz", work.features / f"{name}.npz"]


def outputs(work, name):
    return [work.gcn_logit / f"{name}.npz", work.gcn_label / f"{name}.png"]


def main(argv=None):
    return script_main(run, GCNConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
