"""GridBatch: B images' node grids laid out top-left on one common grid."""
import numpy as np
import pytest
import torch

from GCN.batch import PADDING, GridBatch, grid_index


def test_grid_index_by_hand():
    np.testing.assert_array_equal(grid_index((2, 3), (4, 5)), [0, 1, 2, 5, 6, 7])


def test_layout_by_hand():
    batch = GridBatch([(2, 3), (3, 1)])
    assert batch.grid == (3, 3) and batch.num_nodes == 9 and len(batch) == 2
    np.testing.assert_array_equal(batch.index[1], [0, 3, 6])
    assert batch.valid.tolist() == [[True, True, True, True, True, True, False, False, False],
                                    [True, False, False, True, False, False, True, False, False]]


def test_scatter_maps_labels_and_image_maps_round_trip():
    rng = np.random.default_rng(0)
    shapes = [(2, 3), (3, 1), (1, 4)]
    batch = GridBatch(shapes)
    maps = [rng.standard_normal((5,) + s).astype(np.float32) for s in shapes]
    nodes = batch.scatter_maps(maps)
    assert nodes.shape == (3, batch.num_nodes, 5) and (nodes[~batch.valid] == 0).all()
    for back, original in zip(batch.image_maps(nodes), maps):
        torch.testing.assert_close(back, torch.from_numpy(original))
    labels = batch.scatter_labels([rng.integers(0, 21, s).astype(np.uint8) for s in shapes])
    assert labels.dtype == torch.int64 and (labels[~batch.valid] == PADDING).all()
    assert (labels[batch.valid] >= 0).all()


def test_place_puts_each_map_top_left():
    batch = GridBatch([(2, 2), (1, 3)])
    placed = batch.place([torch.ones(1, 2), torch.full((1, 3), 2.0)], size=(2, 3))
    assert placed.tolist() == [[[1, 1, 0], [0, 0, 0]], [[2, 2, 2], [0, 0, 0]]]
    assert batch.place([torch.ones(2, 2), torch.ones(1, 3)]).shape == (2, 2, 3)


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="at least one image"):
        GridBatch([])
