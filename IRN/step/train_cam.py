"""Step 1: train the CAM network on image-level labels (docs/method.md §1)."""
import functools
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from IRN.datasets import ClassificationDataset
from IRN.net.resnet50 import load_backbone_weights
from IRN.net.resnet50_cam import CAMNet
from wsgcn.infra import distributed
from wsgcn.infra.checkpoint import save_checkpoint
from wsgcn.infra.io import prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures
from wsgcn.infra.runtime import resolve_device, worker_init_fn
from wsgcn.infra.screening import check_labelled_image, screen_another_list, screen_training_list
from wsgcn.infra.training import make_optimizer, resume_path, train_epochs, train_loader
from wsgcn.seg.dataset import read_image_list


def validate(model, loader, device):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["img"].to(device))
            total += F.multilabel_soft_margin_loss(logits, batch["label"].to(device), reduction="sum").item()
            count += len(logits)
    model.train()
    return total / max(count, 1)


def output_places(cfg):
    """(folders, files) the step writes: checked before any work (wsgcn.infra.io.prepare_outputs)."""
    work = WorkDir(cfg.work_dir)
    return [work.logs / "train_cam"], [work / cfg.cam_weights_name, resume_path(work / cfg.cam_weights_name)]


def diverged_hint(cfg):
    """The likely cause of a diverged CAM training, in this run's flags."""
    if cfg.cam_optimizer == "sgd" and cfg.backbone_weights == "none":
        return ("the paper's SGD recipe (lr 0.1, frozen batch norm) is made for ImageNet weights: from a random "
                "init train as the demo profile does (--cam_optimizer adamw --cam_frozen_bn False "
                "--cam_learning_rate 1e-3), or give --backbone_weights")
    return f"try a lower --cam_learning_rate (now {cfg.cam_learning_rate:g})"


def run(cfg):
    """Train on the images of the training list that pass screening (wsgcn/infra/screening.py: the
    image's header and its image-level labels; the validation list likewise).  Bad images are
    left out and listed in ``logs/train_cam/failures.txt`` (beside the TensorBoard logs), and the
    step raises StepFailed after saving the weights; more than 5 % bad refuses the step."""
    device = resolve_device(cfg.device)
    work = WorkDir(cfg.work_dir)
    data = cfg.data_set()
    prepare_outputs(*output_places(cfg))
    failures = Failures("train_cam", work.logs / "train_cam")
    check = functools.partial(check_labelled_image, data)
    listed = read_image_list(cfg.train_list)
    names = screen_training_list(listed, check, failures, cfg.num_workers, cfg.quiet, cfg.train_list)
    dataset = ClassificationDataset(data, names, cfg.cam_crop_size, cfg.cam_resize_long, seed=cfg.seed)
    loader = train_loader(dataset, cfg.cam_batch_size, cfg.num_workers, cfg.seed, device)
    val_loader = None
    if cfg.val_list:
        val_names = screen_another_list(read_image_list(cfg.val_list), listed, names, check, failures,
                                        cfg.num_workers, cfg.quiet, cfg.val_list)
        val_set = ClassificationDataset(data, val_names, cfg.cam_crop_size, cfg.cam_resize_long, seed=cfg.seed)
        val_loader = DataLoader(val_set, batch_size=cfg.cam_batch_size, num_workers=cfg.num_workers,
                                worker_init_fn=worker_init_fn())

    torch.manual_seed(cfg.seed)
    model = CAMNet(data.num_object_classes, frozen_bn=cfg.cam_frozen_bn)
    load_backbone_weights(model.resnet50, cfg.backbone_weights)
    model.to(device).train()
    net = distributed.wrap_ddp(model, device)
    backbone, head = model.param_groups()
    head_lr = cfg.cam_head_lr_mult * cfg.cam_learning_rate
    optimizer = make_optimizer(cfg.cam_optimizer, [{"params": backbone, "lr": cfg.cam_learning_rate},
                                                   {"params": head, "lr": head_lr}],
                               cfg.cam_weight_decay)

    def losses_of(batch):
        logits = net(batch["img"].to(device, non_blocking=True))
        return {"total": F.multilabel_soft_margin_loss(logits, batch["label"].to(device))}

    def validation(epoch, step, writer, bar):
        if val_loader is not None:
            val_loss = validate(model, val_loader, device)
            writer.add_scalar("train_cam/val_loss", val_loss, step)
            bar.write(f"epoch {epoch + 1}: validation loss {val_loss:.4f}")

    start = time.time()
    losses = train_epochs("train_cam", model, loader, optimizer, cfg.cam_num_epoches, work.logs / "train_cam",
                          losses_of, cfg.quiet, after_epoch=validation,
                          state_path=resume_path(work / cfg.cam_weights_name), resume=cfg.resume,
                          diverged_hint=diverged_hint(cfg))
    if distributed.is_main():
        save_checkpoint(model, work / cfg.cam_weights_name)
        final = f"final loss {losses['total']:.4f}, " if losses else ""
        print(f"train_cam: {len(loader) * cfg.cam_num_epoches} steps in {time.time() - start:.0f} s, {final}"
              f"weights {work / cfg.cam_weights_name}")
    distributed.barrier()
    failures.finish()
