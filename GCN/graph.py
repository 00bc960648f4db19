"""The GCN's graph (docs/method.md §7): M = rownorm(max(T^256, T^256ᵀ) + I), rebuilt on the
device from the class-boundary map that the IRN stage stores, never read from disk as a dense
matrix.

Each mode of ``--graph`` is a class in ``GRAPHS`` with two static methods: ``prepare(boundary,
cfg)``, the CPU work of one image (run in the data-loading workers), and ``assemble(prepared,
batch, cfg)``, the operator on the device for a :class:`GCN.batch.GridBatch` of images, acting
on (B, H*W, C) node values; padding nodes are neither read nor written.  Its ``cuda_batch`` is how
many images train together on CUDA when ``--batch_images`` is 0.

- ``dense``: the exact M, a (B, H*W, H*W) tensor (about 550 MB in float32 for a 500x375 VOC
  image, and 8 dense squarings of an N x N matrix to get T^256);
- ``lowmem`` (default): :class:`LowRankGraph`, an operator in O(N * rank) memory.

A new graph is one new class registered in ``GRAPHS``.
"""
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

from wsgcn.seg.affinity import affinity_graph, dense_transition_power


def exact_adjacency(boundary, beta=10, exp_times=8, radius=5):
    """boundary (h, w) -> M (N, N) dense, row-stochastic, in the boundary's dtype and device."""
    t = dense_transition_power(boundary, beta=beta, exp_times=exp_times, radius=radius)
    m = torch.maximum(t, t.t())
    m.diagonal().add_(1.0)
    return m / m.sum(1, keepdim=True)


def batched_exact_adjacency(boundaries, batch, beta=10, exp_times=8, radius=5):
    """B boundary maps (h_b, w_b) tensors laid out as ``batch`` -> (B, H*W, H*W) with each
    image's M on its nodes and zeros elsewhere."""
    out = boundaries[0].new_zeros(len(boundaries), batch.num_nodes, batch.num_nodes)
    for b, (boundary, index) in enumerate(zip(boundaries, batch.node_index)):
        out[b, index[:, None], index[None, :]] = exact_adjacency(boundary, beta, exp_times, radius)
    return out


def low_rank_parts(boundary, beta=10, exp_times=8, radius=5, rank=64, isolation=0.01, groups=64):
    """The CPU half of a :class:`LowRankGraph` for one boundary map (h, w): a dict of numpy arrays
    (float64) from which ``LowRankGraph`` assembles the device tensors of one or many images.

    Nodes are split into ``kept`` ones, sorted by degree into ``groups`` groups of equal size
    (padded), and ``alone`` (isolated) ones.  Keys: ``shape``; ``kept``, ``alone`` node indices;
    ``sqrt_d`` (n_kept,) in degree order; ``u`` and ``u_lam`` = U Λ^k (n_kept, r) in degree order;
    ``right`` (r, n_alone), ``stay`` (n_alone,).
    """
    boundary = torch.as_tensor(boundary).detach().cpu()
    steps = 2 ** exp_times
    n = boundary.numel()
    rows, cols, values = (t.numpy() for t in affinity_graph(boundary.double(), radius))
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
    # C = T_R^k Q diag(1 - stay) = (D^½ U Λ^k) (Uᵀ D^-½ Q diag(1 - stay)) = left @ right,
    # left = √d · U Λ^k being assembled from sqrt_d and u_lam
    right = (q.T @ (u / np.sqrt(d_kept)[:, None])).T * (1.0 - stay)[None, :]

    order = np.argsort(d_kept, kind="stable")
    return dict(shape=tuple(boundary.shape), groups=groups, kept=kept[order], alone=alone,
                sqrt_d=np.sqrt(d_kept)[order], u=u[order], u_lam=(u * lam_k[None, :])[order],
                right=right, stay=stay)


class LowRankGraph:
    """M = rownorm(max(T^256, T^256ᵀ) + I) as an operator Y -> M Y that never forms an N x N matrix.

    With A^β the powered affinities, d their column sums, T = A^β D⁻¹ and S = D^-½ A^β D^-½
    (symmetric), T^k = D^½ S^k D^-½, so that

        max(T^k, T^kᵀ)_ij = S^k_ij · max(√(d_i/d_j), √(d_j/d_i)).

    S^k (k = 2^exp_times) keeps only the eigenvalues near 1, so its top ``rank`` eigenpairs
    U Λ Uᵀ represent it.  Sorting the nodes by degree, the sums over j with d_j < d_i and over
    d_j > d_i are prefix sums over groups of nodes of close degree (see ``_max_product``).
    Nodes whose affinities to every neighbour vanish after the power β (off-diagonal mass below
    ``isolation``) would each add an eigenvalue near 1; they are split off: such a node keeps
    T^k_ii ≈ (1/d_i)^k, and what leaks from it goes to its neighbours and then walks as they do
    (T_R^k q_i, q_i = its normalised affinities), which also gives the node's row of the
    symmetric max.

    ``LowRankGraph.batch(parts, batch)`` stacks many images' :func:`low_rank_parts` into one
    operator on (B, H*W, C) for a :class:`GCN.batch.GridBatch`, zero-padded so that each image's
    product is the one it gets alone.
    """

    @classmethod
    def batch(cls, parts, batch):
        """One operator on (B, H*W, C) from B images' :func:`low_rank_parts`, laid out as ``batch``."""
        graph = cls()
        graph._assemble(parts, batch)
        return graph

    def _assemble(self, parts, batch):
        """Stack the images' parts, each padded to common sizes with zeros, in the operator's node
        order per image: [kept by degree in ``groups`` groups of ``size`` rows, isolated]."""
        if len({p["groups"] for p in parts}) != 1:
            raise ValueError("the images of a batch must use the same number of degree groups")
        groups, n, device = parts[0]["groups"], batch.num_nodes, batch.device
        size = max(1, max(-(-len(p["kept"]) // groups) for p in parts))
        rank = max(p["u"].shape[1] for p in parts)
        alone = max(len(p["alone"]) for p in parts)
        rows = groups * size + alone

        def stack(key, shape):
            out = np.zeros((len(parts),) + shape)
            for b, p in enumerate(parts):
                out[(b,) + tuple(slice(0, s) for s in p[key].shape)] = p[key]
            return out

        # perm: per image, the row of the zero-extended Y (H*W + 1 rows; row H*W is zero) that
        # each operator row reads; position: the operator row (of rows + 1; the last is zero)
        # that each grid node reads back.  Both are offset to index the flattened batch.
        perm = np.full((len(parts), rows), n)
        position = np.full((len(parts), n), rows)
        for b, (p, index) in enumerate(zip(parts, batch.index)):
            kept, lone = index[p["kept"]], index[p["alone"]]
            perm[b, : len(kept)], perm[b, groups * size: groups * size + len(lone)] = kept, lone
            position[b, kept] = np.arange(len(kept))
            position[b, lone] = groups * size + np.arange(len(lone))
        perm += (n + 1) * np.arange(len(parts))[:, None]
        position += (rows + 1) * np.arange(len(parts))[:, None]

        sqrt_d = stack("sqrt_d", (groups * size,))[..., None]
        inv_sqrt_d = np.divide(1.0, sqrt_d, out=np.zeros_like(sqrt_d), where=sqrt_d > 0)
        u, u_lam = stack("u", (groups * size, rank)), stack("u_lam", (groups * size, rank))
        t = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)  # noqa: E731
        self.n, self.groups, self.size, self.rank = n, groups, size, rank
        self.kept = torch.as_tensor(np.concatenate([p["kept"] for p in parts]), device=device)
        self.alone = torch.as_tensor(np.concatenate([p["alone"] for p in parts]), device=device)
        self.perm = torch.as_tensor(perm.reshape(-1), device=device)
        self.position = torch.as_tensor(position.reshape(-1), device=device)
        # (B, G, 2r, n_g): [U/√d, U√d]ᵀ per group, and (B, G, n_g, 2r): [√d UΛ^k, UΛ^k/√d] per group.
        shape = (len(parts), groups, size, 2 * rank)
        self.project = t(np.concatenate([u * inv_sqrt_d, u * sqrt_d], -1)).view(shape).transpose(2, 3)
        self.expand = t(np.concatenate([u_lam * sqrt_d, u_lam * inv_sqrt_d], -1)).view(shape)
        self.left = t(u_lam * sqrt_d)                                      # (B, G*n_g, r): D^½ U Λ^k
        self.right = t(stack("right", (rank, alone)))                      # (B, r, A)
        self.stay = t(stack("stay", (alone,)))[..., None]                  # (B, A, 1)
        self.row_sums = self._max_product(torch.ones(len(parts), n, 1, device=device)) + 1.0

    def _max_product(self, y):
        """max(T^k, T^kᵀ) Y for Y (B, H*W, C).

        For i in degree group g: the groups below give √(d_i/d_j) S_ij Y_j exactly, those above
        √(d_j/d_i) S_ij Y_j; inside its own group, where the degrees are close, the max of the
        two ratios is replaced by their mean (the error grows like the squared log-ratio of the
        group's degrees).  Everything is a batched (n_g, 2r) x (2r, C) product, between one
        gather of Y into the operator's node order and one gather back.
        """
        batch, c = y.shape[0], y.shape[2]
        kept_rows = self.groups * self.size
        # index_select, not y[idx]: its gradient is an index_add, much faster than index_put on the CPU
        yp = torch.cat([y, y.new_zeros(batch, 1, c)], 1).view(-1, c).index_select(0, self.perm)
        yp = yp.view(batch, -1, c)
        ys, y_alone = yp[:, :kept_rows], yp[:, kept_rows:]
        z = self.project @ ys.view(batch, self.groups, self.size, c)   # (B, G, 2r, C)
        z_low, z_high = z[:, :, : self.rank], z[:, :, self.rank:]      # U_gᵀ(Y_g/√d), U_gᵀ(Y_g√d)
        before = torch.cumsum(z_low, 1) - z_low / 2                     # groups before g, half of g
        after = z_high.sum(1, keepdim=True) - torch.cumsum(z_high, 1) + z_high / 2  # after g, half of g
        out = (self.expand @ torch.cat([before, after], 2)).view(batch, kept_rows, c)
        if y_alone.shape[1]:
            out = out + self.left @ (self.right @ y_alone)
            alone_out = self.stay * y_alone + self.right.transpose(1, 2) @ (self.left.transpose(1, 2) @ ys)
            out = torch.cat([out, alone_out], 1)
        out = torch.cat([out, out.new_zeros(batch, 1, c)], 1).view(-1, c).index_select(0, self.position)
        return out.view(batch, self.n, c)

    def __call__(self, y):
        """M Y for Y (N, C) (one image) or (B, H*W, C) (a batch) on the graph's device."""
        if y.dim() == 2:
            return self(y[None])[0]
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


class DenseGraph:
    """``--graph dense``: the exact M of each image, built on the device."""

    cuda_batch = 1  # images per batch on CUDA by default: one N x N matrix already fills the device

    @staticmethod
    def prepare(boundary, cfg):
        return np.asarray(boundary, np.float32)  # nothing to do ahead on the CPU

    @staticmethod
    def assemble(prepared, batch, cfg):
        boundaries = [torch.as_tensor(b, device=batch.device) for b in prepared]
        return batched_exact_adjacency(boundaries, batch, cfg.beta, cfg.exp_times)


class LowMemGraph:
    """``--graph lowmem``: :class:`LowRankGraph`; the eigensolver runs in ``prepare``."""

    cuda_batch = 32  # images per batch on CUDA by default: one image's small launches leave the device idle

    @staticmethod
    def prepare(boundary, cfg):
        return low_rank_parts(boundary, cfg.beta, cfg.exp_times, rank=cfg.graph_rank, isolation=cfg.graph_isolation)

    @staticmethod
    def assemble(prepared, batch, cfg):
        return LowRankGraph.batch(prepared, batch)


GRAPHS = {"dense": DenseGraph, "lowmem": LowMemGraph}


def graph_mode(name):
    """The class of ``--graph name`` in ``GRAPHS``."""
    if name not in GRAPHS:
        raise ValueError(f"--graph {name!r}: use one of {', '.join(GRAPHS)}")
    return GRAPHS[name]
