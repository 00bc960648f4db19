"""Tests of the synthetic demo data set (wsgcn/demo_data.py): format (VOC and COCO), exactness, determinism."""
import json
import time
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from wsgcn import demo_data
from wsgcn.demo_data import DEMO_CLASSES, demo_image_name, make_demo_dataset, trace_polygons, uncompressed_rle
from wsgcn.seg.dataset import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    IGNORE_INDEX,
    load_cls_label_table,
    read_annotation_labels,
    read_image_list,
)
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


def test_voc_sized_images(tmp_path, capsys):
    """--image_size voc: VOC's sizes (long side 500, every fourth image 300..450, short side
    0.66..0.75 of it), both orientations, recorded in demo.json; the ground truth fits."""
    assert demo_data.main(["--out", str(tmp_path / "v"), "--num_train", "4", "--num_val", "1", "--image_size",
                           "voc"]) == 0
    assert "of voc size" in capsys.readouterr().out
    voc = VOC12(tmp_path / "v" / "VOC2012")
    shapes = [voc.load_gt(demo_image_name(i)).shape for i in range(5)]
    assert [max(s) for s in shapes[:3]] == [500, 500, 500] and 300 <= max(shapes[3]) <= 450 and max(shapes[4]) == 500
    assert all(0.66 * max(s) - 1 <= min(s) <= 0.75 * max(s) + 1 for s in shapes)
    assert shapes[0][0] < shapes[0][1] and shapes[1][0] > shapes[1][1]
    assert voc.load_image(demo_image_name(1)).shape[:2] == shapes[1]
    assert json.loads((tmp_path / "v" / "demo.json").read_text())["image_size"] == "voc"
    assert "image_size" not in json.loads((make_demo_dataset(tmp_path / "d", 1, 1) / "demo.json").read_text())
    with pytest.raises(ValueError, match="voc with the voc format only"):
        make_demo_dataset(tmp_path / "c", 1, 1, fmt="coco", image_size="voc")


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

    def flaky(seed, index, *image_size):
        calls.append(index)
        if index == 1:
            raise KeyboardInterrupt
        return real(seed, index, *image_size)

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


# ----------------------------------------------------------------------------------------------
# COCO format.

COCO_TRAIN, COCO_VAL = 6, 2


def _decode_polygons(polygons, h, w):
    """(H, W) bool that pycocotools rasterises from COCO polygons."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)


def _assert_traced_exactly(mask):
    mask = np.asarray(mask, bool)
    polygons = trace_polygons(mask)
    if not polygons:   # pycocotools takes no empty list
        assert not mask.any()
        return polygons
    assert all(len(p) >= 8 and len(p) % 2 == 0 for p in polygons), polygons
    np.testing.assert_array_equal(_decode_polygons(polygons, *mask.shape), mask)
    return polygons


def _mask(rows):
    return np.array([[c == "#" for c in row] for row in rows])


def test_trace_polygons_hand_made_masks():
    square = np.zeros((5, 5), bool)
    square[1:3, 1:3] = True
    assert _assert_traced_exactly(square) == [[1, 1, 3, 1, 3, 3, 1, 3]]   # corners only, clockwise on screen

    ell = _mask(["......",
                 ".#....",
                 ".#....",
                 ".#....",
                 ".###..",
                 "......"])
    assert _assert_traced_exactly(ell) == [[1, 1, 2, 1, 2, 4, 4, 4, 4, 5, 1, 5]]

    # Two pixels touching at a corner: the outline turns right there, so they are two polygons.
    diagonal = _mask(["....",
                      ".#..",
                      "..#.",
                      "...."])
    assert _assert_traced_exactly(diagonal) == [[1, 1, 2, 1, 2, 2, 1, 2], [2, 2, 3, 2, 3, 3, 2, 3]]

    # A shape touching itself at a corner (a pocket open only there): one polygon through the
    # corner (2, 3) twice, and the pocket stays outside.
    pocket = _mask(["####",
                    "#..#",
                    "#.##",
                    "##.."])
    (polygon,) = _assert_traced_exactly(pocket)
    corners = list(zip(polygon[::2], polygon[1::2]))
    assert corners.count((2, 3)) == 2 and len(set(corners)) == len(corners) - 1

    two = _mask(["##....",
                 "##..##",
                 "....##",
                 "###..."])
    assert len(_assert_traced_exactly(two)) == 3   # components at the image border too
    assert _assert_traced_exactly(np.ones((3, 4), bool)) == [[0, 0, 4, 0, 4, 3, 0, 3]]
    assert trace_polygons(np.zeros((3, 4), bool)) == []


def test_trace_polygons_random_masks():
    """Random masks, holes filled (also those open at a corner only, which leaves pockets)."""
    rng = np.random.default_rng(0)
    for i in range(400):
        mask = rng.random(rng.integers(1, 13, size=2)) < rng.uniform(0.2, 0.8)
        structure = np.ones((3, 3)) if i % 2 else None
        _assert_traced_exactly(ndimage.binary_fill_holes(mask, structure=structure))


def test_trace_polygons_refuses_a_hole():
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    with pytest.raises(ValueError, match="hole"):
        trace_polygons(ring)


def test_uncompressed_rle():
    mask = _mask([".#",
                  "##",
                  ".."])
    # Column-major runs: column 0 is . # ., column 1 is # # .
    assert uncompressed_rle(mask) == {"counts": [1, 1, 1, 2, 1], "size": [3, 2]}
    assert uncompressed_rle(np.ones((2, 2), bool))["counts"] == [0, 4]   # the first run is of zeros
    rng = np.random.default_rng(1)
    for _ in range(50):
        mask = rng.random(rng.integers(1, 20, size=2)) < 0.5
        rle = mask_utils.frPyObjects(uncompressed_rle(mask), *mask.shape)
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("coco"), COCO_TRAIN, COCO_VAL, SEED, fmt="coco")


@pytest.fixture(scope="module")
def coco_sets(coco_root):
    return {split: COCO(str(coco_root / "annotations" / f"instances_{split}.json")) for split in demo_data.COCO_SPLITS}


def test_coco_files_and_ids(coco_root, coco_sets):
    rows = demo_data.coco_images(COCO_TRAIN, COCO_VAL)
    assert [(split, index, empty) for split, index, empty in rows] == \
        [("train2014", i, False) for i in range(6)] + [("train2014", 6, True)] + \
        [("val2014", 7, False), ("val2014", 8, False), ("val2014", 9, True)]
    files = sorted(p.relative_to(coco_root).as_posix() for p in coco_root.rglob("*") if p.is_file())
    images = [f"{split}/COCO_{split}_{index + 1:012d}.jpg" for split, index, _ in rows]
    assert files == sorted(images + ["annotations/instances_train2014.json", "annotations/instances_val2014.json",
                                     "demo.json"])   # no label table, no lists: the converter derives them
    assert json.loads((coco_root / "demo.json").read_text()) == {
        "format_version": demo_data.FORMAT_VERSION, "num_train": COCO_TRAIN, "num_val": COCO_VAL, "seed": SEED,
        "format": "coco"}
    ann_ids = []
    for split, coco in coco_sets.items():
        dataset = coco.dataset
        assert {"info", "licenses", "images", "annotations", "categories"} <= set(dataset)
        expected = [index + 1 for row_split, index, _ in rows if row_split == split]
        assert [image["id"] for image in dataset["images"]] == expected
        for image in dataset["images"]:
            assert image["file_name"] == demo_data.coco_image_name(split, image["id"]) + ".jpg"
            with Image.open(coco_root / split / image["file_name"]) as jpeg:
                assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (image["width"], image["height"]))
        ann_ids += [ann["id"] for ann in dataset["annotations"]]
        # The split's last image has no object and no annotation; all the others have some.
        last = dataset["images"][-1]["id"]
        assert coco.getAnnIds(imgIds=[last], iscrowd=None) == []
        assert all(coco.getAnnIds(imgIds=[image_id], iscrowd=None) for image_id in expected[:-1])
    assert len(ann_ids) == len(set(ann_ids))   # unique over both files


def test_coco_categories(coco_sets):
    for coco in coco_sets.values():
        categories = coco.dataset["categories"]
        assert [c["id"] for c in categories] == list(COCO_CATEGORY_IDS)
        assert [c["name"] for c in categories] == list(COCO_CATEGORIES)
        assert len(categories) == 80 and categories[-1] == {"id": 90, "name": "toothbrush", "supercategory": "indoor"}
        supercategory = {c["name"]: c["supercategory"] for c in categories}
        assert [supercategory[n] for n in ("person", "airplane", "car", "bird", "cat", "traffic light", "tie",
                                           "kite", "cup", "pizza", "bed", "tv", "oven", "book")] == \
            ["person", "vehicle", "vehicle", "animal", "animal", "outdoor", "accessory", "sports", "kitchen",
             "food", "furniture", "electronic", "appliance", "indoor"]
    assert {demo_data.COCO_NAME[c] for c in DEMO_CLASSES} <= set(COCO_CATEGORIES)


def _painted(coco, image_id, shape):
    """(H, W) COCO category ids as a converter paints them: annotations in decreasing area, the smaller on top."""
    painted = np.zeros(shape, np.int64)
    for ann in sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)), key=lambda a: -a["area"]):
        painted[coco.annToMask(ann).astype(bool)] = ann["category_id"]
    return painted


def test_coco_annotations_are_what_the_generator_meant(coco_sets):
    category_id = dict(zip(COCO_CATEGORIES, COCO_CATEGORY_IDS))
    crowds = overlaps = 0
    for split, index, empty in demo_data.coco_images(COCO_TRAIN, COCO_VAL):
        coco, image_id = coco_sets[split], index + 1
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        _, instances = demo_data.make_coco_scene(SEED, index, empty)
        assert len(anns) == len(instances) and (not anns) == empty
        masks = []
        for ann, instance in zip(anns, instances):
            mask = coco.annToMask(ann).astype(bool)
            np.testing.assert_array_equal(mask, instance.mask, err_msg=f"{split} {image_id}")
            assert ann["category_id"] == category_id[demo_data.COCO_NAME[instance.cls]]
            assert ann["iscrowd"] == int(instance.iscrowd)
            if ann["iscrowd"]:
                assert set(ann["segmentation"]) == {"counts", "size"}
            else:
                assert isinstance(ann["segmentation"], list) and ann["segmentation"]
            assert ann["area"] == mask.sum()
            assert ann["bbox"] == mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask, np.uint8))).tolist()
            masks.append(mask)
        crowds += sum(ann["iscrowd"] for ann in anns)
        overlaps += sum((a & b).any() for a, b in combinations(masks, 2))
        assert [ann["area"] for ann in anns] == sorted({ann["area"] for ann in anns}, reverse=True), \
            "drawn larger first, no ties: the painting order is the drawing order"

        # The converter's painting is what the image shows: the visible objects, occluders as background.
        scene = demo_data._render_scene(SEED, index, coco=True, empty=empty)
        ids = np.array([0] + [category_id[demo_data.COCO_NAME[o.cls]] for o in scene.objects])
        np.testing.assert_array_equal(_painted(coco, image_id, scene.inst.shape), ids[scene.inst])
    assert crowds >= 1 and overlaps >= 1


def test_default_coco_set_has_a_crowd_and_an_overlap():
    """The default set (48 + 16, seed 0), through its crowd candidates (every CROWD_EVERY-th image)."""
    crowds = overlaps = 0
    for _, index, empty in demo_data.coco_images(48, 16):
        if index % demo_data.CROWD_EVERY == 0 and not empty:
            instances = demo_data.make_coco_scene(SEED, index)[1]
            crowds += sum(i.iscrowd for i in instances)
            overlaps += sum((a.mask & b.mask).any() for a, b in combinations(instances, 2))
    assert crowds and overlaps


def test_coco_scene_shares_voc_scene():
    """A COCO scene draws what the VOC scene of the same index draws (size, objects; only the stacking
    order and the void band differ, and with them, at times, which objects settling keeps)."""
    for index in range(4):
        voc_scene = demo_data._render_scene(SEED, index)
        coco_scene = demo_data._render_scene(SEED, index, coco=True)
        assert voc_scene.image.shape == coco_scene.image.shape
        assert sorted(o.cls for o in voc_scene.objects) == sorted(o.cls for o in coco_scene.objects)
        assert not demo_data._render_scene(SEED, index, coco=True, empty=True).objects


def test_coco_idempotent_and_regenerates_on_new_params(tmp_path, monkeypatch):
    out = make_demo_dataset(tmp_path / "c", 3, 2, seed=5, fmt="coco")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise AssertionError("an up-to-date data set must not be regenerated")

    monkeypatch.setattr(demo_data, "_render_scene", fail)
    assert make_demo_dataset(out, 3, 2, seed=5, fmt="coco") == out
    assert demo_data.main(["--out", str(out), "--num_train", "3", "--num_val", "2", "--seed", "5",
                           "--format", "coco"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()

    # New parameters: regenerated, and images of the old, larger set do not linger.
    make_demo_dataset(out, 2, 1, seed=5, fmt="coco")
    assert sorted(p.name for p in (out / "train2014").glob("*.jpg")) == \
        [f"COCO_train2014_{i:012d}.jpg" for i in (1, 2, 3)]
    assert sorted(p.name for p in (out / "val2014").glob("*.jpg")) == \
        [f"COCO_val2014_{i:012d}.jpg" for i in (4, 5)]


def test_coco_cli_and_bad_format(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--num_train", "2", "--num_val", "1", "--format", "coco"]
    assert demo_data.main(argv) == 0
    first = capsys.readouterr().out
    assert first.count("\n") == 1 and "wrote COCO-format" in first
    assert demo_data.main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / "annotations" / "instances_val2014.json").is_file() and not (out / "VOC2012").exists()
    with pytest.raises(ValueError, match="format"):
        make_demo_dataset(tmp_path / "bad", 2, 1, fmt="yolo")
    with pytest.raises(SystemExit) as stop:
        demo_data.main(["--out", str(tmp_path / "bad"), "--format", "yolo"])
    assert stop.value.code == 2 and "--format: 'yolo' is not one of voc, coco" in capsys.readouterr().err
