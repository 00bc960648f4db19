"""The GCN's graph (SPEC §7): M = rownorm(max(T^256, T^256ᵀ) + I), rebuilt on the device from
the class-boundary map that the IRN stage stores, never read from disk as a dense matrix.

Two modes: ``exact_adjacency``, the reference, a dense (N, N) matrix in memory only (N = h*w
nodes; about 550 MB in float32 for a 500x375 VOC image, and 8 dense squarings to get T^256),
and ``LowRankGraph``, an operator that needs O(N * rank) memory.
"""
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

from wsgcn.affinity import affinity_graph, dense_transition_power


def exact_adjacency(boundary, beta=10, exp_times=8, radius=5):
    """boundary (h, w) -> M (N, N) dense, row-stochastic, in the boundary's dtype and device."""
    t = dense_transition_power(boundary, beta=beta, exp_times=exp_times, radius=radius)
    m = torch.maximum(t, t.t())
    m.diagonal().add_(1.0)
    return m / m.sum(1, keepdim=True)


class LowRankGraph:
    """M = rownorm(max(T^256, T^256ᵀ) + I) as an operator Y -> M Y that never forms an N x N matrix.

    With A^β the powered affinities, d their column sums, T = A^β D⁻¹ and S = D^-½ A^β D^-½
    (symmetric), T^k = D^½ S^k D^-½, so that

        max(T^k, T^kᵀ)_ij = S^k_ij · max(√(d_i/d_j), √(d_j/d_i)).

    S^k (k = 2^exp_times) keeps only the eigenvalues near 1, so its top ``rank`` eigenpairs
    U Λ Uᵀ represent it.  Sorting the nodes by degree, the sums over j with d_j < d_i and over
    d_j > d_i are prefix sums over groups of nodes of close degree (see ``_max_product``).  Nodes whose affinities to
    every neighbour vanish after the power β (off-diagonal mass below ``isolation``) would each
    add an eigenvalue near 1; they are split off: such a node keeps T^k_ii ≈ (1/d_i)^k, and
    what leaks from it goes to its neighbours and then walks as they do (T_R^k q_i, q_i = its
    normalised affinities), which also gives the node's row of the symmetric max.
    """

    def __init__(self, boundary, beta=10, exp_times=8, radius=5, rank=32, isolation=0.01, buckets=64):
        device, dtype = boundary.device, torch.float32
        steps = 2 ** exp_times
        n = boundary.numel()
        rows, cols, values = (t.cpu().numpy() for t in affinity_graph(boundary.detach().double().cpu(), radius))
        a = sp.csr_matrix((values ** beta, (rows, cols)), shape=(n, n))
        d = np.asarray(a.sum(0)).ravel()
        isolated = (d - 1.0) < isolation
        kept, alone = np.flatnonzero(~isolated), np.flatnonzero(isolated)

        a_kept = a[kept][:, kept]
        d_kept = np.asarray(a_kept.sum(0)).ravel()
        s = (sp.diags(d_kept ** -0.5) @ a_kept @ sp.diags(d_kept ** -0.5)).tocsr()
        lam, u = _top_eigenpairs(s, rank)
        lam_k = np.clip(lam, 0.0, None) ** steps

        # What leaks from an isolated node: its neighbours' share, then T_R^k.
        stay = (1.0 / d[alone]) ** steps
        q = a[kept][:, alone].tocsc()
        q = q @ sp.diags(1.0 / np.maximum(np.asarray(q.sum(0)).ravel(), 1e-300))
        # C = T_R^k Q diag(1 - stay) = (D^½ U Λ^k) (Uᵀ D^-½ Q diag(1 - stay)) = left @ right
        left = np.sqrt(d_kept)[:, None] * u * lam_k[None, :]
        right = (q.T @ (u / np.sqrt(d_kept)[:, None])).T * (1.0 - stay)[None, :]

        # Nodes sorted by degree, in ``buckets`` groups of equal size (padded with zero rows).
        order = np.argsort(d_kept, kind="stable")
        groups = max(1, min(buckets, len(kept) // 8))
        size = -(-len(kept) // groups)
        pad = groups * size - len(kept)
        t = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)  # noqa: E731
        padded = lambda x: np.concatenate([x, np.zeros((pad,) + x.shape[1:])])  # noqa: E731
        self.n, self.groups, self.size = n, groups, size
        self.kept, self.alone = t(kept).long(), t(alone).long()
        self.kept_sorted = t(kept[order]).long()
        self.sqrt_d = t(padded(np.sqrt(d_kept)[order])).view(groups, size, 1)
        self.inv_sqrt_d = t(padded(1.0 / np.sqrt(d_kept)[order])).view(groups, size, 1)
        self.u = t(padded(u[order])).view(groups, size, u.shape[1])                  # (G, n_g, r)
        self.u_lam = t(padded((u * lam_k[None, :])[order])).view(groups, size, u.shape[1])
        self.left, self.right, self.stay = t(left), t(right), t(stay)
        self.row_sums = self._max_product(torch.ones(n, 1, dtype=dtype, device=device)) + 1.0

    def _max_product(self, y):
        """max(T^k, T^kᵀ) Y for Y (N, C).

        For i in degree group g: the groups below give √(d_i/d_j) S_ij Y_j exactly, those above
        √(d_j/d_i) S_ij Y_j; inside its own group, where the degrees are close, the max of the
        two ratios is replaced by their mean (the error grows like the squared log-ratio of the
        group's degrees).  Everything is a batched (G, n_g, r) x (G, r, C) product.
        """
        out = torch.zeros_like(y)
        # index_select, not y[idx]: its gradient is an index_add, much faster than index_put on the CPU
        y_kept, y_alone = y.index_select(0, self.kept), y.index_select(0, self.alone)
        if len(self.kept):
            ys = torch.cat([y.index_select(0, self.kept_sorted),
                            y.new_zeros(self.groups * self.size - len(self.kept), y.shape[1])])
            ys = ys.view(self.groups, self.size, -1)
            z_low = self.u.transpose(1, 2) @ (ys * self.inv_sqrt_d)    # (G, r, C): U_gᵀ (Y_g / √d)
            z_high = self.u.transpose(1, 2) @ (ys * self.sqrt_d)       # (G, r, C): U_gᵀ (Y_g √d)
            below = torch.cumsum(z_low, 0) - z_low / 2                 # groups before g, half of g
            above = torch.flip(torch.cumsum(torch.flip(z_high, [0]), 0), [0]) - z_high / 2
            kept_out = self.sqrt_d * (self.u_lam @ below) + self.inv_sqrt_d * (self.u_lam @ above)
            kept_out = kept_out.reshape(-1, y.shape[1])[: len(self.kept)]
            out = out.index_add(0, self.kept_sorted, kept_out)
            if len(self.alone):
                out = out.index_add(0, self.kept, self.left @ (self.right @ y_alone))
        if len(self.alone):
            alone_out = self.stay[:, None] * y_alone
            if len(self.kept):
                alone_out = alone_out + self.right.t() @ (self.left.t() @ y_kept)
            out = out.index_add(0, self.alone, alone_out)
        return out

    def __call__(self, y):
        """M Y for Y (N, C) on the graph's device."""
        return (self._max_product(y) + y) / self.row_sums


def _top_eigenpairs(s, rank):
    """Largest ``rank`` eigenpairs of a sparse symmetric matrix (dense solver when it is small)."""
    n = s.shape[0]
    if n == 0:
        return np.zeros(0), np.zeros((0, 0))
    if n <= max(4 * rank, 600):
        lam, u = np.linalg.eigh(s.toarray())
        return lam[-rank:], u[:, -rank:]
    # A fixed start vector keeps the result deterministic.
    lam, u = sla.eigsh(s, k=rank, which="LA", tol=1e-6, v0=np.ones(n))
    return lam, u


def build_graph(boundary, cfg):
    """The GCN's graph for a boundary map (h, w) on its device, in the mode ``cfg.graph``:
    a dense (N, N) tensor or a :class:`LowRankGraph` operator (both accepted by the GCN layers)."""
    if cfg.graph == "dense":
        return exact_adjacency(boundary, cfg.beta, cfg.exp_times)
    if cfg.graph == "lowmem":
        return LowRankGraph(boundary, cfg.beta, cfg.exp_times, rank=cfg.graph_rank, isolation=cfg.graph_isolation)
    raise ValueError(f"--graph {cfg.graph!r}: use dense or lowmem")
