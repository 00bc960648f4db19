"""Tests of the synthetic demo data set (wsgcn/demo_data.py): format, exactness, determinism."""
import json
import time
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import pytest

from wsgcn import demo_data
from wsgcn.demo_data import DEMO_CLASSES, demo_image_name, make_demo_dataset
from wsgcn.seg.dataset import IGNORE_INDEX, load_cls_label_table, read_annotation_labels, read_image_list
from wsgcn.seg.voc import CAT_INDEX, CAT_LIST, VOC12

NUM_TRAIN, NUM_VAL, SEED = 24, 8, 0
NAMES = [demo_image_name(i) for i in range(NUM_TRAIN + NUM_VAL)]
DEMO_IDS = sorted(CAT_INDEX[c] + 1 for c in DEMO_CLASSES)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), NUM_TRAIN, NUM_VAL, SEED)


@pytest.fixture(scope="module")
def voc(demo_root):
    return VOC12(demo_root / "VOC2012")


def _file_bytes(root):
    """{relative path: bytes} of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_classes_are_voc_classes():
    assert len(DEMO_CLASSES) == 5 and len(set(DEMO_CLASSES)) == 5
    assert set(DEMO_CLASSES) <= set(CAT_LIST)


def test_files_and_lists(demo_root):
    assert read_image_list(demo_root / "train.txt") == NAMES[:NUM_TRAIN]
    assert read_image_list(demo_root / "val.txt") == NAMES[NUM_TRAIN:]
    assert NAMES[0] == "demo_000000" and NAMES[-1] == f"demo_{NUM_TRAIN + NUM_VAL - 1:06d}"
    voc_root = demo_root / "VOC2012"
    for sub, suffix in (("JPEGImages", ".jpg"), ("SegmentationClassAug", ".png"), ("Annotations", ".xml")):
        assert sorted(p.stem for p in (voc_root / sub).glob(f"*{suffix}")) == NAMES
    # No temporary files of the atomic writers are left behind.
    assert not [p for p in demo_root.rglob("*") if ".part" in p.name]
    params = json.loads((demo_root / "demo.json").read_text())
    assert params == {"format_version": demo_data.FORMAT_VERSION, "num_train": NUM_TRAIN,
                      "num_val": NUM_VAL, "seed": SEED}
    table = load_cls_label_table(demo_root / "cls_labels.txt", len(CAT_LIST))
    assert sorted(table) == NAMES


def test_cls_label_lines_sorted_unique(demo_root):
    for line in (demo_root / "cls_labels.txt").read_text().splitlines():
        indices = [int(t) for t in line.split()[1:]]
        assert indices and indices == sorted(set(indices)), line


def test_image_sizes(voc):
    shapes = []
    for name in NAMES:
        image, gt = voc.load_image(name), voc.load_gt(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[:2] == gt.shape
        shapes.append(gt.shape)
    shapes = np.array(shapes)
    assert shapes.min() >= 97 and shapes.max() <= 161
    assert not (shapes % 4 == 0).any(), "no side may be a multiple of 4"
    assert (shapes % 2 == 1).any(axis=1).all(), "every image has an odd side"
    assert (shapes[:, 0] > shapes[:, 1]).any() and (shapes[:, 0] < shapes[:, 1]).any(), \
        "both portrait and landscape images"


def test_xml_size_and_boxes(voc):
    for name in NAMES:
        root = ET.parse(voc.annotation_path(name)).getroot()
        assert root.findtext("filename") == f"{name}.jpg"
        h, w = voc.load_gt(name).shape
        assert int(root.findtext("size/width")) == w and int(root.findtext("size/height")) == h
        assert int(root.findtext("size/depth")) == 3
        objects = root.findall("object")
        assert 1 <= len(objects) <= 3
        for obj in objects:
            assert obj.findtext("name") in DEMO_CLASSES
            x0, y0, x1, y1 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= x0 <= x1 <= w and 1 <= y0 <= y1 <= h
            # The (1-based, inclusive) box must contain pixels of its class in the ground truth.
            box = voc.load_gt(name)[y0 - 1:y1, x0 - 1:x1]
            assert (box == CAT_INDEX[obj.findtext("name")] + 1).any()


def test_gt_values_and_labels_agree(demo_root, voc):
    table = load_cls_label_table(demo_root / "cls_labels.txt", len(CAT_LIST))
    allowed = {0, IGNORE_INDEX, *DEMO_IDS}
    for name in NAMES:
        gt = voc.load_gt(name)
        values = set(np.unique(gt).tolist())
        assert values <= allowed, (name, values)
        from_gt = np.zeros(len(CAT_LIST), np.float32)
        from_gt[[v - 1 for v in values if 0 < v < IGNORE_INDEX]] = 1
        assert from_gt.any(), f"{name} has no object pixels"
        from_xml = read_annotation_labels(voc.annotation_path(name), CAT_LIST)
        np.testing.assert_array_equal(from_gt, from_xml, err_msg=name)
        np.testing.assert_array_equal(from_gt, table[name], err_msg=name)
        np.testing.assert_array_equal(from_gt, voc.class_labels(name), err_msg=name)


def test_void_band_separates_regions(voc):
    """No labelled pixel is 4-adjacent to a pixel of another label: boundaries are all void."""
    for name in NAMES:
        gt = voc.load_gt(name).astype(np.int32)
        for a, b in ((gt[1:], gt[:-1]), (gt[:, 1:], gt[:, :-1])):
            clash = (a != b) & (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
            assert not clash.any(), name
        obj = (gt > 0) & (gt < IGNORE_INDEX)
        void = gt == IGNORE_INDEX
        # The band is thin: a couple of pixels, not a halo that swallows the objects.
        assert 0 < void.sum() < obj.sum(), name
        # The band lies on the objects' outlines, so some object pixels border on it.
        near_void = np.zeros_like(void)
        near_void[1:] |= void[:-1]
        near_void[:-1] |= void[1:]
        assert (obj & near_void).any(), name


def test_void_band_width():
    """The band covers the pixel on each side of a boundary (2 px wide), no more; border is no boundary."""
    inst = np.zeros((20, 20), np.int32)
    inst[5:15, 5:15] = 1
    inst[5:15, 10:15] = 2                     # two touching instances: object/object boundary
    void = demo_data._void_band(inst)
    assert void[4, 5:15].all() and void[5, 5:15].all() and void[14, 5:15].all() and void[15, 5:15].all()
    assert void[6:14, 9].all() and void[6:14, 10].all()
    assert not void[3].any() and not void[6:14, 6:9].any() and not void[6:14, 11:14].any()
    assert void.sum() == 12 * 12 - 2 * (8 * 3)   # ring of width 2 round the pair, plus the seam
    assert not demo_data._void_band(np.ones((8, 8), np.int32)).any()


def test_load_image_shape_matches_annotation(voc):
    for name in NAMES[:4]:
        root = ET.parse(voc.annotation_path(name)).getroot()
        h, w = int(root.findtext("size/height")), int(root.findtext("size/width"))
        assert voc.load_image(name).shape == (h, w, 3)


def test_deterministic(demo_root, tmp_path):
    again = make_demo_dataset(tmp_path / "again", NUM_TRAIN, NUM_VAL, SEED)
    assert _file_bytes(again) == _file_bytes(demo_root)


def test_other_seed_differs(voc, tmp_path):
    other = VOC12(make_demo_dataset(tmp_path / "other", 4, 1, seed=SEED + 1) / "VOC2012")
    for name in NAMES[:4]:
        assert other.image_path(name).read_bytes() != voc.image_path(name).read_bytes()


def test_train_images_independent_of_num_val(demo_root, tmp_path):
    fewer = make_demo_dataset(tmp_path / "fewer", NUM_TRAIN, 1, SEED)
    for name in NAMES[:NUM_TRAIN + 1]:
        for sub, suffix in (("JPEGImages", ".jpg"), ("SegmentationClassAug", ".png")):
            rel = f"VOC2012/{sub}/{name}{suffix}"
            assert (fewer / rel).read_bytes() == (demo_root / rel).read_bytes()


def test_idempotent_and_regenerates_on_new_params(tmp_path, monkeypatch):
    out = make_demo_dataset(tmp_path / "d", 3, 2, seed=5)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise AssertionError("an up-to-date data set must not be regenerated")

    monkeypatch.setattr(demo_data, "make_scene", fail)
    assert make_demo_dataset(out, 3, 2, seed=5) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()

    # New parameters: regenerated, and images of the old, larger set do not linger.
    make_demo_dataset(out, 2, 1, seed=5)
    assert json.loads((out / "demo.json").read_text())["num_train"] == 2
    assert sorted(p.stem for p in (out / "VOC2012" / "JPEGImages").glob("*.jpg")) == \
        [demo_image_name(i) for i in range(3)]
    assert read_image_list(out / "val.txt") == [demo_image_name(2)]


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    out = tmp_path / "d"
    calls = []

    def flaky(seed, index):
        calls.append(index)
        if index == 1:
            raise KeyboardInterrupt
        return real(seed, index)

    real = demo_data.make_scene
    monkeypatch.setattr(demo_data, "make_scene", flaky)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(out, 2, 1, seed=0)
    assert not (out / "demo.json").exists()
    monkeypatch.undo()
    make_demo_dataset(out, 2, 1, seed=0)
    assert (out / "demo.json").exists() and len(list((out / "VOC2012" / "JPEGImages").glob("*.jpg"))) == 3


def test_invalid_parameters(tmp_path):
    for kwargs in (dict(num_train=0), dict(num_val=0), dict(seed=-1), dict(num_train=2.5)):
        with pytest.raises(ValueError):
            make_demo_dataset(tmp_path / "bad", **kwargs)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert demo_data.main(["--out", str(out), "--num_train", "2", "--num_val", "1", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.count("\n") == 1 and "wrote" in first
    assert demo_data.main(["--out", str(out), "--num_train", "2", "--num_val", "1", "--seed", "3"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_scene_speed():
    start = time.perf_counter()
    for index in range(8):
        demo_data.make_scene(0, index)
    assert (time.perf_counter() - start) / 8 < 0.1


def test_classes_distinguishable(tmp_path):
    """Learnability guard: each class has its own colour, far from the others and from background,
    and the two striped classes have their stripes in their own orientation."""
    root = make_demo_dataset(tmp_path / "big", 48, 16, seed=0)
    voc = VOC12(root / "VOC2012")
    pixels = {c: [] for c in ["background"] + DEMO_CLASSES}
    grad = {c: np.zeros(2) for c in DEMO_CLASSES}   # mean |d/dy|, |d/dx| inside the class
    for i in range(64):
        name = demo_image_name(i)
        image, gt = voc.load_image(name).astype(np.float64), voc.load_gt(name)
        grey = image.mean(axis=2)
        pixels["background"].append(image[gt == 0])
        for c in DEMO_CLASSES:
            m = gt == CAT_INDEX[c] + 1
            if not m.any():
                continue
            pixels[c].append(image[m])
            grad[c] += (np.abs(np.diff(grey, axis=0))[m[1:] & m[:-1]].sum(),
                        np.abs(np.diff(grey, axis=1))[m[:, 1:] & m[:, :-1]].sum())
    assert all(pixels[c] for c in DEMO_CLASSES), "every class occurs in the default data set"
    pixels = {c: np.concatenate(v) for c, v in pixels.items()}
    means = {c: v.mean(axis=0) for c, v in pixels.items()}
    for a, b in combinations(means, 2):
        assert np.linalg.norm(means[a] - means[b]) > 60, (a, b, means[a], means[b])

    def saturation(rgb):
        hi, lo = rgb.max(axis=1), rgb.min(axis=1)
        return np.mean((hi - lo) / np.maximum(hi, 1))

    assert saturation(pixels["background"]) < 0.2
    assert all(saturation(pixels[c]) > 0.6 for c in DEMO_CLASSES)
    ratio = {c: g[0] / g[1] for c, g in grad.items()}
    assert ratio["aeroplane"] > 2.5 and ratio["person"] < 0.4, ratio   # horizontal vs vertical stripes
