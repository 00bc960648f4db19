"""wsgcn.coco: COCO 2014 instance annotations -> semantic masks, label table and lists, one
hand-made case per rule."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from wsgcn import coco  # noqa: E402
from wsgcn.infra.io import load_label_png  # noqa: E402
from wsgcn.seg.dataset import COCO_CATEGORIES, COCO_CATEGORY_IDS, DATASETS, DataSet  # noqa: E402

H, W = 12, 16
PERSON, CAR, TOOTHBRUSH = 1, 3, 90  # COCO category ids: class indices 1, 3 and 80


def square(x0, y0, x1, y1):
    """A polygon covering pixels x0..x1-1, y0..y1-1 (vertices at pixel corners)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def categories(ids=COCO_CATEGORY_IDS):
    names = dict(zip(COCO_CATEGORY_IDS, COCO_CATEGORIES))
    return [{"id": i, "name": names.get(i, f"c{i}"), "supercategory": "x"} for i in ids]


def stem(split, image_id):
    return f"COCO_{split}_{image_id:012d}"


def write_split(root, split, images, annotations, cats=None):
    """images: {id: (height, width)}; annotations: (image_id, category_id, segmentation, iscrowd)."""
    entries = [{"id": i, "file_name": f"{stem(split, i)}.jpg", "height": h, "width": w} for i, (h, w) in images.items()]
    anns = [{"id": k + 1, "image_id": i, "category_id": c, "segmentation": s, "iscrowd": crowd, "area": 0.0,
             "bbox": [0, 0, 1, 1]} for k, (i, c, s, crowd) in enumerate(annotations)]
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": entries, "annotations": anns, "categories": cats or categories()}))
    (root / split).mkdir(exist_ok=True)
    return path


def convert(root, *flags):
    return coco.main(["--root", str(root), "--num_workers", "0", "--quiet", "True", *flags])


def mask(root, split, image_id):
    return load_label_png(root / "SegmentationClass" / split / f"{stem(split, image_id)}.png")


@pytest.fixture
def root(tmp_path):
    write_split(tmp_path, "train2014", {1: (H, W), 2: (H, W), 3: (H, W)}, [
        (1, PERSON, square(2, 2, 6, 6), 0),
        (1, CAR, square(0, 0, 16, 12), 0),          # larger, listed after: painted first, under the person
        (2, TOOTHBRUSH, square(8, 4, 12, 8), 0),
        (2, PERSON, square(0, 0, 10, 10), 1),      # a crowd region, larger: under the toothbrush
    ])                                             # image 3: no annotation
    write_split(tmp_path, "val2014", {7: (H, W)}, [(7, CAR, square(1, 1, 4, 4), 0)])
    return tmp_path


def test_masks_lists_and_table_follow_the_rules(root):
    assert coco.main(["--root", str(root), "--num_workers", "2", "--quiet", "True"]) == 0  # forked workers
    one = mask(root, "train2014", 1)
    expected = np.full((H, W), 3, np.uint8)  # car: class 3
    expected[2:6, 2:6] = 1                    # the smaller person stays visible on it
    np.testing.assert_array_equal(one, expected)
    assert Image.open(root / "SegmentationClass/train2014" / f"{stem('train2014', 1)}.png").mode == "P"

    two = mask(root, "train2014", 2)
    expected = np.zeros((H, W), np.uint8)
    expected[0:10, 0:10] = 255                # crowd: ignored
    expected[4:8, 8:12] = 80                  # toothbrush, the last category id: class 80, on top
    np.testing.assert_array_equal(two, expected)

    # no annotation: no mask, in no list, not in the table
    assert not (root / "SegmentationClass/train2014" / f"{stem('train2014', 3)}.png").exists()
    assert (root / "train2014.txt").read_text().split() == [stem("train2014", 1), stem("train2014", 2)]
    assert (root / "val2014.txt").read_text().split() == [stem("val2014", 7)]
    assert (root / "cls_labels.txt").read_text().splitlines() == [
        f"{stem('train2014', 1)} 0 2", f"{stem('train2014', 2)} 0 79", f"{stem('val2014', 7)} 2"]


def test_the_coco14_data_set_reads_what_it_wrote(root):
    assert convert(root) == 0
    data = DataSet(DATASETS["coco14"], root)
    name = stem("train2014", 2)
    assert data.gt_path(name) == root / "SegmentationClass/train2014" / f"{name}.png"
    assert np.flatnonzero(data.class_labels(name)).tolist() == [0, 79]
    assert data.classes[80] == "toothbrush" and data.num_classes == 81


def test_masks_equal_pycocotools_rasterisation(root):
    assert convert(root) == 0
    api = COCO(str(root / "annotations/instances_val2014.json"))
    (ann,) = api.loadAnns(api.getAnnIds(imgIds=[7]))
    np.testing.assert_array_equal(mask(root, "val2014", 7) == 3, api.annToMask(ann).astype(bool))


def test_category_index_by_increasing_id():
    official = coco.class_indices(categories(), "f")
    assert official[1] == 1 and official[13] == 12 and official[90] == 80
    subset = coco.class_indices(categories((90, 3)), "f")  # a few official ids: their official rank
    assert subset == {3: 3, 90: 80}
    renumbered = coco.class_indices([{"id": 100 + i, "name": n} for i, n in enumerate(COCO_CATEGORIES)], "f")
    assert renumbered[100] == 1 and renumbered[179] == 80
    with pytest.raises(ValueError, match="f: 2 categories"):
        coco.class_indices([{"id": 12, "name": "x"}, {"id": 1, "name": "person"}], "f")
    with pytest.warns(UserWarning, match="other than COCO's"):
        coco.class_indices([{"id": 1, "name": "human"}], "f")


def test_rle_segmentations_are_read(tmp_path):
    crowd = np.zeros((H, W), np.uint8)
    crowd[3:9, 5:11] = 1
    compressed = mask_utils.encode(np.asfortranarray(crowd))
    compressed["counts"] = compressed["counts"].decode()
    runs, flat, value = [], crowd.ravel(order="F"), 0
    for changes in np.split(flat, np.flatnonzero(np.diff(flat)) + 1):
        if changes[0] != value:
            runs.append(0)
        runs.append(len(changes))
        value = 1 - changes[0]
    uncompressed = {"counts": runs, "size": [H, W]}
    write_split(tmp_path, "train2014", {1: (H, W), 2: (H, W)}, [(1, CAR, compressed, 0), (2, CAR, uncompressed, 1)])
    assert convert(tmp_path, "--splits", "train2014") == 0
    np.testing.assert_array_equal(mask(tmp_path, "train2014", 1), crowd * 3)
    np.testing.assert_array_equal(mask(tmp_path, "train2014", 2), crowd * 255)


def test_a_bad_annotation_fails_its_image_alone(root, capsys):
    path = root / "annotations/instances_train2014.json"
    raw = json.loads(path.read_text())
    raw["annotations"][2]["segmentation"] = [[1, 2, 3, 4, 5, 6, 7]]  # image 2: an odd number of coordinates
    raw["annotations"].append({"id": 99, "image_id": 3, "category_id": 12, "segmentation": square(0, 0, 2, 2),
                               "iscrowd": 0})  # image 3: a category id COCO does not use
    path.write_text(json.dumps(raw))
    assert convert(root) == 1
    err = capsys.readouterr().err
    assert f"{stem('train2014', 2)}: " in err and "annotation 3: a polygon must list x, y numbers in pairs" in err
    assert "has category 12, not declared" in err
    failed = (root / "SegmentationClass/failures.txt").read_text()
    assert stem("train2014", 2) in failed and stem("train2014", 3) in failed
    assert (root / "train2014.txt").read_text().split() == [stem("train2014", 1)]
    assert stem("train2014", 2) not in (root / "cls_labels.txt").read_text()
    assert not (root / "SegmentationClass/train2014" / f"{stem('train2014', 2)}.png").exists()


def test_an_image_of_another_size_fails(root, capsys):
    Image.new("RGB", (W + 1, H)).save(root / "train2014" / f"{stem('train2014', 1)}.jpg")
    assert convert(root, "--splits", "train2014") == 1
    assert f"17x12 pixels, its annotation entry says {W}x{H}" in capsys.readouterr().err


def test_resumes_keeps_done_masks_and_the_other_split(root):
    assert convert(root) == 0
    done = root / "SegmentationClass/train2014" / f"{stem('train2014', 1)}.png"
    os.utime(done, ns=(1, 10**19))  # newer than its JSON file: kept
    stamp = done.stat().st_mtime_ns
    with open(root / "cls_labels.txt", "a") as f:
        f.write("my_own_image 3\n")  # not a COCO name: a line of the user's, kept
    assert convert(root, "--splits", "train2014") == 0
    assert done.stat().st_mtime_ns == stamp
    lines = (root / "cls_labels.txt").read_text().splitlines()
    assert f"{stem('val2014', 7)} 2" in lines and "my_own_image 3" in lines  # val's line and the user's kept
    assert sum(line.startswith("COCO_train2014_") for line in lines) == len((root / "train2014.txt").read_text().split())
    assert convert(root, "--splits", "train2014", "--overwrite", "True") == 0
    assert done.stat().st_mtime_ns != stamp


def test_bad_settings_and_files_exit_2(tmp_path, capsys):
    assert convert(tmp_path) == 2
    assert "annotation file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        convert(tmp_path, "--splits", "train2017")
    assert stop.value.code == 2
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/instances_train2014.json").write_text("{not json")
    assert convert(tmp_path, "--splits", "train2014") == 2
    assert "not a COCO instance annotation file" in capsys.readouterr().err


def test_rle_strings_are_read_as_pycocotools_writes_them():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = (rng.random((9, 13)) < rng.uniform(0.1, 0.9)).astype(np.uint8)
        encoded = mask_utils.encode(np.asfortranarray(m))
        runs = coco.rle_string_counts(encoded["counts"])
        flat = m.ravel(order="F")
        assert sum(runs) == m.size and np.array_equal(np.repeat(np.arange(len(runs)) % 2, runs), flat)


def test_a_short_rle_string_fails_instead_of_painting_undefined_pixels(tmp_path, capsys):
    crowd = np.zeros((H, W), np.uint8)
    crowd[3:9, 5:11] = 1
    encoded = mask_utils.encode(np.asfortranarray(crowd[:, :-1]))  # one column short of the image
    short = {"size": [H, W], "counts": encoded["counts"].decode()}
    write_split(tmp_path, "train2014", {1: (H, W), 2: (H, W)}, [(1, CAR, short, 0), (2, CAR, square(0, 0, 2, 2), 0)])
    assert convert(tmp_path, "--splits", "train2014") == 1
    assert "RLE runs must be non-negative and cover the 12x16 image" in capsys.readouterr().err
    assert (tmp_path / "train2014.txt").read_text().split() == [stem("train2014", 2)]


def test_files_written_by_other_code(tmp_path):
    """Quoted ids, quoted iscrowd, a folder in file_name, a degenerate part of a polygon list,
    annotations of no listed image."""
    path = write_split(tmp_path, "train2014", {1: (H, W), 2: (H, W)}, [
        (1, PERSON, square(2, 2, 6, 6) + [[0, 0, 1, 1]], 0),  # a 2-point part covers nothing: dropped
        (2, CAR, square(0, 0, 4, 4), "1"),
        (9, CAR, square(0, 0, 4, 4), 0),                      # image 9 is not listed
    ])
    raw = json.loads(path.read_text())
    for image in raw["images"]:
        image["id"] = str(image["id"])
        image["file_name"] = f"train2014/{image['file_name']}"
    for annotation in raw["annotations"]:
        annotation["category_id"] = str(annotation["category_id"])
    path.write_text(json.dumps(raw))
    with pytest.warns(UserWarning, match="1 of 3 annotations belong to no image"):
        assert convert(tmp_path, "--splits", "train2014") == 0
    one = mask(tmp_path, "train2014", 1)
    assert (one == 1).sum() == 16 and set(np.unique(one).tolist()) == {0, 1}
    assert (mask(tmp_path, "train2014", 2) == 255).sum() == 16
    assert (tmp_path / "cls_labels.txt").read_text().split("\n")[:2] == [f"{stem('train2014', 1)} 0",
                                                                         f"{stem('train2014', 2)} 2"]


def test_two_images_of_one_name_both_fail(tmp_path, capsys):
    path = write_split(tmp_path, "train2014", {1: (H, W), 2: (H, W), 3: (H, W)},
                       [(i, CAR, square(0, 0, 4, 4), 0) for i in (1, 2, 3)])
    raw = json.loads(path.read_text())
    raw["images"][1]["file_name"] = raw["images"][0]["file_name"]
    path.write_text(json.dumps(raw))
    assert convert(tmp_path, "--splits", "train2014") == 1
    assert f"two image entries are named {stem('train2014', 1)}" in capsys.readouterr().err
    assert (tmp_path / "train2014.txt").read_text().split() == [stem("train2014", 3)]


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw.update(categories=[]), "no 'categories' declared"),
    (lambda raw: [i.update(file_name=f"{i['id']:012d}.jpg") for i in raw["images"]],
     "no image is named COCO_train2014_"),
    (lambda raw: raw["images"][0].pop("file_name"), "every image entry needs an 'id' and a 'file_name'"),
])
def test_a_file_that_is_not_coco_2014_stops_with_one_line(tmp_path, capsys, edit, message):
    path = write_split(tmp_path, "train2014", {1: (H, W)}, [(1, CAR, square(0, 0, 4, 4), 0)])
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    assert convert(tmp_path, "--splits", "train2014") == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1


def test_the_scale_benchmark_writes_a_file_the_converter_takes(tmp_path, capsys):
    """scripts/bench_coco.py on 40 images: a valid COCO file (crowd RLEs and polygons), every
    annotated image converted, none failed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_coco", Path(__file__).parents[1] / "scripts/bench_coco.py")
    bench_coco = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_coco)
    bench_coco.main(["--out", str(tmp_path), "--num_images", "40", "--num_workers", "0"])
    out = capsys.readouterr().out
    listed = (tmp_path / "train2014.txt").read_text().split()
    assert f"converted {len(listed)} images" in out and len(listed) >= 38
    assert not (tmp_path / "SegmentationClass" / "failures.txt").exists()
    masks = [np.array(Image.open(tmp_path / "SegmentationClass/train2014" / f"{s}.png")) for s in listed]
    assert all(m.shape == (480, 640) for m in masks) and any((m == 255).any() for m in masks)
