"""Reference forms that only the tests use: what the production code is checked against."""
from wsgcn.affinity import _sparse_coo, _transition_entries


def transition_matrix(boundary, beta=10, radius=5):
    """Column-stochastic transition matrix T = A**beta / A**beta.sum(0), sparse.

    boundary: (h, w) tensor.  Returns a coalesced sparse COO tensor (N, N), N = h*w, on the
    boundary's device and in its dtype.
    """
    rows, cols, values = _transition_entries(boundary, beta, radius)
    return _sparse_coo(rows, cols, values, boundary.numel())
