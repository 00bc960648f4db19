"""WSGCN's per-image network (SPEC §7): two graph convolutions, log-softmax over classes."""
import torch.nn.functional as F
from torch import nn

from GCN.layers import GraphConvolution


class GCN(nn.Module):
    """GraphConv(nfeat -> nhid) -> ReLU -> dropout -> GraphConv(nhid -> nclass) -> log-softmax."""

    def __init__(self, nfeat=160, nhid=16, nclass=21, dropout=0.3):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, propagate, x_propagated=None):
        """x (N, nfeat) float32; propagate: the graph M (see ``layers.as_propagator``);
        x_propagated (N, nfeat) = M x if precomputed (the input is fixed during an image's
        training, so the first layer's propagation can be done once).

        Returns (N, nclass) log-probabilities.
        """
        h = F.relu(self.gc1(x, propagate, x_propagated))
        h = F.dropout(h, self.dropout, training=self.training)
        return F.log_softmax(self.gc2(h, propagate), dim=1)
