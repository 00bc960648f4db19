import numpy as np
import pytest
from PIL import Image

from wsgcn.infra.io import atomic_path, load_label_png, load_npz, save_label_png, save_npz, voc_colormap


def test_voc_colormap_known_entries():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3)
    # VOC colours: background black, aeroplane (1) dark red, person (15) pinkish, void (255) cream.
    assert cmap[0].tolist() == [0, 0, 0]
    assert cmap[1].tolist() == [128, 0, 0]
    assert cmap[15].tolist() == [192, 128, 128]
    assert cmap[255].tolist() == [224, 224, 192]


def test_label_png_round_trip_is_palette(tmp_path):
    labels = np.array([[0, 1, 20], [255, 15, 0]], np.uint8)
    path = tmp_path / "sub" / "a.png"
    save_label_png(path, labels)
    with Image.open(path) as img:
        assert img.mode == "P"
        assert img.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(load_label_png(path), labels)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary left behind


def test_label_png_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="0..255"):
        save_label_png(tmp_path / "a.png", np.array([[0, 256]]))
    with pytest.raises(ValueError, match="2-D"):
        save_label_png(tmp_path / "a.png", np.zeros((2, 2, 3)))
    assert not (tmp_path / "a.png").exists()


def test_load_label_png_rejects_rgb(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        load_label_png(tmp_path / "rgb.png")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_npz_round_trip_and_pickle_refused(tmp_path):
    save_npz(tmp_path / "s.npz", keys=np.array([0, 3]), prob=np.ones((2, 4, 5), np.float32))
    data = load_npz(tmp_path / "s.npz", required=("keys", "prob"))
    assert data["keys"].tolist() == [0, 3] and data["prob"].shape == (2, 4, 5)
    with pytest.raises(ValueError, match="lacks \\['cam'\\]"):
        load_npz(tmp_path / "s.npz", required=("cam",))
    with pytest.raises(TypeError, match="dtype object"):
        save_npz(tmp_path / "o.npz", keys=np.array([{"a": 1}], dtype=object))
    # An archive holding a pickled object (as a malicious file would) is refused.
    np.savez(tmp_path / "evil.npz", payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="evil.npz.*pickled"):
        load_npz(tmp_path / "evil.npz")


def test_atomic_outputs_get_an_ordinary_file_mode(tmp_path):
    import os
    import stat

    from wsgcn.infra.io import save_npz

    save_npz(tmp_path / "a.npz", x=np.zeros(2))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.npz").stat().st_mode) == 0o666 & ~mask
