"""Stage II (docs/method.md §10): train DeepLab-v2 on the pseudo labels.

    python DeepLab/train.py --work_dir Data --voc12_root Data/VOC12/VOC2012 \\
        --train_list Data/VOC12/train_aug.txt --label_dir Data/GCN4DeepLab/CRF_Label

kazuto1011/deeplab-pytorch's ``main.py train`` (``--profile paper``: the Caffe ResNet-101 from
the COCO-trained DeepLab-v1 at ``<work_dir>/sess/deeplabv1_resnet101-coco.pth``) or
johnnylu305/deeplab-imagenet-pytorch's (``--profile imagenet``).  Each of ``iterations`` SGD
steps accumulates ``iter_size`` batches of ``batch_size`` random crops (per process); the loss
is the sum over the four MSC outputs (scales 1, 0.5, 0.75 and their pixelwise max) of the
cross-entropy against the labels resized (nearest) to each output, 255 ignored.  The learning
rate follows the poly schedule, updated every ``lr_step`` iterations.  ``--label_dir``: any
folder of label PNGs ``<name>.png`` (0..20, 255 = ignore).

Writes ``<work_dir>/<weights_name>`` (``sess/deeplab.pth``, the model's state dict), the
resumable state ``sess/deeplab.resume.pth`` every ``save_every`` iterations (``--resume True``
continues from it) and TensorBoard scalars under ``<work_dir>/logs/deeplab``.  Under torchrun
each process trains on its share of every batch (DistributedDataParallel).
"""
import functools
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from DeepLab.config import PROFILES, DeepLabConfig, cuda_only_flags
from DeepLab.datasets import GROUND_TRUTH, TrainDataset, check_label, input_convention, label_path, resize_labels
from DeepLab.net.deeplab_v2 import deeplab_v2, freeze_batch_norm, param_groups
from DeepLab.net.weights import check_init, initialise
from IRN.net.resnet50_cam import load_cam_net  # --init cam: the one piece of Stage I that Stage II reads
from wsgcn.infra import distributed
from wsgcn.infra.checkpoint import save_checkpoint
from wsgcn.infra.io import load_label_png, prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures
from wsgcn.infra.runtime import resolve_device
from wsgcn.infra.screening import image_size_of, screen_training_list
from wsgcn.infra.scripts import script_main
from wsgcn.infra.training import load_training_state, poly_schedule, resume_path, train_loader, train_steps
from wsgcn.seg.dataset import IGNORE_INDEX, read_image_list
from wsgcn.seg.metrics import confusion_matrix

COCO_INIT = "sess/deeplabv1_resnet101-coco.pth"  # the paper profile's init, relative to work_dir
SHOWN_SHARE = 0.01  # the class check's log line names the classes with at least this share


def msc_loss(outputs, labels):
    """Σ over the MSC outputs of the cross-entropy against the labels resized (PIL's nearest) to
    each output's size, averaged over the labelled pixels (255 ignored).  An output with no
    labelled pixel adds 0 (the plain mean would be 0/0)."""
    total = 0.0
    for logits in outputs:
        target = resize_labels(labels, logits.shape[-2:])
        count = (target != IGNORE_INDEX).sum().clamp(min=1)
        total = total + F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum") / count
    return total


def resolve_init(cfg, work):
    """``--init`` with '' resolved: the COCO DeepLab-v1 under the work dir (paper profile)."""
    if cfg.init:
        return cfg.init
    path = work / COCO_INIT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the COCO-trained DeepLab-v1 that the paper profile starts from is missing: "
                                f"make it from the DeepLab authors' init.caffemodel with python "
                                f"DeepLab/convert_caffemodel.py --caffemodel init.caffemodel --out {path} (README, "
                                f"Stage II), or pass --init PATH or none")
    return str(path)


def check_config(cfg):
    """What can be wrong with the flags alone, before any file is read, beyond each field's own
    range (checked when parsed, DeepLab/config.py): the backbone and its mean and std, and an
    ``--init`` the backbone cannot take."""
    input_convention(cfg)
    check_init(cfg.init, cfg.backbone)


def check_training_pair(data, label_dir, name):
    """One image's training input: the image's header, and its label map of the same size holding
    0..C-1 or 255 only (decoded: label PNGs are cheap); returns ``name``.  ``label_dir``: a folder,
    or None for the data set's ground truth."""
    size = image_size_of(data.image_path(name))
    path = label_path(data, label_dir, name)
    check_label(load_label_png(path), path, size, data.num_classes)
    return name


def training_names(cfg, data, label_dir, failures):
    """The training list less its bad images (wsgcn/infra/screening.py, :func:`check_training_pair`),
    which are named and added to ``failures`` (``logs/deeplab/failures.txt``, beside the
    TensorBoard logs); more than 5 % bad, or no label folder, is an error."""
    if label_dir is not None and not label_dir.is_dir():
        raise FileNotFoundError(f"label folder not found: {label_dir} (--label_dir; '' = "
                                f"<work_dir>/GCN4DeepLab/CRF_Label, written by GCN/CRF.py)")
    check = functools.partial(check_training_pair, data, label_dir)
    return screen_training_list(read_image_list(cfg.train_list), check, failures, cfg.num_workers, cfg.quiet,
                                cfg.train_list, upstream=label_dir)


def build_model(cfg, work, data, device):
    """DeepLab-v2 for the classes of ``data`` with its seeded ASPP init, initialised from
    ``--init`` and moved to ``device``."""
    init = resolve_init(cfg, work)
    torch.manual_seed(cfg.seed)
    model = deeplab_v2(cfg.backbone, data.num_classes, cfg.depth, cfg.msc_scales)
    if init == "cam":
        cam_weights = work / WorkDir.CAM_WEIGHTS
        cam_net = load_cam_net(cam_weights, num_classes=data.num_object_classes)
        initialise(model, init, cfg.backbone, cfg.depth, cam_net.resnet50.state_dict(), cam_weights)
    else:
        initialise(model, init, cfg.backbone, cfg.depth)
    return model.to(device)


def run(cfg):
    device = resolve_device(cfg.device)
    amp, channels_last = cuda_only_flags(cfg, device)
    check_config(cfg)
    work = WorkDir(cfg.work_dir)
    data = cfg.data_set()
    # the label maps: GCN + CRF's by default, a folder, or (None) the data set's ground truth
    label_dir = {"": work.crf_label, GROUND_TRUTH: None}.get(cfg.label_dir, Path(cfg.label_dir))
    weights, state_path = work / cfg.weights_name, resume_path(work / cfg.weights_name)
    prepare_outputs([work.logs / "deeplab"], [weights, state_path])
    failures = Failures("deeplab train", work.logs / "deeplab")
    dataset = TrainDataset(data, training_names(cfg, data, label_dir, failures), label_dir, cfg, seed=cfg.seed)
    loader = train_loader(dataset, cfg.batch_size, cfg.num_workers, cfg.seed, device)

    model = build_model(cfg, work, data, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(param_groups(model, cfg.lr, cfg.weight_decay, cfg.aspp_weight_lr_mult,
                                             cfg.aspp_bias_lr_mult), lr=cfg.lr, momentum=cfg.momentum)
    scheduler = poly_schedule(optimizer, cfg.iterations, cfg.poly_power, cfg.lr_step)
    model.train()
    if cfg.frozen_bn:
        freeze_batch_norm(model)

    run_key = {"backbone": cfg.backbone, "depth": cfg.depth, "iterations": cfg.iterations, "images": len(dataset),
               "batch_size": cfg.batch_size, "iter_size": cfg.iter_size, "processes": distributed.world_size(),
               "seed": cfg.seed}
    start = 0
    if cfg.resume and state_path.is_file():
        _, start = load_training_state(state_path, model, optimizer, scheduler, cfg.iterations, run=run_key)
        print(f"deeplab train: resuming after iteration {start} of {cfg.iterations} from {state_path}", flush=True)

    net = distributed.wrap_ddp(model, device)

    def losses_of(batch):
        images = batch["img"].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = batch["label"].to(device, non_blocking=True)
        return {"loss": msc_loss(net(images), labels)}

    began = time.time()
    losses = train_steps("deeplab train", model, loader, optimizer, scheduler, cfg.iterations, losses_of,
                         work.logs / "deeplab", start=start, net=net, iter_size=cfg.iter_size, amp=amp,
                         objective="loss", prefix="deeplab",
                         lr_tags=[f"lr_group{i}" for i in range(len(optimizer.param_groups))],
                         save_at=range(cfg.save_every, cfg.iterations, cfg.save_every), state_path=state_path,
                         run=run_key, quiet=cfg.quiet, unit="it", diverged_hint=diverged_hint(cfg))
    if distributed.is_main():
        save_checkpoint(model, weights)
        final = f"final loss {losses['loss']:.4f}, " if losses else ""
        print(f"deeplab train: {cfg.iterations - start} iterations in {time.time() - began:.0f} s, {final}"
              f"weights {weights}", flush=True)
        if cfg.check_crops:
            check_classes(model, dataset, data.classes, device, cfg.check_crops)
    distributed.barrier()
    failures.finish()


def class_shares(model, dataset, device, count, batch_size=4):
    """(labels, predictions): (C,) float64 shares of each class among the labelled pixels of the
    first ``count`` crops of ``dataset`` (at its current epoch), the labels resized to the
    network's output as the loss resizes them, the predictions the argmax of the MSC's
    evaluation output (the max over the scales).  Each module's mode is restored after (frozen
    batch norm stays in evaluation mode)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    conf = 0
    with torch.no_grad():
        for begin in range(0, min(count, len(dataset)), batch_size):
            items = [dataset[i] for i in range(begin, min(begin + batch_size, count, len(dataset)))]
            logits = model(torch.stack([torch.as_tensor(item["img"]) for item in items]).to(device))
            labels = resize_labels(torch.stack([torch.as_tensor(item["label"]) for item in items]), logits.shape[-2:])
            conf = conf + confusion_matrix(labels.numpy(), logits.argmax(1).cpu().numpy(), logits.shape[1])
    for module, mode in modes:
        module.training = mode
    total = max(int(conf.sum()), 1)
    return conf.sum(1) / total, conf.sum(0) / total  # rows: labels, columns: predictions


def collapse_warnings(labels, predictions, classes, crops):
    """The signs of a collapsed training in :func:`class_shares`' shares: a class predicted on more
    than twice its share of the labels (and on at least 5 % of the pixels more), and the object
    classes together predicted on less than half their share (background everywhere)."""
    found = []
    for c, (label, prediction) in enumerate(zip(labels, predictions)):
        if prediction > 2 * label and prediction - label >= 0.05:
            found.append(f"{classes[c]} takes {100 * prediction:.1f} % of the predictions on {crops} training crops "
                         f"against {100 * label:.1f} % of their labels")
    objects_labelled, objects_predicted = 1 - labels[0], 1 - predictions[0]
    if objects_labelled >= 0.05 and objects_predicted < objects_labelled / 2:
        found.append(f"the object classes take {100 * objects_predicted:.1f} % of the predictions on {crops} "
                     f"training crops against {100 * objects_labelled:.1f} % of their labels")
    return [f"deeplab train: {what}: the training may have collapsed (docs/usage.md)" for what in found]


def check_classes(model, dataset, classes, device, count):
    """Log the class shares of :func:`class_shares` on ``count`` training crops and warn of a
    collapse (:func:`collapse_warnings`)."""
    crops = min(count, len(dataset))
    labels, predictions = class_shares(model, dataset, device, crops)
    shown = [c for c in np.argsort(-labels, kind="stable") if max(labels[c], predictions[c]) >= SHOWN_SHARE]
    print(f"deeplab train: class shares (%) of the labelled pixels of {crops} training crops, labels / predictions: "
          + ", ".join(f"{classes[c]} {100 * labels[c]:.1f} / {100 * predictions[c]:.1f}" for c in shown), flush=True)
    for message in collapse_warnings(labels, predictions, classes, crops):
        warnings.warn(message)


def diverged_hint(cfg):
    """The likely cause of a diverged DeepLab training, in this run's flags."""
    hint = f"try a lower --lr (now {cfg.lr:g})"
    if cfg.init == "none":
        hint += "; the SGD recipe is made for pretrained weights and --init none starts from random ones"
    return hint


def main(argv=None):
    return script_main(run, DeepLabConfig, PROFILES, argv, __doc__)


if __name__ == "__main__":
    main()
