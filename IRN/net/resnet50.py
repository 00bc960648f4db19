"""ResNet-50 backbone of IRNet: torchvision's architecture with the last stage at stride 1.

Output stride 16 (conv1 2, maxpool 2, layer2 2, layer3 2, layer4 1), no dilation, no pooling
or fc head.  Weights are kept apart from the architecture: :func:`load_backbone_weights`
loads ImageNet weights into a built network, or nothing for training from scratch.
"""
import torchvision
from torch import nn

from wsgcn.infra.checkpoint import imagenet_state_dict, load_strict, read_state_dict


def resnet50():
    """torchvision ResNet-50 with layer4 at stride 1 and without avgpool/fc (no parameters there)."""
    net = torchvision.models.resnet50(weights=None)
    net.layer4[0].conv2.stride = (1, 1)
    net.layer4[0].downsample[0].stride = (1, 1)
    net.avgpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def stem(net, x):
    """conv1, bn1, relu, maxpool: (B, 3, H, W) -> (B, 64, H/4, W/4)."""
    return net.maxpool(net.relu(net.bn1(net.conv1(x))))


def load_backbone_weights(net, weights):
    """Load ImageNet weights into a :func:`resnet50` network.

    weights: ``"imagenet"`` (torchvision's ResNet-50 ImageNet weights, downloaded once into
    torch's cache), a path to a ResNet-50 state dict, or ``"none"`` (keep the random
    initialisation: training from scratch).
    """
    if weights in (None, "none"):
        return net
    if weights == "imagenet":
        state = imagenet_state_dict(50, "pass --backbone_weights PATH to a local resnet50 .pth, or none to train "
                                        "from scratch")
    else:
        state = read_state_dict(weights, "ResNet-50 state dict (--backbone_weights)")
    return load_strict(net, {k: v for k, v in state.items() if not k.startswith("fc.")}, weights)
