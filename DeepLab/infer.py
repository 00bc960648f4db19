"""Stage II inference (docs/method.md §10): DeepLab-v2's labels of a list of images.

    python DeepLab/infer.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/val.txt
    python eval.py --pred Data/DeepLab/val/Label --gt Data/VOC12/VOC2012/SegmentationClassAug \\
                   --list Data/VOC12/val.txt

Per image, as kazuto1011/deeplab-pytorch's ``main.py test`` and ``crf``: the whole image (batch
1) through the network in evaluation mode (the pixelwise max of its logits at scales 1, 0.5 and
0.75, stride 8; ``--flip True`` averages them with the mirrored image's, mirrored back), the
logits upsampled bilinearly to H x W, a softmax over the data set's C classes, the argmax.  Writes, under
``--out`` ('' = ``<work_dir>/DeepLab/<list file stem>``):

    Label/<name>.png         the argmax (palette PNG)
    CRF_Label/<name>.png     --crf True: the argmax of a dense CRF (unary -log softmax) on the image
    Prob/<name>.npz          --save_prob True: prob (C, H, W) float32, the softmax
    results/VOC2012/Segmentation/comp6_test_cls/<name>.png
                             a list without ground truth (test images): the labels (the CRF's with
                             --crf True) in the VOC evaluation server's layout

``--weights`` '' = ``<work_dir>/<weights_name>`` (what DeepLab/train.py writes).
"""
import collections
import functools
import multiprocessing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from DeepLab.config import PROFILES, DeepLabConfig, cuda_only_flags
from DeepLab.datasets import chw, input_array, input_convention
from DeepLab.net.deeplab_v2 import deeplab_v2
from DeepLab.net.weights import load_deeplab
from wsgcn.infra import distributed
from wsgcn.infra.io import prepare_outputs, save_label_png, save_npz
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.runtime import resolve_device, worker_init_fn
from wsgcn.infra.scripts import script_main
from wsgcn.seg.crf import CRFParams, dense_crf, probability_unary
from wsgcn.seg.dataset import read_image_list

# kazuto1011's configs/voc12.yaml: CRF POS_XY_STD 1, POS_W 3, BI_XY_STD 67, BI_RGB_STD 3, BI_W 4, ITER_MAX 10
DEEPLAB_CRF = CRFParams(gauss_sxy=1, gauss_compat=3, bilateral_sxy=67, bilateral_srgb=3, bilateral_compat=4,
                        iterations=10)
COMP6 = Path("results", "VOC2012", "Segmentation", "comp6_test_cls")  # the evaluation server's layout


def build_model(cfg, weights, num_classes, device, channels_last=False):
    """The trained network for ``num_classes`` from ``weights``, in evaluation mode on ``device``."""
    model = load_deeplab(deeplab_v2(cfg.backbone, num_classes, cfg.depth, cfg.msc_scales), weights)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


@torch.no_grad()
def predict_logits(model, x, flip=False, amp=False, channels_last=False):
    """(1, 3, H, W) input -> (1, C, h, w) float32 logits at stride 8 (the MSC max); with ``flip``
    the mean of the image's and its mirror image's (mirrored back), one batch of two."""
    batch = torch.cat([x, x.flip(-1)]) if flip else x
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(batch).float()
    return (logits[:1] + logits[1:].flip(-1)) / 2 if flip else logits


def probabilities(logits, size):
    """(1, C, h, w) logits -> (C, H, W): their softmax over the classes after a bilinear
    upsampling (``align_corners=False``) to ``size``, in this order (kazuto1011's ``test``)."""
    logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return F.softmax(logits, dim=1)[0]


def crf_labels(image, prob, params=DEEPLAB_CRF):
    """(H, W) uint8 argmax of the dense CRF's marginals on ``image`` (H, W, 3) uint8 RGB, unary
    -log(prob) with prob clipped to [1e-5, 1] (pydensecrf's ``unary_from_softmax``, as
    kazuto1011's DenseCRF).  The bilateral kernel sees the image itself, as kazuto1011's demo.py
    and johnnylu305's ``crf`` have it (kazuto1011's ``main.py crf`` passes its mean-subtracted
    network input cast to uint8, wrapping the negative values)."""
    return dense_crf(image, probability_unary(prob), params).argmax(0).astype(np.uint8)


def write_crf_labels(image, prob, paths):
    """The CRF labels of one image, written to every path of ``paths`` (run in a CRF worker)."""
    labels = crf_labels(image, prob)
    for path in paths:
        save_label_png(path, labels)


def load_input(data, cfg, name):
    """(name, (H, W, 3) uint8 RGB image, (3, H, W) float32 network input): in a loading worker."""
    image = data.load_image(name)
    return name, image, chw(input_array(image, cfg))


class Outputs:
    """Where the labels of an image go."""

    def __init__(self, folder, cfg, test_images):
        self.folder, self.crf, self.save_prob, self.test_images = Path(folder), cfg.crf, cfg.save_prob, test_images

    def label(self, name):
        return self.folder / "Label" / f"{name}.png"

    def crf_label(self, name):
        return self.folder / "CRF_Label" / f"{name}.png"

    def prob(self, name):
        return self.folder / "Prob" / f"{name}.npz"

    def server(self, name):
        return self.folder / COMP6 / f"{name}.png"

    def folders(self):
        """Every folder the step writes to."""
        return sorted({path.parent for path in self.of("x")})

    def crf_paths(self, name):
        """The files the CRF labels go to."""
        return [self.crf_label(name)] + ([self.server(name)] if self.test_images else [])

    def of(self, name):
        """Every file the step writes for an image."""
        paths = [self.label(name)] + ([self.prob(name)] if self.save_prob else [])
        if self.crf:
            return paths + self.crf_paths(name)
        return paths + ([self.server(name)] if self.test_images else [])


class CRFWorkers:
    """Runs ``fn(*args)`` jobs in ``workers`` forked processes (0: at once, in this one), at most
    2 x workers in flight; a job that raises a bad-input error fails its image in ``failures``."""

    def __init__(self, workers, failures):
        self.workers, self.failures, self.pool, self.pending = workers, failures, None, collections.deque()

    def __enter__(self):
        if self.workers > 0:
            # its workers end with this process, however it ends (wsgcn.infra.runtime.worker_init)
            self.pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=worker_init_fn())
        return self

    def submit(self, name, fn, *args):
        if self.pool is None:
            fn(*args)
            return
        self.pending.append((name, self.pool.apply_async(fn, args)))
        self.wait(2 * self.workers)

    def wait(self, limit=0):
        """Collect finished jobs, oldest first, until at most ``limit`` remain."""
        while len(self.pending) > limit:
            name, job = self.pending.popleft()
            with self.failures.guard(name):
                job.get()

    def __exit__(self, error_type, *_):
        if self.pool is not None:
            if error_type is None:
                self.wait()
            self.pool.terminate()
            self.pool.join()


def run(cfg):
    device = resolve_device(cfg.device)
    work = WorkDir(cfg.work_dir)
    weights = Path(cfg.weights) if cfg.weights else work / cfg.weights_name
    out_dir = Path(cfg.out) if cfg.out else work.deeplab(cfg.list)
    data = cfg.data_set(labels=False)
    names = read_image_list(cfg.list)
    input_convention(cfg)  # a wrong --backbone or --image_mean fails here, not per image
    amp, channels_last = cuda_only_flags(cfg, device)
    # a checkpoint that does not fit: exit 2, before any image
    model = build_model(cfg, weights, data.num_classes, device, channels_last)
    # the same answer in every process
    test_images = not (data.has_ground_truth and any(data.gt_path(name).is_file() for name in names))
    outputs = Outputs(out_dir, cfg, test_images)
    prepare_outputs(outputs.folders())
    failures = Failures("DeepLab infer", out_dir / "Label")
    todo = pending_images(names, outputs.of, lambda name: [weights], cfg.overwrite, failures)
    done = 0
    # CRFs run in cfg.num_workers processes while the device computes the next images.
    with CRFWorkers(min(cfg.num_workers, len(todo)) if cfg.crf else 0, failures) as crf_workers:
        for name, image, x in map_images(functools.partial(load_input, data, cfg), todo, cfg.num_workers,
                                         "DeepLab infer", cfg.quiet, failures):
            with failures.guard(name):
                logits = predict_logits(model, x[None].to(device), cfg.flip, amp, channels_last)
                prob = probabilities(logits, image.shape[:2]).cpu().numpy()
                labels = prob.argmax(0).astype(np.uint8)
                if cfg.save_prob:
                    save_npz(outputs.prob(name), prob=prob)
                save_label_png(outputs.label(name), labels)
                if test_images and not cfg.crf:
                    save_label_png(outputs.server(name), labels)
                if cfg.crf:
                    crf_workers.submit(name, write_crf_labels, image, prob, outputs.crf_paths(name))
                done += 1
    print(f"DeepLab infer: {done} images, labels in {out_dir / 'Label'}", flush=True)
    if test_images and distributed.is_main():
        print(f"DeepLab infer: no ground truth for {cfg.list}: labels for the VOC evaluation server in "
              f"{out_dir / COMP6}", flush=True)
    failures.finish()


def main(argv=None):
    return script_main(run, DeepLabConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
