"""Settings of Stage II (docs/method.md §10): DeepLab-v2 trained on the pseudo labels.

Profiles:
- ``paper``: kazuto1011/deeplab-pytorch's VOC recipe, with which WSGCN reports 68.7 % val mIoU:
  the Caffe ResNet-101 initialised from the COCO-trained DeepLab-v1
  (``<work_dir>/sess/deeplabv1_resnet101-coco.pth``), crop 321, batch 5 x 2, lr 2.5e-4,
  20,000 iterations, batch norm frozen;
- ``imagenet``: johnnylu305/deeplab-imagenet-pytorch's recipe (WSGCN: 66.7 %): torchvision's
  ResNet-101 with ImageNet weights, crop 381, batch 26, lr 1e-3 with ASPP multipliers 1 and 2,
  batch norm in training mode, 90,000 iterations, its data set's mean and std;
- ``coco``: for MS COCO 2014, kazuto1011's recipe with the COCO changes ReCAM's author gives
  (batch 10 x 2, lr 2e-4, 100,000 iterations), from torchvision's ImageNet ResNet-101;
- ``demo``: a CPU-sized ResNet-50 initialised from the trained CAM network, scale 1 alone (no
  MSC), 360 iterations at the imagenet recipe's rates, inference averaged with the mirror image.
"""
import argparse
import warnings
from dataclasses import dataclass

from DeepLab.net.deeplab_v2 import BACKBONES, BLOCKS
from wsgcn.infra.config import CommonConfig, field, float_values
from wsgcn.seg.dataset import DataConfig


def msc_extra_scales(text):
    """One ``--msc_scales`` value: a number or a range (:func:`float_values`), or ``none``: the
    network on the image at scale 1 alone.  As in kazuto1011's MSC, training then still returns
    two outputs, scale 1 and the max over the one scale (the same logits), and the loss counts
    both."""
    if text == "none":
        return ()
    try:
        return float_values(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected none (scale 1 alone), a number or a range start:stop:step "
                                         f"(several values: separated by spaces), got {text!r}") from None


@dataclass(frozen=True)
class DeepLabConfig(CommonConfig, DataConfig):
    # The network
    backbone: str = field("caffe", "caffe (kazuto1011's MSRA ResNet, BGR input) or torchvision (johnnylu305's, RGB)",
                          choices=tuple(BACKBONES))
    depth: int = field(101, "ResNet depth: 101 (published) or 50", choices=tuple(BLOCKS))
    init: str = field("", "training init: a .pth (COCO DeepLab-v1, a torchvision ResNet, or a DeepLab checkpoint), "
                          "imagenet (torchvision's weights), cam (the trained CAM network's ResNet-50), none; "
                          "'' = the profile's (paper: <work_dir>/sess/deeplabv1_resnet101-coco.pth)",
                      choices=("", "imagenet", "cam", "none"), or_path=True)
    image_mean: tuple[float, ...] = field((), "input mean in the backbone's convention (caffe: BGR 0..255; "
                                              "torchvision: RGB 0..1); () = the profile's", low=0, high=255)
    image_std: tuple[float, ...] = field((), "input std, as image_mean (caffe: 1); () = the profile's", above=0)
    msc_scales: tuple[float, ...] = field((0.5, 0.75), "MSC: the image's extra scales besides 1 (none: scale 1 alone)",
                                          parse=msc_extra_scales, above=0)
    # Training
    train_list: str = field("Data/VOC12/train_aug.txt", "images to train on")
    label_dir: str = field("", "folder of training label PNGs <name>.png ('' = <work_dir>/GCN4DeepLab/CRF_Label; "
                               "ground_truth = the data set's ground truth, the fully supervised bound)")
    weights_name: str = field("sess/deeplab.pth", "trained weights, relative to work_dir")
    crop_size: int = field(321, "random crop (image padded with the mean, labels with 255)", low=1)
    train_scales: tuple[float, ...] = field((0.5, 0.75, 1.0, 1.25, 1.5), "random rescale factors", above=0)
    batch_size: int = field(5, "images per process per forward pass", low=1)
    iter_size: int = field(2, "forward passes accumulated per SGD step (batch = batch_size x iter_size x "
                              "processes)", low=1)
    iterations: int = field(20000, "SGD steps", low=1)
    lr: float = field(2.5e-4, "learning rate of the backbone's convolutions", above=0)
    aspp_weight_lr_mult: float = field(10.0, "ASPP weights' learning rate / lr", above=0)
    aspp_bias_lr_mult: float = field(20.0, "ASPP biases' learning rate / lr (no weight decay on them)", above=0)
    momentum: float = field(0.9, "SGD momentum", low=0, below=1)
    weight_decay: float = field(5e-4, "weight decay", low=0)
    poly_power: float = field(0.9, "poly learning-rate decay: lr (1 - t/T)^power", low=0)
    lr_step: int = field(10, "the poly schedule updates the rate every lr_step iterations, as kazuto1011's does",
                         low=1)
    frozen_bn: bool = field(True, "batch norm on running statistics during training")
    seed: int = field(0, "seed of the ASPP init, shuffling and augmentation", low=0)
    check_crops: int = field(16, "at the end, log the class shares of this many training crops, labels against "
                                 "predictions, and warn of a collapse (0: no check)", low=0)
    save_every: int = field(1000, "write the resumable training state every N iterations", low=1)
    resume: bool = field(False, "continue from <weights>.resume.pth")
    # Inference
    list: str = field("Data/VOC12/val.txt", "infer.py: images to label")
    weights: str = field("", "infer.py: DeepLab weights ('' = <work_dir>/<weights_name>)")
    out: str = field("", "infer.py: output folder ('' = <work_dir>/DeepLab/<list file stem>)")
    flip: bool = field(False, "infer.py: average the logits of the image and its horizontal flip")
    crf: bool = field(True, "infer.py: also write dense-CRF labels (CRF_Label)")
    save_prob: bool = field(False, "infer.py: also write Prob/<name>.npz, the softmax (C, H, W) float32")
    # Both
    amp: bool = field(False, "CUDA: bf16 autocast")
    channels_last: bool = field(False, "CUDA: channels-last memory format")


PROFILES = {
    "paper": {},
    "imagenet": dict(
        backbone="torchvision", init="imagenet", crop_size=381, batch_size=26, iter_size=1, lr=1e-3,
        aspp_weight_lr_mult=1.0, aspp_bias_lr_mult=2.0, frozen_bn=False, iterations=90000,
        image_mean=(0.45694514, 0.43669609, 0.40363202), image_std=(0.27473737, 0.27164029, 0.28467983),
    ),
    # MS COCO 2014 (--dataset coco14, 81 classes): kazuto1011's recipe with the changes ReCAM's
    # author gives for COCO (batch 10, 100,000 iterations, lr 2e-4) from ImageNet weights, not
    # the COCO-trained DeepLab-v1 (trained on COCO's masks); torchvision's ResNet-101 holds them.
    "coco": dict(backbone="torchvision", init="imagenet", batch_size=10, iterations=100000, lr=2e-4),
    # CPU-sized: the demo's ResNet-50 CAM network as the backbone (no ImageNet weights here),
    # small crops, 1,440 crops seen; its batch norm keeps the CAM network's statistics.  The
    # imagenet recipe's rates (lr 1e-3, ASPP x1/x2): at kazuto1011's (2.5e-4, x10/x20) the network
    # fits the ground truth too slowly for 240 steps, at 1e-3 with x10/x20 the pseudo labels' rare
    # classes die.  360 iterations, not 240: at 240 it is still learning the rarest class (person,
    # 1-3 % of the pixels; trained on the truth, 31.64 -> 64.37 val IoU).  No MSC: at crop 96 its
    # 0.5 scale gives a 6 x 6 output (docs/demo.md).  Inference averages the mirror image's logits
    # (--flip): on 150 px images a class of 1-3 % of the pixels is a few stride-8 cells, and one
    # view's noise there decides it (val mIoU +0.1 to +3.0 without the CRF in five runs, docs/demo.md).
    "demo": dict(
        backbone="torchvision", depth=50, init="cam", msc_scales=(), crop_size=96, batch_size=4, iter_size=1,
        lr=1e-3, aspp_weight_lr_mult=1.0, aspp_bias_lr_mult=2.0, iterations=360, num_workers=1, save_every=50,
        flip=True,
    ),
}


def cuda_only_flags(cfg, device):
    """(amp, channels_last) as they apply on ``device``: CUDA only, a warning otherwise."""
    if device.type != "cuda":
        for flag in ("amp", "channels_last"):
            if getattr(cfg, flag):
                warnings.warn(f"--{flag} True applies on CUDA only; ignored on {device}")
        return False, False
    return cfg.amp, cfg.channels_last
