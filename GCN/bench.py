"""Benchmark of the GCN stage: its graph formulations on synthetic inputs of one size, or its
phases on a work directory's own inputs.

    python GCN/bench.py --nodes 125x94 --device cpu
    python GCN/bench.py --nodes 125x94 --device cuda --modes lowmem --batch 32
    python GCN/bench.py --work_dir Data --list Data/VOC12/train.txt --voc12_root ... [--device cuda]

Times one image's GCN stage (graph + Laplacian + ``--epochs`` epochs + labels) three ways, each
in a fresh process, and prints one JSON line per mode:

- ``original``: WSGCN's formulation, reimplemented: T^256 stored dense on disk (written before
  the clock starts) and loaded, ``rownorm`` by a dense diagonal product, the Laplacian filled
  in a Python loop as a dense float64 matrix, every epoch propagating both layers densely;
- ``dense``: this project's exact mode (M built in memory from the boundary map, the Laplacian
  as one weight map per neighbour offset, the first layer propagated once);
- ``lowmem``: the low-memory mode (the default).

Fields: ``mode``, ``nodes``, ``sec_per_image`` = ``prep_sec_per_image`` (the graph's CPU
preparation, e.g. lowmem's eigensolver, which the trainer runs in its data-loading workers while
the device trains the previous batch) + ``train_sec_per_image`` (the rest, on the device),
``peak_mb`` (CPU: how far the process's resident memory peaks above its size when the clock
starts, i.e. after imports and inputs; CUDA: peak allocated GPU memory), ``label_agreement``
(fraction of nodes labelled as the dense mode labels them), and ``speedup`` (vs the original).
On the CPU read the times as ratios; absolute figures mean something on a GPU.

With ``--work_dir`` (and ``--list``, and the data set's flags as for GCN/train.py) it times the
``--graph`` mode's stage on each listed image's own inputs (boundary map, features, partial
labels), then on synthetic inputs of the first image's grid, in this process, one JSON line per
image (``grid`` [h, w], ``nodes``) with each phase apart: ``load_s`` (reading the inputs), ``graph_s`` (the graph's CPU
preparation), ``assemble_s`` (its device tensors), ``laplacian_s``, ``setup_s`` (everything of a
training but its epochs: the graph, the Laplacian, the model, the final forward), ``epoch_s`` (one
epoch, from the difference of a 1-epoch and a (1 + ``--epochs``)-epoch training), ``write_s``
(the label map and scores, written to a temporary folder) and ``sec_per_image`` = load + graph +
setup + ``--epochs`` x epoch + write; then the mean of each over the real images.
"""
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from GCN.batch import GridBatch
from GCN.config import GCNConfig
from GCN.graph import GRAPHS, graph_mode
from GCN.inputs import GCNInputs, load_gcn_inputs
from GCN.laplacian import GridLaplacian
from GCN.models import GCN
from GCN.train import GCNOutputs, predictions, train_gcn
from wsgcn.infra.config import field
from wsgcn.infra.io import prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import tool_main
from wsgcn.seg.affinity import dense_transition_power
from wsgcn.seg.cams import labels_with_background
from wsgcn.seg.dataset import DATASETS, DataConfig, read_image_list

MODES = ("original", "dense", "lowmem")


def comma_separated(text):
    """``original,dense`` -> ('original', 'dense')."""
    return tuple(text.split(","))


@dataclass(frozen=True)
class BenchConfig(DataConfig):
    nodes: str = field("125x94", "grid size HxW (125x94: a 500x375 VOC image)")
    device: str = field("cpu", "what to compute on", choices=("cpu", "cuda", "cuda:N"))
    epochs: int = field(250, "GCN training epochs", low=1)
    modes: tuple[str, ...] = field(MODES, "the formulations to time, comma-separated", parse=comma_separated,
                                   choices=MODES)
    batch: int = field(1, "dense and lowmem: train this many images' GCNs together (sec_per_image is per image)",
                       low=1)
    work_dir: str = field("", "time the stage's phases on this work directory's GCN inputs ('' = the synthetic "
                              "comparison of --modes)")
    list: str = field("", "with --work_dir: the images to time")
    graph: str = field("lowmem", "with --work_dir: the graph mode to time", choices=tuple(GRAPHS))


def grid_size(nodes):
    """(h, w) from ``HxW``; anything else is a bad setting."""
    h, x, w = nodes.lower().partition("x")
    if not (x and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise ValueError(f"argument --nodes: {nodes!r} is not HxW with H, W >= 1 (e.g. 125x94)")
    return int(h), int(w)


def synthetic_inputs(h, w, seed=0):
    """A boundary map traced from a few object outlines plus mild noise, region-correlated node
    features and colours, and partial labels on about 40 % of the nodes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    regions = np.zeros((h, w), np.int64)
    for k in range(1, 4):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.1, 0.3) * h, rng.uniform(0.1, 0.3) * w
        regions[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = k
    edges = np.zeros((h, w), bool)
    edges[:-1] |= regions[:-1] != regions[1:]
    edges[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    boundary = np.clip(0.95 * edges + 0.05 * rng.random((h, w)), 0, 1).astype(np.float32)
    classes = np.array([0, 3, 8, 15])  # background, bird, cat, person
    features = (rng.standard_normal((160, 4)) @ np.eye(4)[regions].reshape(-1, 4).T).reshape(160, h, w)
    features = (features + 0.5 * rng.standard_normal((160, h, w))).astype(np.float32)
    colours = rng.integers(0, 256, (4, 3))
    image = np.clip(colours[regions] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    partial = np.where(rng.random((h, w)) < 0.4, classes[regions], 255).astype(np.uint8)
    partial[edges] = 255
    return GCNInputs("synthetic", image, image, features, boundary, partial, classes[1:] - 1,
                     DATASETS["voc12"].num_classes)


def original_laplacian(image, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2):
    """WSGCN's Laplacian as its dataset.py builds it: a Python loop over pixels filling a dense
    float64 (N, N) S over rows 0..2 below and columns ±2, then S = max(S, Sᵀ) and L = D - S.
    O(N²) memory: for the benchmark and tiny test images only.

    image (h, w, 3) in 0..255 -> L (N, N) float64 numpy array.
    """
    img = np.asarray(image, np.float64) / 255.0
    h, w = img.shape[:2]
    s = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            for dy in range(radius_rows + 1):
                for dx in range(-radius_cols, radius_cols + 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w:
                        d_rgb = ((img[y, x] - img[ny, nx]) ** 2).sum()
                        s[y * w + x, ny * w + nx] = np.exp(-d_rgb / rgb_scale - (dy * dy + dx * dx) / xy_scale)
    s = np.maximum(s, s.T)
    return np.diag(s.sum(1)) - s


def original_stage(inputs, cfg, device, stored_graph):
    """WSGCN's GCN stage on one image, as its train.py/dataset.py do it."""
    h, w = inputs.partial_labels.shape
    n = h * w
    graph = torch.from_numpy(np.load(stored_graph)).to(device)
    adj = torch.stack([graph, graph.t()]).max(0)[0] + torch.eye(n, device=device)
    r_inv = adj.sum(1).pow(-1)
    adj = torch.mm(torch.diagflat(r_inv), adj)                    # row normalisation as the original
    lap = torch.from_numpy(original_laplacian(inputs.grid_image)).to(device)
    features = torch.from_numpy(inputs.features.reshape(160, n).T.copy()).to(device)
    labels = torch.from_numpy(inputs.partial_labels.astype(np.int64).reshape(-1)).to(device)
    fg = torch.where(labels == 0, 255, labels)
    bg = torch.where(labels != 0, 255, labels)
    torch.manual_seed(cfg.seed)
    model = GCN(160, cfg.num_hid_unit, 21, cfg.drop_rate).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.max_epoch):
        model.train()
        optimizer.zero_grad()
        out = model(features, adj)
        loss = F.nll_loss(out, fg, ignore_index=255) + F.nll_loss(out, bg, ignore_index=255)
        unlabelled = labels == 255
        loss = loss + 10 * (-(out[unlabelled].exp() * out[unlabelled])).mean()
        loss = loss + 1e-2 * torch.trace(torch.mm(out.t(), torch.mm(lap.type_as(out), out))) / n
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(features, adj).t().reshape(21, h, w)


def _status_mb(field):
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_mode(mode, h, w, device_name, epochs, batch, stored_graph, queue):
    torch.manual_seed(0)
    device = torch.device(device_name)
    inputs = synthetic_inputs(h, w)
    batch_inputs = [inputs] + [replace(synthetic_inputs(h, w, seed), name=f"synthetic{seed}")
                               for seed in range(1, batch)]
    cfg = replace(GCNConfig(), max_epoch=epochs, graph="lowmem" if mode == "lowmem" else "dense")
    # Warm up (lazy initialisation of kernels and libraries costs seconds on a first call).
    warm = replace(cfg, max_epoch=2)
    train_gcn([synthetic_inputs(12, 12)], warm, device)
    if mode == "original":
        original_stage(synthetic_inputs(12, 12), warm, device, stored_graph.with_name("warm.npy"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current size
        resident = _status_mb("VmRSS")
    start = time.perf_counter()
    if mode == "original":
        log_probs = original_stage(inputs, cfg, device, stored_graph)
        prepared_at = start
    else:
        graph = graph_mode(cfg.graph)
        prepared = [graph.prepare(x.boundary, cfg) for x in batch_inputs]  # CPU: in the trainer's workers
        prepared_at = time.perf_counter()
        log_probs = train_gcn(batch_inputs, cfg, device, prepared)[0][0]
    present = torch.as_tensor(labels_with_background(inputs.classes), device=log_probs.device)
    labels = present[log_probs[present].argmax(0)].cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        peak = _status_mb("VmHWM") - resident
    images = 1 if mode == "original" else batch
    end = time.perf_counter()
    queue.put((mode, (prepared_at - start) / images, (end - prepared_at) / images, peak, labels))


class Stopwatch:
    """Seconds between successive :meth:`lap` calls, the device's queued work included."""

    def __init__(self, device):
        self.device, self.laps = device, {}
        self.last = time.perf_counter()

    def lap(self, name):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now


def phase_times(load, gcn_cfg, device, epochs, outputs):
    """The phases of one image's GCN stage as GCN/train.py runs them, timed apart.  load():
    the image's :class:`GCN.inputs.GCNInputs`; outputs: a :class:`GCN.train.GCNOutputs`."""
    clock = Stopwatch(device)
    inputs = load()
    clock.lap("load")
    mode = graph_mode(gcn_cfg.graph)
    prepared = mode.prepare(inputs.boundary, gcn_cfg)
    clock.lap("graph")
    batch = GridBatch([inputs.partial_labels.shape], device)
    mode.assemble([prepared], batch, gcn_cfg)
    clock.lap("assemble")
    GridLaplacian([inputs.grid_image], batch, gcn_cfg.lap_rgb_scale, gcn_cfg.lap_xy_scale)
    clock.lap("laplacian")
    train_gcn([inputs], replace(gcn_cfg, max_epoch=1), device, [prepared])
    clock.lap("one_epoch")
    log_probs, losses = train_gcn([inputs], replace(gcn_cfg, max_epoch=1 + epochs), device, [prepared])[0]
    clock.lap("more_epochs")
    outputs.write(inputs, *predictions(log_probs, inputs.image.shape[:2], inputs.classes,
                                       gcn_cfg.restrict_to_image_classes), losses)
    clock.lap("write")
    t = clock.laps
    epoch = (t["more_epochs"] - t["one_epoch"]) / epochs
    setup = t["one_epoch"] - epoch
    return {"name": inputs.name, "grid": list(inputs.partial_labels.shape),
            "nodes": int(inputs.partial_labels.size), "load_s": t["load"],
            "graph_s": t["graph"], "assemble_s": t["assemble"], "laplacian_s": t["laplacian"], "setup_s": setup,
            "epoch_s": epoch, "write_s": t["write"],
            "sec_per_image": t["load"] + t["graph"] + setup + epochs * epoch + t["write"]}


def run_on_work_dir(cfg):
    """The phases on each image of ``cfg.list`` in ``cfg.work_dir``, then on synthetic inputs of
    the first image's grid; one JSON line each, then the real images' means."""
    device = torch.device(cfg.device)
    names = read_image_list(cfg.list)
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    gcn_cfg = replace(GCNConfig(), graph=cfg.graph, dataset=cfg.dataset)
    train_gcn([synthetic_inputs(12, 12)], replace(gcn_cfg, max_epoch=2), device)  # lazy initialisation, untimed
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = WorkDir(tmp)
        prepare_outputs([scratch.gcn_logit, scratch.gcn_label, scratch.logs])
        outputs = GCNOutputs(scratch)
        for name in names:
            row = phase_times(lambda: load_gcn_inputs(work, data, name, cfg.allow_pickle), gcn_cfg, device,
                              cfg.epochs, outputs)
            rows.append(row)
            print(json.dumps({"inputs": "real", **rounded(row)}), flush=True)
        synthetic = phase_times(lambda: synthetic_inputs(*rows[0]["grid"]), gcn_cfg, device, cfg.epochs, outputs)
        outputs.close()
    print(json.dumps({"inputs": "synthetic", **rounded(synthetic)}), flush=True)
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key.endswith("_s")}
    means["sec_per_image"] = float(np.mean([row["sec_per_image"] for row in rows]))
    print(json.dumps({"inputs": "real, mean", "images": len(rows), "epochs": cfg.epochs, "graph": cfg.graph,
                      "device": cfg.device, **rounded(means)}), flush=True)


def rounded(row):
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def run(cfg):
    if cfg.work_dir:
        if not cfg.list:
            raise ValueError("--work_dir needs --list: the images whose GCN inputs to time")
        return run_on_work_dir(cfg)
    h, w = grid_size(cfg.nodes)
    context = mp.get_context("spawn")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stored = Path(tmp) / "t256.npy"
        if "original" in cfg.modes:  # the IRN stage's output in the original: written before timing
            for path, (gh, gw) in ((stored, (h, w)), (stored.with_name("warm.npy"), (12, 12))):
                boundary = torch.from_numpy(synthetic_inputs(gh, gw).boundary)
                np.save(path, dense_transition_power(boundary, 10, 8).numpy())
        for mode in cfg.modes:
            queue = context.Queue()
            process = context.Process(target=run_mode,
                                      args=(mode, h, w, cfg.device, cfg.epochs, cfg.batch, stored, queue))
            process.start()
            results[mode] = queue.get()
            process.join()
    reference = results["dense"][4] if "dense" in results else None
    original_time = sum(results["original"][1:3]) if "original" in results else None
    for mode, prep, train, peak, labels in results.values():
        seconds = prep + train
        print(json.dumps({
            "mode": mode, "nodes": h * w, "device": cfg.device, "batch": 1 if mode == "original" else cfg.batch,
            "sec_per_image": round(seconds, 3), "prep_sec_per_image": round(prep, 3),
            "train_sec_per_image": round(train, 3), "peak_mb": round(peak, 1),
            "label_agreement": None if reference is None else round(float((labels == reference).mean()), 4),
            "speedup": None if original_time is None else round(original_time / seconds, 2),
        }), flush=True)


def main(argv=None):
    return tool_main(run, BenchConfig, argv, __doc__, prog="bench.py")


if __name__ == "__main__":
    sys.exit(main())
