"""DeepLab-v2 (Chen et al., TPAMI 2018): a dilated ResNet at output stride 8, an ASPP head of four
summed 3x3 convolutions, and the multi-scale (MSC) wrapper -- as the two Stage II code bases that
WSGCN used define it, with their module names, so that their checkpoints load as they are.
``BACKBONES`` registers the two networks, each with everything that differs between them:

- ``caffe`` (kazuto1011/deeplab-pytorch, the COCO-initialised model): the MSRA ResNet
  converted from Caffe.  The stride sits in each block's first 1x1 convolution, the stem's
  max-pool rounds up (``ceil_mode=True``), and the last two stages run at stride 1 with every
  block dilated 2 and 4.  Keys ``base.layer1.conv1.conv.weight``, ..., ``base.aspp.c0.weight``.
- ``torchvision`` (johnnylu305/deeplab-imagenet-pytorch, the ImageNet-initialised
  model): torchvision's ResNet with layer3/layer4 at stride 1, their first blocks undilated and
  the later ones dilated 2 and 4.  Keys ``base.model2.conv1.weight``, ...,
  ``base.model2.aspp.c0.weight``.

``depth`` 101 is the published network; 50 gives the CPU-sized demo network.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
ATROUS_RATES = (6, 12, 18, 24)


class ASPP(nn.Module):
    """Four 3x3 convolutions with dilations ``rates`` on the same input, summed: the logits."""

    def __init__(self, in_channels, num_classes, rates=ATROUS_RATES):
        super().__init__()
        for i, rate in enumerate(rates):
            conv = nn.Conv2d(in_channels, num_classes, 3, padding=rate, dilation=rate, bias=True)
            nn.init.normal_(conv.weight, mean=0, std=0.01)
            nn.init.zeros_(conv.bias)
            self.add_module(f"c{i}", conv)

    def forward(self, x):
        return sum(branch(x) for branch in self.children())


# ----------------------------------------------------------------------------- the Caffe ResNet

class ConvBN(nn.Sequential):
    """conv (no bias) -> batch norm (eps 1e-5) [-> ReLU]: kazuto1011's ``_ConvBnReLU``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=1 - 0.999)
        if relu:
            self.relu = nn.ReLU()


class CaffeBottleneck(nn.Module):
    """1x1 reduce (carrying the stride) -> 3x3 dilated -> 1x1 increase, plus the shortcut."""

    def __init__(self, in_channels, out_channels, stride, dilation, downsample):
        super().__init__()
        mid = out_channels // 4
        self.reduce = ConvBN(in_channels, mid, 1, stride)
        self.conv3x3 = ConvBN(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBN(mid, out_channels, 1, relu=False)
        self.shortcut = ConvBN(in_channels, out_channels, 1, stride, relu=False) if downsample else nn.Identity()

    def forward(self, x):
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


def caffe_stage(num_blocks, in_channels, out_channels, stride, dilation):
    """A stage ``block1``..``blockN``: the first one downsamples and changes the width."""
    return nn.Sequential(OrderedDict(
        (f"block{i + 1}", CaffeBottleneck(in_channels if i == 0 else out_channels, out_channels,
                                          stride if i == 0 else 1, dilation, downsample=i == 0))
        for i in range(num_blocks)))


def caffe_deeplab_v2(num_classes=21, depth=101):
    """The Caffe-converted DeepLab-v2 without its MSC wrapper: (B, 3, H, W) BGR - mean ->
    (B, num_classes, ceil(H/8), ceil(W/8)) logits."""
    blocks = BLOCKS[depth]
    stem = nn.Sequential(OrderedDict(conv1=ConvBN(3, 64, 7, 2, 3), pool=nn.MaxPool2d(3, 2, 1, ceil_mode=True)))
    return nn.Sequential(OrderedDict(
        layer1=stem,
        layer2=caffe_stage(blocks[0], 64, 256, 1, 1),
        layer3=caffe_stage(blocks[1], 256, 512, 2, 1),
        layer4=caffe_stage(blocks[2], 512, 1024, 1, 2),
        layer5=caffe_stage(blocks[3], 1024, 2048, 1, 4),
        aspp=ASPP(2048, num_classes),
    ))


# ----------------------------------------------------------------------------- the torchvision ResNet

class TorchvisionDeepLabV2(nn.Module):
    """torchvision's ResNet with layer3/layer4 at stride 1 (dilation 2/4 after their first
    block), avgpool/fc replaced by the ASPP head, all in ``model2`` as johnnylu305's code has it."""

    def __init__(self, num_classes=21, depth=101):
        super().__init__()
        resnet = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        for stage, dilation in ((resnet.layer3, 2), (resnet.layer4, 4)):
            stage[0].conv2.stride = (1, 1)
            stage[0].downsample[0].stride = (1, 1)
            for block in stage[1:]:
                block.conv2.padding = block.conv2.dilation = (dilation, dilation)
        layers = [(name, module) for name, module in resnet.named_children() if name not in ("avgpool", "fc")]
        self.model2 = nn.Sequential(OrderedDict(layers + [("aspp", ASPP(2048, num_classes))]))

    def forward(self, x):
        return self.model2(x)


# ----------------------------------------------------------------------------- multi-scale inputs

class MSC(nn.Module):
    """Multi-scale inputs: the network on the image and on its copies resized by ``scales``
    (bilinear, ``align_corners=False``).  Training returns [logits at 1, at each scale, their
    pixelwise max], each at its own size; evaluation returns the max alone, at the scale-1 size
    (the other scales' logits resized bilinearly to it)."""

    def __init__(self, base, scales=(0.5, 0.75)):
        super().__init__()
        self.base, self.scales = base, tuple(scales)

    def forward(self, x):
        logits = self.base(x)
        pyramid = [self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
                   for s in self.scales]
        resized = [F.interpolate(p, size=logits.shape[2:], mode="bilinear", align_corners=False) for p in pyramid]
        logits_max = torch.stack([logits] + resized).amax(0)
        return [logits] + pyramid + [logits_max] if self.training else logits_max


# ----------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class InputConvention:
    """What a backbone's input pixels are: ``(RGB / 255 * pixel_scale)`` in ``channel_order``,
    minus ``mean``, divided by ``std`` (both in that order and scale)."""
    channel_order: str  # "BGR" or "RGB"
    pixel_scale: float  # 255: pixel values 0..255; 1: 0..1
    mean: tuple
    std: tuple


@dataclass(frozen=True)
class Backbone:
    """One DeepLab-v2 network of the registry.

    build: (num_classes, depth) -> the network without MSC, (B, 3, H, W) -> (B, num_classes,
        ceil(H/8), ceil(W/8)) logits.
    trunk: the name of the module (within that network) that holds the ResNet and the ``aspp``
        head under the keys of a backbone-only weights file: kazuto1011's DeepLab-v1
        (``layer1.conv1.conv.weight``) for caffe, a torchvision ResNet (``conv1.weight``) for
        torchvision.  A whole DeepLab-v2 checkpoint holds ``base.<trunk>.<those keys>``.
    input: its input convention, with the code base's default mean and std.
    torchvision_resnet: whether torchvision ResNet weights (``--init imagenet`` or ``cam``) fit it.
    """
    build: Callable[[int, int], nn.Module]
    trunk: str
    input: InputConvention
    torchvision_resnet: bool

    def trunk_of(self, model):
        """The trunk module of a :func:`deeplab_v2` network built with this backbone."""
        return model.base.get_submodule(self.trunk)


BACKBONES = {
    "caffe": Backbone(caffe_deeplab_v2, trunk="",
                      input=InputConvention("BGR", 255.0, (104.008, 116.669, 122.675), (1.0, 1.0, 1.0)),
                      torchvision_resnet=False),
    "torchvision": Backbone(TorchvisionDeepLabV2, trunk="model2",
                            input=InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                            torchvision_resnet=True),
}


def backbone_named(name):
    """The :data:`BACKBONES` entry ``name``; another name is a ValueError naming the choices."""
    if name not in BACKBONES:
        raise ValueError(f"--backbone {name!r}: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def deeplab_v2(backbone="caffe", num_classes=21, depth=101, scales=(0.5, 0.75)):
    """DeepLab-v2 on the :data:`BACKBONES` entry ``backbone``, with the MSC wrapper, randomly
    initialised (see ``DeepLab.net.weights``)."""
    return MSC(backbone_named(backbone).build(num_classes, depth), scales)


def aspp_of(model, backbone):
    """The ASPP head of a :func:`deeplab_v2` network built on ``backbone``."""
    return backbone_named(backbone).trunk_of(model).aspp


def freeze_batch_norm(model):
    """Batch norm in evaluation mode (running statistics), as kazuto1011's recipe trains it
    (``--frozen_bn True``; johnnylu305's ImageNet recipe keeps it in training mode).  Call after
    every ``model.train()``."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    return model


def param_groups(model, lr, weight_decay, aspp_weight_mult=10, aspp_bias_mult=20):
    """SGD groups as both recipes build them (by module name): the convolutions of the backbone's
    ``layer*`` stages at ``lr``, the ASPP weights at ``aspp_weight_mult`` x lr, its biases at
    ``aspp_bias_mult`` x lr without weight decay.  Nothing else trains: not the batch norms, and
    not torchvision's stem convolution, which lies outside any ``layer`` (kazuto1011's stem is
    its ``layer1``).  The untrained parameters get ``requires_grad=False``."""
    groups = [[], [], []]
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and ".aspp." in f".{name}.":
            groups[1].append(module.weight)
            groups[2].append(module.bias)
        elif isinstance(module, nn.Conv2d) and "layer" in name:
            groups[0].extend(module.parameters())
    trained = set(map(id, groups[0] + groups[1] + groups[2]))
    for p in model.parameters():
        p.requires_grad_(id(p) in trained)
    return [
        {"params": groups[0], "lr": lr, "weight_decay": weight_decay},
        {"params": groups[1], "lr": aspp_weight_mult * lr, "weight_decay": weight_decay},
        {"params": groups[2], "lr": aspp_bias_mult * lr, "weight_decay": 0.0},
    ]
