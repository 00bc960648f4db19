import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference import transition_matrix
from wsgcn.seg.affinity import (
    PathIndex,
    affinity_graph,
    dense_affinity,
    dense_transition_power,
    neighbour_offsets,
    offset_paths,
    random_walk,
)

# ----------------------------------------------------------------------------- references

def _rule_path(dy, dx):
    """Path points of an offset straight from the definition, as a set."""
    return {(y, x)
            for y in range(min(0, dy), max(0, dy) + 1)
            for x in range(min(0, dx), max(0, dx) + 1)
            if (dy * x - dx * y) ** 2 / (dy * dy + dx * dx) < 1}


def _irnet_search_dst(max_radius):
    """IRNet's get_search_paths_dst, transcribed: the canonical destinations."""
    coord_indices_by_length = [[] for _ in range(max_radius * 4)]
    search_dirs = [(0, x) for x in range(1, max_radius)]
    for y in range(1, max_radius):
        for x in range(-max_radius + 1, max_radius):
            if x * x + y * y < max_radius ** 2:
                search_dirs.append((y, x))
    for d in search_dirs:
        length_sq = d[0] ** 2 + d[1] ** 2
        path_coords = []
        min_y, max_y = sorted((0, d[0]))
        min_x, max_x = sorted((0, d[1]))
        for y in range(min_y, max_y + 1):
            for x in range(min_x, max_x + 1):
                if (d[0] * x - d[1] * y) ** 2 / length_sq < 1:
                    path_coords.append([y, x])
        path_coords.sort(key=lambda c: -abs(c[0]) - abs(c[1]))
        coord_indices_by_length[len(path_coords)].append(path_coords)
    groups = [np.asarray(v) for v in coord_indices_by_length if v]
    return np.concatenate([g[:, 0] for g in groups], axis=0)


def _padded_dense_affinity(boundary, radius=5):
    """IRNet's propagate_to_edge affinity: pad with 1.0, all PathIndex pairs, scatter, crop."""
    h, w = boundary.shape
    hp, wp = h + radius, w + 2 * radius
    padded = F.pad(boundary, (radius, radius, 0, radius), mode="constant", value=1.0)
    index = PathIndex(radius, (hp, wp))
    aff = index.affinity(padded.unsqueeze(0))[0].reshape(-1)
    src = torch.from_numpy(index.src_indices).repeat(len(index.offsets))
    dst = torch.from_numpy(index.dst_indices).reshape(-1)
    n_pad = hp * wp
    diag = torch.arange(n_pad)
    dense = torch.sparse_coo_tensor(torch.stack([torch.cat([src, diag, dst]), torch.cat([dst, diag, src])]),
                                    torch.cat([aff, torch.ones(n_pad, dtype=aff.dtype), aff]),
                                    (n_pad, n_pad), check_invariants=False).to_dense()
    dense = dense.view(hp, wp, hp, wp)[:-radius, radius:-radius, :-radius, radius:-radius]
    return dense.reshape(h * w, h * w)


def _random_boundary(h, w, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(h, w, generator=g, dtype=torch.float64).to(dtype)


def _contour_boundary(h, w):
    """Weak background boundary with a closed rectangular contour of value 1."""
    b = torch.full((h, w), 0.05, dtype=torch.float64)
    b[2:h - 2, 2] = b[2:h - 2, w - 3] = 1.0
    b[2, 2:w - 2] = b[h - 3, 2:w - 2] = 1.0
    return b


# ----------------------------------------------------------------------------- offsets and paths

def test_offsets_radius5():
    off = neighbour_offsets(5)
    assert off.shape == (34, 2) and off.dtype == np.int64
    pairs = {tuple(o) for o in off}
    assert len(pairs) == 34
    for dy, dx in pairs:
        assert dy * dy + dx * dx < 25 and (dy > 0 or (dy == 0 and dx > 0))
        assert (-dy, -dx) not in pairs
    # Every neighbour of the disc is covered once, up to sign.
    disc = {(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if 0 < dy * dy + dx * dx < 25}
    assert pairs | {(-dy, -dx) for dy, dx in pairs} == disc


def test_canonical_order_is_irnet_search_dst():
    for radius in (5, 10):
        np.testing.assert_array_equal(neighbour_offsets(radius), _irnet_search_dst(radius))
    lengths = [len(p) for p in offset_paths(5)]
    assert lengths == sorted(lengths)
    assert lengths[:4] == [2, 2, 3, 3] and lengths[-1] == 11
    np.testing.assert_array_equal(neighbour_offsets(5)[:6], [[0, 1], [1, 0], [0, 2], [2, 0], [0, 3], [1, -1]])


def test_paths_follow_rule():
    for radius in (5, 10):
        for (dy, dx), path in zip(neighbour_offsets(radius), offset_paths(radius)):
            assert tuple(path[0]) == (dy, dx)
            assert {tuple(p) for p in path} == _rule_path(dy, dx)
            assert len({tuple(p) for p in path}) == len(path)
            manhattan = np.abs(path).sum(1)
            assert np.all(np.diff(manhattan) <= 0)


def test_hand_checked_paths():
    paths = {tuple(o): p.tolist() for o, p in zip(neighbour_offsets(5), offset_paths(5))}
    assert paths[(0, 3)] == [[0, 3], [0, 2], [0, 1], [0, 0]]
    # (0, 2) and (1, 0) sit at squared distance 4/5 of the segment, inside the band.
    assert paths[(1, 2)] == [[1, 2], [0, 2], [1, 1], [0, 1], [1, 0], [0, 0]]
    assert sorted(map(tuple, paths[(1, 1)])) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert paths[(1, 1)][0] == [1, 1] and paths[(1, 1)][-1] == [0, 0]


# ----------------------------------------------------------------------------- PathIndex

def test_path_index_shapes():
    index = PathIndex(5, (12, 15))
    assert index.radius_floor == 4
    s = (12 - 4) * (15 - 8)
    assert index.src_indices.shape == (s,) and index.dst_indices.shape == (34, s)
    np.testing.assert_array_equal(index.offsets, neighbour_offsets(5))
    src_y, src_x = np.divmod(index.src_indices, 15)
    assert src_y.min() == 0 and src_y.max() == 7 and src_x.min() == 4 and src_x.max() == 10
    dst_y, dst_x = np.divmod(index.dst_indices, 15)
    np.testing.assert_array_equal(dst_y - src_y, np.broadcast_to(index.offsets[:, :1], (34, s)))
    np.testing.assert_array_equal(dst_x - src_x, np.broadcast_to(index.offsets[:, 1:], (34, s)))
    assert PathIndex(10, (40, 40)).radius_floor == 9


def test_path_index_affinity_matches_loop():
    h, w = 11, 13
    index = PathIndex(5, (h, w))
    boundary = torch.stack([_random_boundary(h, w, 1), _random_boundary(h, w, 2)])
    aff = index.affinity(boundary)
    assert aff.shape == (2, 34, len(index.src_indices)) and aff.dtype == torch.float32
    b = boundary.numpy()
    expected = np.empty(aff.shape, np.float32)
    for k, (dy, dx) in enumerate(index.offsets):
        points = _rule_path(int(dy), int(dx))
        for s, flat in enumerate(index.src_indices):
            y, x = divmod(int(flat), w)
            expected[:, k, s] = 1 - np.max([b[:, y + py, x + px] for py, px in points], axis=0)
    np.testing.assert_array_equal(aff.numpy(), expected)
    # The (B, 1, H, W) layout of a network output is accepted too.
    np.testing.assert_array_equal(index.affinity(boundary.unsqueeze(1)).numpy(), expected)


def test_path_index_affinity_gradient_flows():
    index = PathIndex(5, (10, 10))
    boundary = torch.rand(1, 10, 10, requires_grad=True)
    index.affinity(boundary).sum().backward()
    assert boundary.grad is not None and boundary.grad.abs().sum() > 0


def test_pair_labels_rules():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, 5:] = 3
    labels[6:, :] = 255
    labels[0, 0] = 7
    index = PathIndex(5, (10, 10))
    bg, fg, neg = index.pair_labels(labels)
    assert bg.shape == fg.shape == neg.shape == (34, len(index.src_indices))
    assert bg.dtype == fg.dtype == neg.dtype == torch.float32

    flat = labels.reshape(-1).astype(np.int64)
    a = np.broadcast_to(flat[index.src_indices], index.dst_indices.shape)
    b = flat[index.dst_indices]
    valid = (a != 255) & (b != 255)
    np.testing.assert_array_equal(bg.numpy(), (valid & (a == b) & (a == 0)).astype(np.float32))
    np.testing.assert_array_equal(fg.numpy(), (valid & (a == b) & (a > 0)).astype(np.float32))
    np.testing.assert_array_equal(neg.numpy(), (valid & (a != b)).astype(np.float32))
    # Classes are mutually exclusive, and pairs touching 255 are in none of them.
    assert (bg + fg + neg).max() == 1
    assert ((bg + fg + neg).numpy() == valid).all()
    assert fg.sum() > 0 and bg.sum() > 0 and neg.sum() > 0

    # Hand-picked pairs: source (0, 4) [bg] with (0, 5) [class 3], (1, 4) [bg], (4, 4) [bg] ...
    k = {tuple(o): i for i, o in enumerate(index.offsets)}
    s = list(index.src_indices).index(0 * 10 + 4)
    assert neg[k[(0, 1)], s] == 1 and bg[k[(0, 1)], s] == 0
    assert bg[k[(1, 0)], s] == 1
    # ... and source (3, 5) [class 3] with (3, 6) [3], (4, 4) [bg], (4 + 3, 5) [255].
    s = list(index.src_indices).index(3 * 10 + 5)
    assert fg[k[(0, 1)], s] == 1
    assert neg[k[(1, -1)], s] == 1
    assert bg[k[(4, 0)], s] == fg[k[(4, 0)], s] == neg[k[(4, 0)], s] == 0

    # The same from a tensor label map.
    for got, want in zip(index.pair_labels(torch.from_numpy(labels)), (bg, fg, neg)):
        assert torch.equal(got, want)


# ----------------------------------------------------------------------------- inference graph

@pytest.mark.parametrize("h,w", [(9, 11), (13, 7), (3, 4), (1, 6)])
def test_affinity_graph_matches_padded_reference(h, w):
    boundary = _random_boundary(h, w, h * 100 + w)
    rows, cols, values = affinity_graph(boundary)
    assert rows.dtype == cols.dtype == torch.int64 and values.dtype == torch.float32
    n = h * w
    # Entries are unique, so scattering loses nothing.
    assert len(torch.unique(rows * n + cols)) == len(rows)
    dense = dense_affinity(boundary)
    assert torch.equal(dense, dense.t())
    assert torch.equal(torch.diagonal(dense), torch.ones(n))
    assert torch.equal(dense, _padded_dense_affinity(boundary))


def test_affinity_graph_pair_values():
    h, w = 6, 7
    boundary = _random_boundary(h, w, 5)
    dense = dense_affinity(boundary).view(h, w, h, w)
    b = boundary.numpy()
    # (1, 2) to (3, 5): offset (2, 3), path points computed by hand from the rule.
    points = _rule_path(2, 3)
    assert points == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3)}
    expected = 1 - max(b[1 + py, 2 + px] for py, px in points)
    assert dense[1, 2, 3, 5] == pytest.approx(expected) and dense[3, 5, 1, 2] == dense[1, 2, 3, 5]
    # Out of radius: no edge.
    assert dense[0, 0, 5, 0] == 0 and dense[0, 0, 3, 4] == 0


def test_transition_matrix_columns():
    h, w = 9, 11
    boundary = _random_boundary(h, w, 7, torch.float64)
    trans = transition_matrix(boundary, beta=10)
    assert trans.is_sparse and trans.shape == (h * w, h * w) and trans.dtype == torch.float64
    col_sum = torch.sparse.sum(trans, dim=0).to_dense()
    torch.testing.assert_close(col_sum, torch.ones(h * w, dtype=torch.float64))
    scaled = _padded_dense_affinity(boundary) ** 10
    torch.testing.assert_close(trans.to_dense(), scaled / scaled.sum(0, keepdim=True), rtol=1e-12, atol=0)


@pytest.mark.parametrize("h,w,contour", [(9, 11, False), (13, 7, False), (9, 11, True), (13, 7, True)])
def test_random_walk_matches_dense(h, w, contour):
    boundary = _contour_boundary(h, w) if contour else _random_boundary(h, w, h + w, torch.float64)
    g = torch.Generator().manual_seed(h * w)
    x = torch.rand(3, h, w, generator=g, dtype=torch.float64)
    expected = ((x * (1 - boundary)).reshape(3, -1) @ dense_transition_power(boundary, 10, 8)).reshape(3, h, w)

    got64 = random_walk(x, boundary)
    torch.testing.assert_close(got64, expected, rtol=1e-9, atol=1e-12)
    got32 = random_walk(x.float(), boundary.float())
    assert got32.dtype == torch.float32 and got32.shape == (3, h, w)
    torch.testing.assert_close(got32.double(), expected, rtol=2e-4, atol=1e-6)
    if contour:
        # No path crosses a closed contour of 1s, so a seed inside spreads over the inside
        # (evenly, after 256 steps) and nothing reaches the contour or the outside.
        seed = torch.zeros(1, h, w, dtype=torch.float64)
        seed[0, h // 2, w // 2] = 1.0
        out = random_walk(seed, boundary)[0]
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[3:h - 3, 3:w - 3] = True
        assert torch.all(out[~inside] == 0)
        torch.testing.assert_close(out[inside], out[inside].mean().expand(int(inside.sum())), rtol=1e-3, atol=0)


def test_random_walk_exp_times_small():
    boundary = _random_boundary(5, 6, 3, torch.float64)
    x = torch.rand(2, 5, 6, dtype=torch.float64)
    for exp_times in (0, 1, 3):
        expected = (x * (1 - boundary)).reshape(2, -1) @ dense_transition_power(boundary, 4, exp_times)
        torch.testing.assert_close(random_walk(x, boundary, beta=4, exp_times=exp_times).reshape(2, -1),
                                   expected, rtol=1e-10, atol=1e-12)


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_device_and_dtype_follow_input(device):
    h, w = 7, 8
    boundary = _random_boundary(h, w, 11).to(device)
    rows, cols, values = affinity_graph(boundary)
    assert rows.device == cols.device == values.device == boundary.device
    trans = transition_matrix(boundary)
    assert trans.device == boundary.device and trans.dtype == torch.float32
    x = torch.rand(2, h, w, device=device)
    out = random_walk(x, boundary)
    assert out.device == boundary.device and out.dtype == torch.float32
    index = PathIndex(5, (h + 2, w + 8))
    aff = index.affinity(torch.rand(1, h + 2, w + 8, device=device, dtype=torch.float64))
    assert aff.device == boundary.device and aff.dtype == torch.float64
    bg, _, _ = index.pair_labels(torch.zeros(h + 2, w + 8, dtype=torch.long, device=device))
    assert bg.device == boundary.device


def test_path_index_leaves_its_device_tensors_behind_when_pickled():
    """A dataset holding a PathIndex is pickled into spawn/forkserver workers: the per-device
    cache (CUDA tensors in a GPU run) must not travel with it."""
    import pickle

    index = PathIndex(5, (16, 16))
    index.affinity(torch.rand(1, 16, 16))
    assert index._device_cache
    copy = pickle.loads(pickle.dumps(index))
    assert copy._device_cache == {} and index._device_cache
    torch.testing.assert_close(copy.affinity(torch.ones(1, 16, 16) * 0.5), index.affinity(torch.ones(1, 16, 16) * 0.5))
