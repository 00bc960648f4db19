"""One GCN per image (docs/method.md §7): complete the partial pseudo labels.

    python GCN/train.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --train_list Data/VOC12/train.txt

Per image: the graph M from the boundary map, the 160-d node features, the partial labels;
a 2-layer GCN trained full-batch for ``max_epoch`` epochs, seeded from ``--seed`` and the image
name.  ``--batch_images`` images train together (one set of launches on a GPU), each with its
own model and the result it would get alone.  Writes ``GCN4DeepLab/Label/<name>.png`` and
``GCN4DeepLab/Logit/<name>.npz`` (``keys`` (K,) label indices, background first, ``prob``
(K, H, W) float32).
"""
import functools
import time
import traceback
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from GCN.batch import GridBatch
from GCN.config import PROFILES, GCNConfig
from GCN.graph import graph_mode
from GCN.inputs import load_gcn_inputs
from GCN.laplacian import GridLaplacian
from GCN.losses import total_loss
from GCN.models import StackedGCN
from wsgcn.infra import distributed
from wsgcn.infra.io import prepare_outputs, save_label_png, save_npz
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures, failure_reason, is_input_error, is_out_of_memory, map_images, pending_images
from wsgcn.infra.runtime import resolve_device
from wsgcn.infra.scripts import script_main
from wsgcn.infra.tensorboard import ScalarLog
from wsgcn.seg.cams import labels_with_background
from wsgcn.seg.dataset import IGNORE_INDEX, read_image_list


def train_gcn(images, cfg, device, prepared=None):
    """Train the GCNs of a batch of images (a list of :class:`GCN.inputs.GCNInputs`) together,
    each with its own model, graph, labels and loss: one image's result does not depend on the
    others in its batch.  ``prepared``: the images' graph preparations (``prepare`` of the
    ``cfg.graph`` mode), when already made in the data-loading workers.

    Returns, per image, its output log-probabilities (C, h_b, w_b) and its final losses.
    """
    batch = GridBatch([x.partial_labels.shape for x in images], device)
    mode = graph_mode(cfg.graph)
    graph = mode.assemble(prepared or [mode.prepare(x.boundary, cfg) for x in images], batch, cfg)
    features = batch.scatter_maps([x.features for x in images])
    laplacian = (GridLaplacian([x.grid_image for x in images], batch, cfg.lap_rgb_scale, cfg.lap_xy_scale)
                 if cfg.use_lap else None)
    num_classes = images[0].num_classes
    layout = output_layout(cfg)
    if layout != "all":
        # image b's model has its own classes first, background first: output k is class
        # own[b][k], and the partial labels are renumbered to match; "padded" adds outputs that
        # no label names, up to the original's 21, which train as an absent VOC class does
        own = [labels_with_background(x.classes) for x in images]
        labels = batch.scatter_labels([renumber(x, classes) for x, classes in zip(images, own)])
        nclass = [len(classes) if layout == "image" else max(len(classes), ORIGINAL_OUTPUTS) for classes in own]
    else:
        labels = batch.scatter_labels([x.partial_labels for x in images])
        nclass = num_classes
    model = StackedGCN.for_images([x.name for x in images], batch, features, graph, cfg.seed, cfg.num_hid_unit,
                                  nclass, cfg.drop_rate)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    model.train()
    for _ in range(cfg.max_epoch):
        optimizer.zero_grad(set_to_none=True)
        losses = total_loss(model(), labels, laplacian, use_ent=cfg.use_ent, use_lap=cfg.use_lap,
                            ent_weight=cfg.ent_weight, lap_weight=cfg.lap_weight, columns=model.columns)
        losses["total"].sum().backward()  # image b's parameters get image b's gradient only
        optimizer.step()

    model.eval()
    with torch.no_grad():
        log_probs = batch.image_maps(model())
        if layout != "all":  # back to the data set's C outputs, the absent classes with p = 0
            log_probs = [scatter_classes(lp[: len(classes)], classes, num_classes)
                         for lp, classes in zip(log_probs, own)]
    losses = {k: v.detach().cpu().tolist() for k, v in losses.items()}
    return [(log_probs[b], {k: v[b] for k, v in losses.items()}) for b in range(len(images))]


ORIGINAL_OUTPUTS = 21  # WSGCN's GCN on VOC: the count its loss weights (entropy 10, Laplacian 0.01) were set for


def output_layout(cfg):
    """The GCN's outputs, ``cfg.outputs`` with ``auto`` resolved: "all" (one per class of the data
    set) on voc12, as the original; "padded" on the others, whose class count (81 on COCO, 3 on a
    data set of one's own) would otherwise change the weight of the entropy and smoothness terms."""
    if cfg.outputs != "auto":
        return cfg.outputs
    return "all" if cfg.dataset == "voc12" else "padded"


def renumber(inputs, classes):
    """The image's partial labels (h, w) with class classes[k] as k (255 kept); a label of a class
    the image does not have is an error naming the file."""
    lookup = np.full(256, -1, np.int64)
    lookup[classes] = np.arange(len(classes))
    lookup[IGNORE_INDEX] = IGNORE_INDEX
    renumbered = lookup[inputs.partial_labels]
    if (renumbered < 0).any():
        stray = np.unique(inputs.partial_labels[renumbered < 0]).tolist()
        raise ValueError(f"{inputs.name}: partial labels of classes {stray}, which the image's CAMs do not have "
                         f"({classes.tolist()} with the background)")
    return renumbered


ABSENT_LOG_PROB = -1e4  # probability 0 in float32, and finite: interpolating -inf gives NaN (0 * -inf)


def scatter_classes(log_probs, classes, num_classes):
    """(K, h, w) log-probabilities of ``classes`` -> (num_classes, h, w), ``ABSENT_LOG_PROB`` for
    the others."""
    full = log_probs.new_full((num_classes,) + tuple(log_probs.shape[1:]), ABSENT_LOG_PROB)
    full[torch.as_tensor(classes, device=log_probs.device)] = log_probs
    return full


def predictions(log_probs, size, classes, restrict=True):
    """Upsample (C, h, w) log-probabilities bilinearly (align_corners=True) to ``size``.

    Returns (label map (H, W) uint8, labels (K,) the image's labels, background first,
    prob (K, H, W) float32).  ``restrict``: the argmax only over background and the image's
    ``classes``; otherwise over all C.
    """
    up = F.interpolate(log_probs[None], size=tuple(size), mode="bilinear", align_corners=True)[0]
    labels = labels_with_background(classes)
    index = torch.as_tensor(labels, device=up.device)
    label_map = index[up[index].argmax(0)] if restrict else up.argmax(0)
    return label_map.cpu().numpy().astype(np.uint8), labels, up[index].exp().cpu().numpy().astype(np.float32)


def fallback_output(inputs):
    """An image with no labelled node: background everywhere (probability 1), with a warning."""
    size = inputs.image.shape[:2]
    labels = labels_with_background(inputs.classes)
    prob = np.zeros((len(labels),) + size, np.float32)
    prob[0] = 1.0
    return np.zeros(size, np.uint8), labels, prob


def prepare(name, work, data, cfg):
    """One image's inputs and its graph preparation: the CPU work of an image, done in
    data-loading workers while the device trains (none for an image that will not train)."""
    inputs = load_gcn_inputs(work, data, name, cfg.allow_pickle)
    if output_layout(cfg) != "all":
        renumber(inputs, labels_with_background(inputs.classes))  # a stray label fails this image here
    prepared = graph_mode(cfg.graph).prepare(inputs.boundary, cfg) if labelled_classes(inputs).size else None
    return inputs, prepared


def labelled_classes(inputs):
    """The classes that carry a partial label in the image, (k,) sorted."""
    return np.unique(inputs.partial_labels[inputs.partial_labels != IGNORE_INDEX])


def batch_size(cfg, device):
    """``cfg.batch_images``, or the graph mode's ``cuda_batch`` on CUDA and 1 on the CPU."""
    if cfg.batch_images:
        return cfg.batch_images
    return graph_mode(cfg.graph).cuda_batch if device.type == "cuda" else 1


class GCNOutputs:
    """Writes an image's label map and scores under the work directory, and its TensorBoard
    scalars (final losses, partial-label coverage) against its number in this run (from 1)."""

    def __init__(self, work):
        self.work, self.count = work, 0
        rank = "" if distributed.world_size() == 1 else f"_rank{distributed.rank()}"
        self.writer = ScalarLog(work.logs / f"gcn{rank}")

    def write(self, inputs, label_map, labels, prob, losses):
        save_npz(self.work.gcn_logit / f"{inputs.name}.npz", keys=labels, prob=prob)
        save_label_png(self.work.gcn_label / f"{inputs.name}.png", label_map)
        self.count += 1
        self.writer.add_scalar("gcn/label_coverage", float((inputs.partial_labels != IGNORE_INDEX).mean()), self.count)
        for key, value in losses.items():
            self.writer.add_scalar(f"gcn/final_{key}", value, self.count)

    def close(self):
        self.writer.close()


def train_and_write(batch, cfg, device, out, failures):
    """Train a batch of [(inputs, prepared)] and write each image's outputs.

    Out of memory: the batch's images are retried one at a time (an image that still does not
    fit fails alone).  On the CPU another input error fails the batch's images and the run goes
    on; on CUDA it stops the run, as a device-side error leaves the CUDA context unusable for
    every later batch."""
    images = [inputs for inputs, _ in batch]
    try:
        results = train_gcn(images, cfg, device, [prepared for _, prepared in batch])
    except Exception as error:
        if is_out_of_memory(error):
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) > 1:
                for item in batch:
                    train_and_write([item], cfg, device, out, failures)
            else:
                failures.add(images[0].name, failure_reason(error), traceback.format_exc())
            return
        if device.type == "cuda" or not is_input_error(error):  # a bug, or a CUDA context left unusable
            raise
        for inputs in images:
            failures.add(inputs.name, failure_reason(error), traceback.format_exc())
        return
    for inputs, (log_probs, losses) in zip(images, results):
        with failures.guard(inputs.name):
            size = inputs.image.shape[:2]
            out.write(inputs, *predictions(log_probs, size, inputs.classes, cfg.restrict_to_image_classes), losses)


def run(cfg):
    device = resolve_device(cfg.device)
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    prepare_outputs([work.gcn_logit, work.gcn_label, work.logs])
    failures = Failures("GCN", work.gcn_label)
    names = pending_images(read_image_list(cfg.train_list), lambda name: outputs(work, name),
                           lambda name: input_files(work, name), cfg.overwrite, failures)
    out, start, batch = GCNOutputs(work), time.time(), []
    job = functools.partial(prepare, work=work, data=data, cfg=cfg)
    for inputs, prepared in map_images(job, names, cfg.num_workers, "GCN", cfg.quiet, failures):
        labelled = labelled_classes(inputs)
        if labelled.size == 0:
            warnings.warn(f"{inputs.name}: no node carries a partial label; writing background everywhere")
            out.write(inputs, *fallback_output(inputs), {})
            continue
        if labelled.size == 1:
            warnings.warn(f"{inputs.name}: the partial labels hold one class only ({int(labelled[0])})")
        batch.append((inputs, prepared))
        if len(batch) == batch_size(cfg, device):
            train_and_write(batch, cfg, device, out, failures)
            batch = []
    if batch:
        train_and_write(batch, cfg, device, out, failures)
    out.close()
    print(f"GCN: {out.count} images in {time.time() - start:.0f} s, labels in {work.gcn_label}")
    failures.finish()


def input_files(work, name):
    return [work.partial_labels / f"{name}.png", work.boundary / f"{name}.npz", work.features / f"{name}.npz"]


def outputs(work, name):
    return [work.gcn_logit / f"{name}.npz", work.gcn_label / f"{name}.png"]


def main(argv=None):
    return script_main(run, GCNConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
