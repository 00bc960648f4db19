"""Step 5: train IRNet's boundary and displacement branches on the IR labels (docs/method.md §4)."""
import functools
import time

import torch
from torch.utils.data import DataLoader

from IRN.datasets import AffinityDataset, TopLeftCropDataset
from IRN.net.resnet50 import load_backbone_weights
from IRN.net.resnet50_cam import load_cam_net
from IRN.net.resnet50_irn import IRNet, affinity_displacement_loss
from wsgcn.infra import distributed
from wsgcn.infra.checkpoint import save_checkpoint
from wsgcn.infra.io import prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import Failures
from wsgcn.infra.runtime import resolve_device, worker_init_fn
from wsgcn.infra.screening import check_image, check_ir_label, screen_another_list, screen_training_list
from wsgcn.infra.training import make_optimizer, resume_path, train_epochs, train_loader
from wsgcn.seg.affinity import PathIndex
from wsgcn.seg.dataset import read_image_list

TRAIN_RADIUS = 10


def init_backbone(model, weights, work, cfg, num_object_classes):
    """IRNet's frozen backbone: ImageNet/file/none like the CAM network, or ``cam``: the
    trained CAM network's ResNet-50 (for training from scratch, where no ImageNet features exist)."""
    if weights == "cam":
        cam_net = load_cam_net(work / cfg.cam_weights_name, num_classes=num_object_classes)
        model.resnet50.load_state_dict(cam_net.resnet50.state_dict())
    else:
        load_backbone_weights(model.resnet50, weights)


@torch.no_grad()
def mean_displacement(model, data, names, cfg, device):
    """Mean of the displacement field over top-left crops of the images (IRNet's mean shift)."""
    dataset = TopLeftCropDataset(data, names, cfg.irn_crop_size)
    loader = DataLoader(dataset, batch_size=cfg.irn_batch_size, num_workers=cfg.num_workers,
                        drop_last=len(dataset) >= cfg.irn_batch_size, worker_init_fn=worker_init_fn())
    model.eval()
    means = [model(batch["img"].to(device))[1].mean((0, 2, 3)) for batch in loader]
    return torch.stack(means).mean(0)


def output_places(cfg):
    """(folders, files) the step writes: checked before any work (wsgcn.infra.io.prepare_outputs)."""
    work = WorkDir(cfg.work_dir)
    return [work.logs / "train_irn"], [work / cfg.irn_weights_name, resume_path(work / cfg.irn_weights_name)]


def run(cfg):
    """Train on the images of the training list that pass screening (wsgcn/infra/screening.py: the
    image's header and its IR label, present and of the image's size); the infer list's images,
    whose mean displacement is taken after training, are screened too.  Bad images are left out
    and listed in ``logs/train_irn/failures.txt`` (beside the TensorBoard logs), and the step
    raises StepFailed after saving the weights; more than 5 % bad refuses the step."""
    device = resolve_device(cfg.device)
    work = WorkDir(cfg.work_dir)
    data = cfg.data_set()
    if cfg.irn_crop_size % 4:
        raise ValueError(f"--irn_crop_size {cfg.irn_crop_size} must be a multiple of 4 (the pair labels "
                         f"live on the crop reduced x0.25)")
    grid = cfg.irn_crop_size // 4
    if grid <= 2 * (TRAIN_RADIUS - 1):
        raise ValueError(f"--irn_crop_size {cfg.irn_crop_size} is too small for radius-{TRAIN_RADIUS} pairs: "
                         f"use at least {8 * TRAIN_RADIUS}")
    prepare_outputs(*output_places(cfg))  # after the settings' checks: a refused run creates no folder
    path_index = PathIndex(TRAIN_RADIUS, (grid, grid))
    failures = Failures("train_irn", work.logs / "train_irn")
    listed = read_image_list(cfg.train_list)
    # images cam_to_ir_label failed are left out without counting towards the 5 % rule
    names = screen_training_list(listed, functools.partial(check_ir_label, data, work.ir_label), failures,
                                 cfg.num_workers, cfg.quiet, cfg.train_list, upstream=work.ir_label)
    # the mean shift reads the images only; an image left out of training is left out of it too
    mean_names = screen_another_list(read_image_list(cfg.infer_list), listed, names,
                                     functools.partial(check_image, data), failures, cfg.num_workers, cfg.quiet,
                                     cfg.infer_list)
    dataset = AffinityDataset(data, names, work.ir_label, path_index, cfg.irn_crop_size, cfg.irn_rescale, seed=cfg.seed)
    loader = train_loader(dataset, cfg.irn_batch_size, cfg.num_workers, cfg.seed, device)

    torch.manual_seed(cfg.seed)
    model = IRNet()
    init_backbone(model, cfg.irn_backbone_weights, work, cfg, data.num_object_classes)
    model.to(device).train()
    net = distributed.wrap_ddp(model, device)
    edge_params, dp_params = model.param_groups()
    optimizer = make_optimizer("sgd", [{"params": edge_params, "lr": cfg.irn_learning_rate},
                                       {"params": dp_params, "lr": 10 * cfg.irn_learning_rate}],
                               cfg.irn_weight_decay)

    def losses_of(batch):
        edge, disp = net(batch["img"].to(device, non_blocking=True))
        bg_pos, fg_pos, neg = (batch[k].to(device, non_blocking=True).float() for k in ("bg_pos", "fg_pos", "neg"))
        return affinity_displacement_loss(edge, disp, path_index, bg_pos, fg_pos, neg)

    start = time.time()
    losses = train_epochs("train_irn", model, loader, optimizer, cfg.irn_num_epoches, work.logs / "train_irn",
                          losses_of, cfg.quiet, state_path=resume_path(work / cfg.irn_weights_name),
                          resume=cfg.resume, diverged_hint=f"try a lower --irn_learning_rate (now "
                                                           f"{cfg.irn_learning_rate:g})")
    if distributed.is_main():
        model.mean_shift.running_mean.copy_(mean_displacement(model, data, mean_names, cfg, device))
        save_checkpoint(model, work / cfg.irn_weights_name)
        final = f"final loss {losses['total']:.4f}, " if losses else ""
        print(f"train_irn: {len(loader) * cfg.irn_num_epoches} steps in {time.time() - start:.0f} s, {final}"
              f"weights {work / cfg.irn_weights_name}")
    distributed.barrier()
    failures.finish()
