"""Graph convolution (Kipf & Welling) in pygcn's form: out = M (X W) + b.

The graph M is abstract: anything ``as_propagator`` accepts (a sparse or dense (N, N) tensor,
or a callable X -> M X), so the same layer runs on the exact dense graph, a sparse one, or an
implicit random-walk operator that never materialises M.
"""
import math

import torch
from torch import nn


def as_propagator(m):
    """Return a callable X -> M X for X (N, C).

    m: a torch sparse (N, N) tensor (torch.sparse.mm), a dense (N, N) tensor (matmul), or any
    callable, returned unchanged.
    """
    if not isinstance(m, torch.Tensor):
        if not callable(m):
            raise TypeError(f"expected a tensor or a callable graph operator, got {type(m).__name__}")
        return m
    if m.is_sparse:
        return lambda x: torch.sparse.mm(m, x)
    return lambda x: m @ x


def propagate(m, x):
    """M X for m as in ``as_propagator`` and x (N, C); returns (N, C)."""
    return as_propagator(m)(x)


class GraphConvolution(nn.Module):
    """(N, in_features) float32 -> (N, out_features) float32: M (X W) + b.  The same code runs
    B graphs at once, (B, N, in) -> (B, N, out), when weight is (B, in, out) and bias (B, 1, out)
    (see :class:`GCN.models.StackedGCN`).

    weight (in_features, out_features) and bias (out_features,) start uniform in
    ±1/sqrt(out_features), as pygcn's reset_parameters.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -stdv, stdv)

    def forward(self, x, graph, x_propagated=None):
        """x (N, in_features); graph: M (see ``as_propagator``).

        x_propagated (N, in_features) = M x, when the caller has it: M (X W) = (M X) W, so a
        fixed input needs propagating once per graph rather than once per step.
        """
        if x_propagated is not None:
            out = x_propagated @ self.weight
        elif self.out_features < self.in_features:
            out = propagate(graph, x @ self.weight)  # propagate the narrower side
        else:
            out = propagate(graph, x) @ self.weight
        return out + self.bias if self.bias is not None else out

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"
