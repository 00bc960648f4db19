"""IRNet (docs/method.md §4-5): a frozen ResNet-50 with a class-boundary branch and a displacement branch.

Module names and layouts follow IRNet's ``net/resnet50_irn.py`` so that its published
``res50_irn.pth`` (and WSGCN's) load as they are.
"""
import torch
from torch import nn

from IRN.net.resnet50 import resnet50, stem
from wsgcn.infra.checkpoint import load_checkpoint

IRN_ALIASES = (
    (r"^backbone\.(\d)\.", lambda m: f"stage{int(m.group(1)) + 1}."),
    (r"^edge_layers\.(\d)\.", lambda m: f"fc_edge{int(m.group(1)) + 1}."),
    (r"^dp_layers\.(\d)\.", lambda m: f"fc_dp{int(m.group(1)) + 1}."),
    (r"^stage1\.0\.", "resnet50.conv1."),
    (r"^stage1\.1\.", "resnet50.bn1."),
    (r"^stage2\.0\.", "resnet50.layer1."),
    (r"^stage3\.0\.", "resnet50.layer2."),
    (r"^stage4\.0\.", "resnet50.layer3."),
    (r"^stage5\.0\.", "resnet50.layer4."),
)
# Buffers of IRNet's training wrapper (AffinityDisplacementLoss), meaningless at inference.
IRN_TRAINING_ONLY = ("path_indices", "disp_target")


def _branch(in_ch, out_ch, groups, upsample=1):
    layers = [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.GroupNorm(groups, out_ch)]
    if upsample > 1:
        layers.append(nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MeanShift(nn.Module):
    """Subtracts the mean displacement of the training images, at inference only."""

    def __init__(self, num_features=2):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        return x if self.training else x - self.running_mean.view(1, -1, 1, 1)


class IRNet(nn.Module):
    """Boundary and displacement branches on the five stages of a frozen ResNet-50."""

    def __init__(self):
        super().__init__()
        self.resnet50 = resnet50()
        for p in self.resnet50.parameters():
            p.requires_grad = False
        self.mean_shift = MeanShift(2)
        # Boundary branch: every stage to 32 channels on the stride-4 grid, then one logit.
        self.fc_edge1 = _branch(64, 32, 4)
        self.fc_edge2 = _branch(256, 32, 4)
        self.fc_edge3 = _branch(512, 32, 4, upsample=2)
        self.fc_edge4 = _branch(1024, 32, 4, upsample=4)
        self.fc_edge5 = _branch(2048, 32, 4, upsample=4)
        self.fc_edge6 = nn.Conv2d(160, 1, 1, bias=True)
        # Displacement branch: the deep three fused at stride 8, then all at stride 4.
        self.fc_dp1 = _branch(64, 64, 8)
        self.fc_dp2 = _branch(256, 128, 16)
        self.fc_dp3 = _branch(512, 256, 16)
        self.fc_dp4 = _branch(1024, 256, 16, upsample=2)
        self.fc_dp5 = _branch(2048, 256, 16, upsample=2)
        self.fc_dp6 = _branch(768, 256, 16, upsample=2)
        self.fc_dp7 = nn.Sequential(nn.Conv2d(448, 256, 1, bias=False), nn.GroupNorm(16, 256), nn.ReLU(inplace=True),
                                    nn.Conv2d(256, 2, 1, bias=False), self.mean_shift)

    def backbone(self, x):
        """The five stage outputs, without gradient: strides 4, 4, 8, 16, 16."""
        r = self.resnet50
        with torch.no_grad():
            x1 = stem(r, x)
            x2 = r.layer1(x1)
            x3 = r.layer2(x2)
            x4 = r.layer3(x3)
            x5 = r.layer4(x4)
        return x1, x2, x3, x4, x5

    def forward(self, x, with_features=False):
        """(B, 3, H, W) -> boundary logits (B, 1, H/4, W/4), displacements (B, 2, H/4, W/4)
        and, with ``with_features``, the GCN's node features (B, 160, H/4, W/4): the concatenated
        boundary channels each multiplied by its weight in the final boundary conv."""
        x1, x2, x3, x4, x5 = self.backbone(x)
        h, w = x2.shape[2:]
        edge = torch.cat([self.fc_edge1(x1), self.fc_edge2(x2), self.fc_edge3(x3)[..., :h, :w],
                          self.fc_edge4(x4)[..., :h, :w], self.fc_edge5(x5)[..., :h, :w]], dim=1)
        edge_out = self.fc_edge6(edge)

        dp3 = self.fc_dp3(x3)
        h3, w3 = dp3.shape[2:]
        dp_deep = self.fc_dp6(torch.cat([dp3, self.fc_dp4(x4)[..., :h3, :w3], self.fc_dp5(x5)[..., :h3, :w3]], dim=1))
        dp_out = self.fc_dp7(torch.cat([self.fc_dp1(x1), self.fc_dp2(x2), dp_deep[..., :h, :w]], dim=1))
        if with_features:
            return edge_out, dp_out, edge * self.fc_edge6.weight
        return edge_out, dp_out

    def train(self, mode=True):
        super().train(mode)
        self.resnet50.eval()  # frozen: running statistics always
        return self

    def param_groups(self):
        """(boundary-branch parameters, displacement-branch parameters); the latter train at 10x."""
        edge = [p for i in range(1, 7) for p in getattr(self, f"fc_edge{i}").parameters()]
        dp = [p for i in range(1, 8) for p in getattr(self, f"fc_dp{i}").parameters()]
        return edge, dp


def load_irnet(path):
    """An IRNet with weights from ``path`` (this project's, IRNet's or WSGCN's ``res50_irn.pth``)."""
    return load_checkpoint(IRNet(), path, aliases=IRN_ALIASES, ignore_prefixes=IRN_TRAINING_ONLY)


def pair_displacement(disp, path_index):
    """(B, 2, H, W) displacement field -> (B, 2, n, S): d_src - d_dst for each offset and source."""
    h, w = disp.shape[2:]
    r = path_index.radius_floor
    ch, cw = h - r, w - 2 * r
    src = disp[:, :, :ch, r:r + cw]
    dst = torch.stack([disp[:, :, dy:dy + ch, r + dx:r + dx + cw] for dy, dx in path_index.offsets.tolist()], 2)
    return (src.unsqueeze(2) - dst).flatten(3)


def affinity_displacement_loss(edge_logits, disp, path_index, bg_pos, fg_pos, neg):
    """IRNet's training loss (docs/method.md §4).

    edge_logits (B, 1, H, W), disp (B, 2, H, W); bg_pos, fg_pos, neg (B, n, S) pair labels.
    Returns a dict of the four terms and ``total`` = (pos + neg)/2 + (dp_fg + dp_bg)/2.
    """
    aff = path_index.affinity(torch.sigmoid(edge_logits))
    pos_term = -torch.log(aff + 1e-5)
    neg_term = -torch.log(1.0 + 1e-5 - aff)
    bg_pos_loss = (bg_pos * pos_term).sum() / (bg_pos.sum() + 1e-5)
    fg_pos_loss = (fg_pos * pos_term).sum() / (fg_pos.sum() + 1e-5)
    pos_loss = bg_pos_loss / 2 + fg_pos_loss / 2
    neg_loss = (neg * neg_term).sum() / (neg.sum() + 1e-5)

    pair_disp = pair_displacement(disp, path_index)
    target = torch.as_tensor(path_index.offsets, dtype=disp.dtype, device=disp.device).t()[None, :, :, None]
    # Same instance (foreground pair): the displacements differ by the offset; background: equal.
    dp_fg_loss = ((pair_disp - target).abs() * fg_pos.unsqueeze(1)).sum() / (2 * fg_pos.sum() + 1e-5)
    dp_bg_loss = (pair_disp.abs() * bg_pos.unsqueeze(1)).sum() / (2 * bg_pos.sum() + 1e-5)
    total = (pos_loss + neg_loss) / 2 + (dp_fg_loss + dp_bg_loss) / 2
    return {"pos_aff": pos_loss, "neg_aff": neg_loss, "dp_fg": dp_fg_loss, "dp_bg": dp_bg_loss, "total": total}
