"""WSGCN's per-image network (docs/method.md §7): two graph convolutions, log-softmax over classes."""
import torch
import torch.nn.functional as F
from torch import nn

from GCN.layers import GraphConvolution, propagate
from wsgcn.infra.runtime import image_seed


class GCN(nn.Module):
    """GraphConv(nfeat -> nhid) -> ReLU -> dropout -> GraphConv(nhid -> nclass) -> log-softmax.

    :class:`StackedGCN` trains B of them as one, on (B, N, ·) inputs.
    """

    def __init__(self, nfeat=160, nhid=16, nclass=21, dropout=0.3):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, graph, x_propagated=None, keep=None):
        """x (N, nfeat) float32, or (B, N, nfeat) for a :class:`StackedGCN`; graph: M (see
        ``layers.as_propagator``); x_propagated = M x if precomputed (the input is fixed during
        an image's training, so the first layer's propagation can be done once); keep: the
        dropout's keep mask (..., N, nhid) bool, drawn here from the global generator if not
        given.

        Returns (..., N, nclass) log-probabilities.
        """
        return F.log_softmax(self.scores(x, graph, x_propagated, keep), dim=-1)

    def scores(self, x, graph, x_propagated=None, keep=None):
        """The class scores before the softmax, (..., N, nclass); arguments as ``forward``."""
        h = F.relu(self.gc1(x, graph, x_propagated))
        if self.training and self.dropout > 0:
            # F.dropout's operation, with the mask drawn by torch.rand: 3x faster than its
            # bernoulli_ on the CPU, and it lets the caller supply the mask
            keep = torch.rand_like(h) >= self.dropout if keep is None else keep
            h = h * keep / (1 - self.dropout)
        return self.gc2(h, graph)


class StackedGCN(GCN):
    """The GCNs of a batch of images (a :class:`GCN.batch.GridBatch`) as one module, each image
    with its own model, graph, dropout stream and result -- the one it gets trained alone.

    The parameters carry a leading batch dimension, weights (B, in, out) and biases (B, 1, out);
    Adam's update is elementwise, so one optimizer over the stack trains each model as its own
    optimizer would.  A GCN is transductive: its inputs, the node ``features`` (B, H*W, nfeat)
    and the ``graph``, are fixed, so the module holds them with the first layer's product
    M X, computed once (M (X W1) = (M X) W1).  ``model()`` gives (B, H*W, nclass) log-probabilities.

    The models may have different numbers of outputs K_b (one per class of the image): the stack
    then has nclass = max K_b outputs, image b's last nclass - K_b of them zero weights whose
    scores are masked to -inf, so their probability is 0 and they get no gradient
    (``columns`` (B, 1, nclass) bool marks the real ones; None when every model has nclass).
    """

    def __init__(self, models, batch, features, graph, dropout_seeds):
        first = models[0]
        nclass = max(m.gc2.out_features for m in models)
        with torch.random.fork_rng(devices=[]):  # the layers' own init is replaced below
            super().__init__(first.gc1.in_features, first.gc1.out_features, nclass, first.dropout)
        with torch.no_grad():
            for layer in ("gc1", "gc2"):
                target = getattr(self, layer)
                weights = [F.pad(getattr(m, layer).weight, (0, target.out_features - getattr(m, layer).out_features))
                           for m in models]
                biases = [F.pad(getattr(m, layer).bias, (0, target.out_features - getattr(m, layer).out_features))
                          for m in models]
                target.weight = nn.Parameter(torch.stack(weights).to(batch.device))
                target.bias = nn.Parameter(torch.stack(biases)[:, None].to(batch.device))
        self.columns = None
        if any(m.gc2.out_features != nclass for m in models):
            self.columns = (torch.arange(nclass) < torch.tensor([m.gc2.out_features for m in models])[:, None])
            self.columns = self.columns[:, None].to(batch.device)
        self.batch, self.features, self.graph = batch, features, graph
        self.propagated = propagate(graph, features)
        self.generators = [torch.Generator(batch.device).manual_seed(seed) for seed in dropout_seeds]

    @classmethod
    def for_images(cls, names, batch, features, graph, seed, nhid=16, nclass=21, dropout=0.3):
        """Image b's model initialised from ``image_seed(seed, names[b])`` (on the CPU, so alike
        on every device), its dropout stream from ``image_seed(seed + 1, names[b])``.  ``nclass``:
        the number of outputs of every model, or a list of one per image."""
        nclass = [nclass] * len(names) if isinstance(nclass, int) else nclass
        models = []
        for name, outputs in zip(names, nclass):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(image_seed(seed, name))
                models.append(GCN(features.shape[-1], nhid, outputs, dropout))
        return cls(models, batch, features, graph, [image_seed(seed + 1, name) for name in names])

    def dropout_mask(self):
        """(B, H*W, nhid) bool keep mask, each image's nodes from its own generator."""
        keep = torch.zeros(len(self.batch), self.batch.num_nodes, self.gc1.out_features, dtype=torch.bool,
                           device=self.batch.device)
        for b, (index, generator) in enumerate(zip(self.batch.node_index, self.generators)):
            keep[b, index] = torch.rand(len(index), self.gc1.out_features, generator=generator,
                                        device=self.batch.device) >= self.dropout
        return keep

    def forward(self):
        keep = self.dropout_mask() if self.training and self.dropout > 0 else None
        scores = self.scores(self.features, self.graph, self.propagated, keep)
        if self.columns is not None:
            scores = scores.masked_fill(~self.columns, float("-inf"))
        return F.log_softmax(scores, dim=-1)
