"""Graph convolution (Kipf & Welling), in pygcn's form: out = M (X W) + b."""
import math

import torch
from torch import nn


def propagate(m, x):
    """M @ X for M a dense or sparse (N, N) tensor, or any callable X -> M X; X (N, C)."""
    if callable(m) and not isinstance(m, torch.Tensor):
        return m(x)
    return torch.sparse.mm(m, x) if m.is_sparse else m @ x


class GraphConvolution(nn.Module):
    """(N, in_features) -> (N, out_features); weights and bias uniform in ±1/sqrt(out_features)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.weight.size(1))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x, m, x_propagated=None):
        """``x_propagated`` = M X, when known, saves the propagation: M (X W) = (M X) W."""
        out = x_propagated @ self.weight if x_propagated is not None else propagate(m, x @ self.weight)
        return out + self.bias if self.bias is not None else out
