"""WSGCN's per-image network (SPEC §7): two graph convolutions, log-softmax over classes."""
import torch
import torch.nn.functional as F
from torch import nn

from GCN.layers import GraphConvolution


class GCN(nn.Module):
    """GraphConv(nfeat -> nhid) -> ReLU -> dropout -> GraphConv(nhid -> nclass) -> log-softmax.

    ``GCN.stack(models)`` turns B such networks into one whose parameters carry a leading batch
    dimension, to train many images' GCNs in one set of launches on (B, N, ·) inputs.
    """

    def __init__(self, nfeat=160, nhid=16, nclass=21, dropout=0.3):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    @classmethod
    def stack(cls, models):
        """One GCN holding B models' parameters, weights (B, in, out) and biases (B, 1, out);
        its output for image b is model b's.  Adam's update is elementwise, so one optimizer
        over the stack trains each model as its own optimizer would."""
        first = models[0]
        stacked = cls(first.gc1.in_features, first.gc1.out_features, first.gc2.out_features, first.dropout)
        with torch.no_grad():
            for layer in ("gc1", "gc2"):
                target = getattr(stacked, layer)
                target.weight = nn.Parameter(torch.stack([getattr(m, layer).weight for m in models]))
                target.bias = nn.Parameter(torch.stack([getattr(m, layer).bias for m in models])[:, None])
        return stacked

    def forward(self, x, propagate, x_propagated=None, keep=None):
        """x (N, nfeat) float32, or (B, N, nfeat) for a stack; propagate: the graph M (see
        ``layers.as_propagator``); x_propagated = M x if precomputed (the input is fixed during
        an image's training, so the first layer's propagation can be done once); keep: the
        dropout's keep mask (..., N, nhid) bool, drawn here from the global generator if not
        given (the caller gives it to seed each image of a stack on its own).

        Returns (..., N, nclass) log-probabilities.
        """
        h = F.relu(self.gc1(x, propagate, x_propagated))
        if self.training and self.dropout > 0:
            # F.dropout's operation, with the mask drawn by torch.rand: 3x faster than its
            # bernoulli_ on the CPU, and it lets the caller supply the mask
            keep = torch.rand_like(h) >= self.dropout if keep is None else keep
            h = h * keep / (1 - self.dropout)
        return F.log_softmax(self.gc2(h, propagate), dim=-1)
