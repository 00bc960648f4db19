"""The CAM network (docs/method.md §1-2): ResNet-50 (output stride 16) + global average pooling + a
bias-free 1x1 conv to the 20 object classes."""
from torch import nn

from IRN.net.resnet50 import resnet50, stem
from wsgcn.infra.checkpoint import load_checkpoint

# Names under which IRNet's resnet50_cam.Net registers the same modules.
CAM_ALIASES = (
    (r"^backbone\.(\d)\.", lambda m: f"stage{int(m.group(1)) + 1}."),
    (r"^newly_added\.0\.", "classifier."),
    (r"^stage1\.0\.", "resnet50.conv1."),
    (r"^stage1\.1\.", "resnet50.bn1."),
    (r"^stage1\.4\.", "resnet50.layer1."),
    (r"^stage2\.0\.", "resnet50.layer2."),
    (r"^stage3\.0\.", "resnet50.layer3."),
    (r"^stage4\.0\.", "resnet50.layer4."),
)


class CAMNet(nn.Module):
    """Image-level classifier whose 1x1 head, applied before pooling, gives the CAMs.

    frozen_bn: batch norm uses its running statistics even in training (the paper's recipe with
    ImageNet weights); off, it trains on batch statistics (training from scratch).
    """

    def __init__(self, num_classes=20, frozen_bn=True):
        super().__init__()
        self.resnet50 = resnet50()
        self.classifier = nn.Conv2d(2048, num_classes, 1, bias=False)
        self.frozen_bn = frozen_bn
        # conv1/bn1 and stages 1-2 are never trained (their output is detached); saying so lets
        # DistributedDataParallel expect gradients for exactly the parameters that get one.
        r = self.resnet50
        for p in [*r.conv1.parameters(), *r.bn1.parameters(), *r.layer1.parameters(), *r.layer2.parameters()]:
            p.requires_grad = False

    def features(self, x):
        """(B, 3, H, W) normalised images -> (B, 2048, ceil(H/16), ceil(W/16))."""
        r = self.resnet50
        x = r.layer2(r.layer1(stem(r, x))).detach()
        return r.layer4(r.layer3(x))

    def forward(self, x):
        """(B, 3, H, W) -> (B, 20) class logits."""
        pooled = self.features(x).mean((2, 3), keepdim=True)
        return self.classifier(pooled).flatten(1)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def param_groups(self):
        """(backbone parameters that train, head parameters): the head trains at 10x the rate."""
        r = self.resnet50
        backbone = [p for p in [*r.layer3.parameters(), *r.layer4.parameters()] if p.requires_grad]
        return backbone, list(self.classifier.parameters())


def load_cam_net(path, **kwargs):
    """A CAMNet with weights from ``path`` (this project's or IRNet's ``res50_cam.pth``)."""
    return load_checkpoint(CAMNet(**kwargs), path, aliases=CAM_ALIASES)
